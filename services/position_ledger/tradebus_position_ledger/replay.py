"""B6: rebuild the ledger from the TRADING stream's fills into a fresh schema, with the same
booking code as the live service, and diff it row by row with the live tables."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import nats.errors
from nats.aio.client import Client as NATS
from nats.js import api

from tradebus_common import subjects
from tradebus_common.codec import decode
from tradebus_common.errors import PermanentError
from tradebus_common.events import Fill

from .migrations import migrate
from .store import record_batch

DURABLE = "position-ledger"
BATCH = 500
# Compared row by row; bookkeeping times (recorded_at, updated_at) differ by nature.
TABLES: dict[str, list[str]] = {
    "fills": [
        "fill_id", "venue", "trade_id", "account", "strategy", "symbol", "client_order_id",
        "venue_order_id", "side", "quantity", "price", "fee", "fee_currency", "liquidity",
        "reconciliation", "correlation_id", "event_ts", "stream_seq", "arrival_price", "flags", "pos_quantity",
        "pos_cost_basis", "pos_realized_pnl", "pos_fees_paid", "pos_fill_count",
    ],
    "positions": [
        "account", "venue", "symbol", "strategy", "quantity", "cost_basis", "avg_price",
        "realized_pnl", "fees_paid", "fill_count", "opened_at", "cycle_realized_base",
        "cycle_fill_count", "cycle_max_quantity",
    ],
    "position_cycles": [
        "closing_fill_id", "account", "venue", "symbol", "strategy", "direction",
        "max_quantity", "realized_pnl", "fill_count", "opened_at", "closed_at",
    ],
}  # fmt: skip

Progress = Callable[[int, int], None]


@dataclass
class ReplayResult:
    schema: str
    up_to_seq: int
    replayed: int = 0
    unreadable: int = 0  # not a fill at all: the live ledger dead-lettered these too
    refused: list[str] = field(default_factory=list)  # fills the database refused
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
        fresh = await asyncpg.connect(dsn, server_settings={"search_path": result.schema})
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
    sub = await js.pull_subscribe(
        subjects.FILL_ALL,
        stream=subjects.STREAM_TRADING,
        config=api.ConsumerConfig(
            ack_policy=api.AckPolicy.NONE,
            deliver_policy=api.DeliverPolicy.ALL,
            inactive_threshold=60,
        ),
    )
    try:
        done = False
        while not done:
            try:
                msgs = await sub.fetch(BATCH, timeout=2)
            except (nats.errors.TimeoutError, TimeoutError):
                break  # nothing left in the stream
            batch, done = _take(msgs, result)
            await _apply(conn, batch, result, known)
            result.replayed += len(batch)
            progress(msgs[-1].metadata.sequence.stream, result.up_to_seq)
            done = done or msgs[-1].metadata.num_pending == 0
    finally:
        await sub.unsubscribe()


def _take(msgs: list[Any], result: ReplayResult) -> tuple[list[tuple[Fill, int]], bool]:
    """The fills up to the live ledger's sequence; True once past it."""
    batch = []
    for msg in msgs:
        seq = msg.metadata.sequence.stream
        if seq > result.up_to_seq:
            return batch, True
        try:
            batch.append((decode(msg.data, Fill), seq))
        except PermanentError:
            result.unreadable += 1
    return batch, False


async def _apply(
    conn: asyncpg.Connection,
    batch: list[tuple[Fill, int]],
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
            result.refused.append(f"{item[0].venue}:{item[0].trade_id} ({type(e).__name__})")


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
