from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Union

import asyncpg
import msgspec

from tradebus_common import subjects
from tradebus_common.bus import (
    BatchItem,
    Subscription,
    current_delivery,
    raise_if_cancelling,
    typed_decoder,
)
from tradebus_common.codec import check_numbers, decoder_for
from tradebus_common.db import create_pool
from tradebus_common.errors import ConfigError, ErrorCode, PermanentError
from tradebus_common.events import (
    Alert,
    AlertCode,
    Event,
    ExecutionQuality,
    Fill,
    MarketTick,
    PositionChanged,
    ReconReport,
    Severity,
)
from tradebus_common.ids import derive_id, new_id
from tradebus_common.runtime import ServiceContext, ServiceSpec

from .balances import observe
from .equity import EquityBook
from .migrations import migrate
from .orders import OrderEvents
from .query import QueryApi
from .sessions import start_session
from .store import RecordedFill, record_batch, widen_cycles

log = logging.getLogger("tradebus.position_ledger")
INGEST_FETCH_BATCH = 500
DURABLE = "position-ledger"
MD_DURABLE = "position-ledger-md"
RECON_DURABLE = "position-ledger-recon"
SNAPSHOT_POLL_S = 0.1
# One consumer reads fills and the order events, in stream order: an approval (or the
# gateway's submission) is always booked before the fills of its order.
INGEST_SUBJECTS = [subjects.FILL_ALL, subjects.APPROVED_ALL, subjects.ORDER_EVENT_ALL]
ORDER_EVENT_PREFIX = subjects.ORDER_EVENT_ALL.removesuffix(">")
IngestEvent = Union[(Fill, *OrderEvents, ExecutionQuality)]  # noqa: UP007 (runtime, decoder)
_ingest_decoder = decoder_for(IngestEvent)
_BOOKED_TAGS = {t.__struct_config__.tag for t in IngestEvent.__args__}


class _Tagged(msgspec.Struct):
    type: str = ""


_tag_decoder = msgspec.json.Decoder(_Tagged)


def decode_ingest(data: bytes, subject: str = "") -> Event | None:
    """A fill or an order event the ledger books; None for another kind of order event
    (e.g. `order.algo`, or one newer than this code) on `trading.order.event.*`: not the
    ledger's to judge, the stream keeps it, so it is acked, not dead-lettered. Anything else
    that does not decode is dead-lettered with its reason, as `codec.decode` does. (The
    decoder is looked up once: codec's cache is keyed by the type, and hashing a
    typing.Union on every message cost ~5 % of a replay.)"""
    try:
        event = _ingest_decoder.decode(data)
    except msgspec.ValidationError as e:
        if _foreign_order_event(data, subject):
            return None
        raise PermanentError(f"schema violation: {e}", ErrorCode.SCHEMA_VIOLATION) from e
    except (msgspec.DecodeError, UnicodeDecodeError) as e:
        raise PermanentError(f"malformed JSON: {e}", ErrorCode.MALFORMED_JSON) from e
    except RecursionError as e:  # msgspec's answer to JSON nested thousands deep
        raise PermanentError("malformed JSON: nested too deep", ErrorCode.MALFORMED_JSON) from e
    return check_numbers(event)  # no NaN, infinity or absurd exponent booked as money


def _foreign_order_event(data: bytes, subject: str) -> bool:
    if not subject.startswith(ORDER_EVENT_PREFIX):
        return False
    try:
        tag = _tag_decoder.decode(data).type
    except (msgspec.ValidationError, msgspec.DecodeError):
        return False
    return tag.startswith("order.") and tag not in _BOOKED_TAGS


async def open_pool(ctx: ServiceContext) -> asyncpg.Pool:
    pool = await create_pool(ctx.config, ctx.name)
    async with pool.acquire() as conn:
        await migrate(conn)
    return pool


