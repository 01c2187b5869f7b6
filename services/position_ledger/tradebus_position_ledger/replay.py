"""B6: rebuild the ledger from the TRADING stream's fills into a fresh schema, with the same
booking code as the live service, and diff it row by row with the live tables."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import nats.errors
from nats.aio.client import Client as NATS
from nats.js import api

from tradebus_common import subjects
from tradebus_common.errors import PermanentError
from tradebus_common.events import Event

from .migrations import migrate
from .service import INGEST_SUBJECTS, decode_ingest
from .store import record_batch

DURABLE = "position-ledger"
BATCH = 2000
# Compared row by row; bookkeeping times (recorded_at, updated_at) differ by nature, and so do
# the price ranges of cycles (cycle_low/high, low/high_price, mae/mfe_pct): market ticks widen
# them, and the replay reads the fills and order events only.
TABLES: dict[str, list[str]] = {
    "fills": [
        "fill_id", "venue", "trade_id", "account", "strategy", "symbol", "client_order_id",
        "venue_order_id", "side", "quantity", "price", "fee", "fee_currency", "liquidity",
        "reconciliation", "correlation_id", "event_ts", "stream_seq", "arrival_price", "flags",
        "exit_reason", "pos_quantity", "pos_cost_basis", "pos_realized_pnl", "pos_fees_paid",
        "pos_fill_count",
    ],
    "positions": [
        "account", "venue", "symbol", "strategy", "quantity", "cost_basis", "avg_price",
        "realized_pnl", "fees_paid", "fill_count", "opened_at", "cycle_realized_base",
        "cycle_fill_count", "cycle_max_quantity",
    ],
    "position_cycles": [
        "closing_fill_id", "account", "venue", "symbol", "strategy", "direction",
        "max_quantity", "realized_pnl", "fill_count", "opened_at", "closed_at", "exit_reason",
        "entry_price",
    ],
    "ledger_orders": [
        "client_order_id", "strategy", "venue", "symbol", "side", "approved_quantity",
        "submitted_quantity", "reference_price", "status", "close_reason", "first_ts",
        "stream_seq",
    ],
    "order_quality": [
        "client_order_id", "strategy", "venue", "symbol", "side", "quantity", "filled_quantity",
        "slippage_bps", "fill_rate", "time_to_first_fill_ms", "time_to_last_fill_ms", "fees",
        "implementation_shortfall", "implementation_shortfall_bps", "children", "event_ts",
    ],
}  # fmt: skip

Progress = Callable[[int, int], None]


@dataclass
class ReplayResult:
    schema: str
    up_to_seq: int
    replayed: int = 0
    unreadable: int = 0  # not a fill at all: the live ledger dead-lettered these too
    refused: list[str] = field(default_factory=list)  # events the database refused
    differences: list[dict[str, Any]] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return not self.differences


async def live_sequence(conn: asyncpg.Connection) -> int:
    seq = await conn.fetchval(
        "SELECT stream_seq FROM processed_sequence WHERE consumer=$1", DURABLE
    )
    return seq or 0


async def replay(
    nc: NATS,
    dsn: str,
    known_strategies: set[str] | None,
    progress: Progress = lambda done, total: None,
    keep: bool = False,
) -> ReplayResult:
    live = await asyncpg.connect(dsn)
    try:
        result = ReplayResult(f"replay_{uuid.uuid4().hex[:12]}", await live_sequence(live))
        await live.execute(f'CREATE SCHEMA "{result.schema}"')
        # The rebuilt schema is scratch, diffed and dropped: its commits need not wait for the
        # disk (synchronous_commit off), which the live ledger's commits of course do.
        fresh = await asyncpg.connect(
            dsn, server_settings={"search_path": result.schema, "synchronous_commit": "off"}
        )
        try:
            await migrate(fresh)
            await _rebuild(nc, fresh, result, known_strategies, progress)
            result.differences = await diff(live, "public", result.schema)
        finally:
            await fresh.close()
            if not keep:
                await live.execute(f'DROP SCHEMA "{result.schema}" CASCADE')
    finally:
        await live.close()
    return result


async def _rebuild(
    nc: NATS,
    conn: asyncpg.Connection,
    result: ReplayResult,
    known: set[str] | None,
    progress: Progress,
) -> None:
    if result.up_to_seq == 0:
        return
    js = nc.jetstream()
    info = await js.add_consumer(
        subjects.STREAM_TRADING,
        api.ConsumerConfig(
            filter_subjects=INGEST_SUBJECTS,  # the live consumer's, in the same order
            ack_policy=api.AckPolicy.NONE,
            deliver_policy=api.DeliverPolicy.ALL,
            inactive_threshold=60,
        ),
    )
    sub = await js.pull_subscribe_bind(info.name, stream=subjects.STREAM_TRADING)
    # The next batch is fetched while the current one is booked: the stream and the database
    # work at the same time.
    ahead: asyncio.Task[list[Any]] = asyncio.create_task(_fetch(sub, 1))
    try:
        while msgs := await ahead:
            batch, done = _take(msgs, result)
            pending = msgs[-1].metadata.num_pending
            if not done and pending:
                ahead = asyncio.create_task(_fetch(sub, min(BATCH, pending)))
            await _apply(conn, batch, result, known)
            result.replayed += len(batch)
            progress(msgs[-1].metadata.sequence.stream, result.up_to_seq)
            if done or not pending:
                break
    finally:
        ahead.cancel()
        await sub.unsubscribe()


async def _fetch(sub: Any, n: int) -> list[Any]:
    """`n` messages known to be there (num_pending): returns as soon as they are, not after a
    timeout waiting for a fuller batch. [] when nothing is left."""
    try:
        return await sub.fetch(n, timeout=2)
    except (nats.errors.TimeoutError, TimeoutError):
        return []


def _take(msgs: list[Any], result: ReplayResult) -> tuple[list[tuple[Event, int]], bool]:
    """The events up to the live ledger's sequence; True once past it."""
    batch = []
    for msg in msgs:
        seq = stream_seq(msg)
        if seq > result.up_to_seq:
            return batch, True
        try:
            event = decode_ingest(msg.data, msg.subject)
        except PermanentError:
            result.unreadable += 1
            continue
        if event is not None:  # None: an order event the ledger does not book
            batch.append((event, seq))
    return batch, False


