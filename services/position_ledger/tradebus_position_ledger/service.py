from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import asyncpg

from tradebus_common import subjects
from tradebus_common.bus import (
    BatchItem,
    Subscription,
    current_delivery,
    raise_if_cancelling,
    typed_decoder,
)
from tradebus_common.db import create_pool
from tradebus_common.events import (
    Alert,
    AlertCode,
    Event,
    Fill,
    MarketTick,
    PositionChanged,
    Severity,
)
from tradebus_common.ids import derive_id
from tradebus_common.runtime import ServiceContext, ServiceSpec

from .equity import EquityBook
from .migrations import migrate
from .query import QueryApi
from .store import RecordedFill, record_batch

log = logging.getLogger("tradebus.position_ledger")
DURABLE = "position-ledger"
MD_DURABLE = "position-ledger-md"
SNAPSHOT_POLL_S = 0.1


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


def unknown_fill_alert(fill: Fill, recorded: RecordedFill) -> Alert:
    return Alert(
        id=derive_id(recorded.fill_id, "unknown-fill-alert"),
        severity=Severity.WARNING,
        source=DURABLE,
        code=AlertCode.UNKNOWN_FILL,
        message=f"fill {fill.venue}:{fill.trade_id} booked for unknown strategy {fill.strategy!r}",
        context={"fill_id": recorded.fill_id, "flags": recorded.flags, "strategy": fill.strategy},
        dedup_key=f"{DURABLE}:unknown-fill:{fill.strategy}",
    )


def announcements(fill: Fill, recorded: RecordedFill) -> list[Event]:
    """Sent on every delivery with the same ids: if the first announcement was lost after
    the commit, a redelivery publishes it; otherwise the stream drops the copy."""
    out: list[Event] = [position_changed(fill, recorded)]
    if recorded.flags:
        out.append(unknown_fill_alert(fill, recorded))
    return out


class FillIngest:
    """The fill handlers: a whole fetch in one transaction, or one fill (the fallback)."""

    def __init__(self, pool: asyncpg.Pool, known_strategies: set[str]) -> None:
        self.pool = pool
        self.known = known_strategies

    async def on_batch(self, items: Sequence[BatchItem]) -> list[list[Event]]:
        return await self._book([(i.event, i.delivery.stream_seq) for i in items])

    async def on_fill(self, fill: Fill) -> list[Event]:
        delivery = current_delivery.get()
        [out] = await self._book([(fill, delivery.stream_seq if delivery else None)])
        return out

    async def _book(self, fills: list[tuple[Fill, int | None]]) -> list[list[Event]]:
        async with self.pool.acquire() as conn:
            recorded = await record_batch(conn, fills, self.known, DURABLE)
        log.info("fills recorded", extra={"batch": len(fills), "new": sum(r.new for r in recorded)})
        return [announcements(f, r) for (f, _), r in zip(fills, recorded, strict=True)]


async def build(ctx: ServiceContext) -> None:
    pool = await open_pool(ctx)
    ctx.cleanups.append(pool.close)
    book = EquityBook(ctx.config, pool)
    ingest = FillIngest(pool, set(ctx.config.strategies))
    await _seed_marks(ctx, pool, book)

    async def on_tick(tick: MarketTick) -> None:
        book.on_ticks([tick])

    async def on_ticks(items: Sequence[BatchItem]) -> list[list[Event]]:
        book.on_ticks([i.event for i in items])
        return [[] for _ in items]  # marks live in memory; the last tick is re-read at start

    ctx.subscriptions.append(
        Subscription(
            durable=DURABLE,
            filter_subjects=[subjects.FILL_ALL],
            decoder=typed_decoder(Fill),
            handler=ingest.on_fill,
            batch_handler=ingest.on_batch,
        )
    )
    ctx.subscriptions.append(
        Subscription(
            durable=MD_DURABLE,
            filter_subjects=[subjects.MARKET_ALL],
            stream=subjects.STREAM_MARKET,
            decoder=typed_decoder(MarketTick),
            handler=on_tick,
            batch_handler=on_ticks,
        )
    )
    api = QueryApi(pool, book)
    subs = await api.subscribe(ctx.bus.nc)

    async def unsubscribe() -> None:
        for s in subs:
            await s.unsubscribe()

    ctx.cleanups.append(unsubscribe)
    ctx.tasks.append(lambda: _publish_snapshots(ctx, book))


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