def position_changed(fill: Fill, recorded: RecordedFill) -> PositionChanged:
    pos = recorded.position
    return PositionChanged(
        id=derive_id(recorded.fill_id, "position"),
        account=fill.account,
        venue=fill.venue,
        symbol=fill.symbol,
        strategy=fill.strategy,
        quantity=pos.quantity,
        avg_price=pos.avg_price,
        realized_pnl=pos.realized_pnl,
        fees_paid=pos.fees_paid,
        fill_id=recorded.fill_id,
    )


def unknown_fill_alert(fill: Fill, recorded: RecordedFill, more: int = 0) -> Alert:
    """One alert for the first flagged fill of a batch per strategy and flags, counting the
    others (`more`): a burst of stray fills is one page, not thousands."""
    what = recorded.flags.replace(",", " and ").replace("_", " ")
    return Alert(
        id=derive_id(recorded.fill_id, "unknown-fill-alert"),
        severity=Severity.WARNING,
        source=DURABLE,
        code=AlertCode.UNKNOWN_FILL,
        message=(
            f"fill {fill.venue}:{fill.trade_id} (order {fill.client_order_id}, strategy "
            f"{fill.strategy!r}) booked with {what}"
            + (f"; {more} more such fill(s) in the same batch" if more else "")
        ),
        context={
            "fill_id": recorded.fill_id,
            "flags": recorded.flags,
            "strategy": fill.strategy,
            "client_order_id": fill.client_order_id,
            "more": more,
        },
        dedup_key=f"{DURABLE}:unknown-fill:{fill.strategy}:{recorded.flags}",
    )


def announcements(
    events: Sequence[Event], recorded: Sequence[RecordedFill | None]
) -> list[list[Event]]:
    """Per item, what to publish. Sent on every delivery with the same ids: if the first
    announcement was lost after the commit, a redelivery publishes it; otherwise the stream
    drops the copy."""
    out: list[list[Event]] = []
    first: dict[tuple[str, str], tuple[int, Fill, RecordedFill]] = {}
    flagged: dict[tuple[str, str], int] = {}
    for i, (event, rec) in enumerate(zip(events, recorded, strict=True)):
        if rec is None or not isinstance(event, Fill):
            out.append([])
            continue
        out.append([position_changed(event, rec)])
        if rec.flags:
            k = (event.strategy, rec.flags)
            first.setdefault(k, (i, event, rec))
            flagged[k] = flagged.get(k, 0) + 1
    for k, (i, fill, rec) in first.items():
        out[i].append(unknown_fill_alert(fill, rec, flagged[k] - 1))
    return out


class FillIngest:
    """The fill handlers: a whole fetch in one transaction, or one message (the fallback).
    Order events ride along: they make orders known and feed the fill rate."""

    def __init__(self, pool: asyncpg.Pool, known_strategies: set[str]) -> None:
        self.pool = pool
        self.known = known_strategies

    async def on_batch(self, items: Sequence[BatchItem]) -> list[list[Event]]:
        return await self._book([(i.event, i.delivery.stream_seq) for i in items])

    async def on_event(self, event: Event) -> list[Event]:
        delivery = current_delivery.get()
        [out] = await self._book([(event, delivery.stream_seq if delivery else None)])
        return out

    async def _book(self, items: list[tuple[Event, int | None]]) -> list[list[Event]]:
        async with self.pool.acquire() as conn:
            recorded = await record_batch(conn, items, self.known, DURABLE)
        new = sum(1 for r in recorded if r is not None and r.new)
        log.debug("batch recorded", extra={"batch": len(items), "new": new})
        return announcements([e for e, _ in items], recorded)


class TickFolder:
    """Market ticks: the marks (memory) and the price range of open cycles (MAE/MFE, in the
    database, so a restart does not forget the excursions seen so far)."""

    def __init__(self, pool: asyncpg.Pool, book: EquityBook) -> None:
        self.pool = pool
        self.book = book

    async def on_ticks(self, items: Sequence[BatchItem]) -> list[list[Event]]:
        await self._fold([i.event for i in items])
        return [[] for _ in items]

    async def on_tick(self, tick: MarketTick) -> list[Event]:
        await self._fold([tick])
        return []

    async def _fold(self, ticks: list[MarketTick]) -> None:
        self.book.on_ticks(ticks)
        try:
            async with self.pool.acquire() as conn:
                await widen_cycles(conn, ticks)
        except Exception as e:
            # Best effort: with the database away, retrying ticks would end in dead letters
            # and DEAD_LETTER alerts for every tick of the outage, while the marks (above)
            # are current anyway. The cycles' ranges then miss the ticks of the outage.
            raise_if_cancelling()
            log.warning("cycle price range not updated", extra={"error": repr(e)})