def stream_seq(msg: Any) -> int:
    """The message's stream sequence, read straight from its JetStream reply subject:
    `$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<ts>.<pending>`, or
    with `<domain>.<account hash>` after `$JS.ACK` (12+ tokens). nats-py's `msg.metadata`
    parses the whole subject into objects on every access: a fifth of a replay's time."""
    tokens = (msg.reply or "").split(".")
    if len(tokens) == 9:
        return int(tokens[5])
    if len(tokens) >= 12:
        return int(tokens[7])
    return msg.metadata.sequence.stream  # any other form: let nats-py make sense of it


async def _apply(
    conn: asyncpg.Connection,
    batch: list[tuple[Event, int]],
    result: ReplayResult,
    known: set[str] | None,
) -> None:
    """The live rule: a batch in one transaction, else one by one, a refused fill skipped."""
    try:
        await record_batch(conn, batch, known, DURABLE)
        return
    except asyncpg.PostgresError:
        pass
    for item in batch:
        try:
            await record_batch(conn, [item], known, DURABLE)
        except asyncpg.PostgresError as e:
            result.refused.append(f"{_describe(item[0])} ({type(e).__name__})")


def _describe(event: Any) -> str:
    """venue:trade_id of a fill, venue:client_order_id of an order event."""
    return f"{event.venue}:{getattr(event, 'trade_id', None) or event.client_order_id}"


async def diff(conn: asyncpg.Connection, live: str, fresh: str) -> list[dict[str, Any]]:
    """Rows in one schema and not the other, per table (NUMERIC compares by value)."""
    out = []
    for table, cols in TABLES.items():
        select = ", ".join(cols)
        for side, a, b in (("only_live", live, fresh), ("only_replay", fresh, live)):
            rows = await conn.fetch(
                f'SELECT {select} FROM "{a}".{table} EXCEPT SELECT {select} FROM "{b}".{table} '
                f"ORDER BY 1 LIMIT 100"
            )
            out += [{"table": table, "side": side, "row": dict(r)} for r in rows]
    return out