async def build(ctx: ServiceContext) -> None:
    if ctx.config.ledger.cash_source not in ("config", "venue"):
        raise ConfigError(
            f"[ledger] cash_source must be config or venue, not {ctx.config.ledger.cash_source!r}"
        )
    pool = await open_pool(ctx)
    ctx.cleanups.append(pool.close)
    book = EquityBook(ctx.config, pool)
    ingest = FillIngest(pool, set(ctx.config.strategies))
    ticks = TickFolder(pool, book)
    await _seed_marks(ctx, pool, book)
    await book.load_venue_cash()
    book.session_id = await start_session(pool, new_id(), ctx.instance, await book.snapshots(False))

    ctx.subscriptions.append(
        Subscription(
            durable=DURABLE,
            filter_subjects=INGEST_SUBJECTS,
            decoder=lambda msg: decode_ingest(msg.data, msg.subject),
            handler=ingest.on_event,
            batch_handler=ingest.on_batch,
            # A batch is one transaction of a fixed handful of statements: the bigger the
            # batch under backlog, the fewer per fill (docs/ledger.md, Performance).
            fetch_batch=INGEST_FETCH_BATCH,
        )
    )
    ctx.subscriptions.append(
        Subscription(
            durable=MD_DURABLE,
            filter_subjects=[subjects.MARKET_ALL],
            stream=subjects.STREAM_MARKET,
            decoder=typed_decoder(MarketTick),
            handler=ticks.on_tick,
            batch_handler=ticks.on_ticks,
        )
    )
    _subscribe_balances(ctx, pool, book)
    api = QueryApi(pool, book)
    subs = await api.subscribe(ctx.bus.nc)

    async def unsubscribe() -> None:
        for s in subs:
            await s.unsubscribe()

    ctx.cleanups.append(unsubscribe)
    ctx.tasks.append(lambda: _publish_snapshots(ctx, book))


def _subscribe_balances(ctx: ServiceContext, pool: asyncpg.Pool, book: EquityBook) -> None:
    """cash_source = "venue": the reconciler's reports carry the venue balances."""
    cfg = ctx.config.ledger
    if cfg.cash_source != "venue":
        return

    async def on_report(report: ReconReport) -> list[Event]:
        async with pool.acquire() as conn:
            seen = await observe(conn, report, cfg.cash_currency)
        if seen:
            await book.load_venue_cash()
        return []

    ctx.subscriptions.append(
        Subscription(
            durable=RECON_DURABLE,
            filter_subjects=[subjects.RECON_REPORT],
            decoder=typed_decoder(ReconReport),
            handler=on_report,
        )
    )


async def _seed_marks(ctx: ServiceContext, pool: asyncpg.Pool, book: EquityBook) -> None:
    """After a restart the durable resumes past old ticks: start from each symbol's last one."""
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT DISTINCT venue, symbol FROM positions")
    for r in rows:
        tick = await ctx.bus.last_tick(r["venue"], r["symbol"])
        if tick is not None:
            book.on_ticks([tick])


async def _publish_snapshots(ctx: ServiceContext, book: EquityBook) -> None:
    while True:
        try:
            for snap in await book.due_snapshots():
                await ctx.bus.publish(snap)
        except Exception as e:  # the database or NATS is away: try again on the next beat
            raise_if_cancelling()
            log.warning("ledger snapshot failed", extra={"error": repr(e)})
        await asyncio.sleep(SNAPSHOT_POLL_S)


SPEC = ServiceSpec(name="position-ledger", build=build)
