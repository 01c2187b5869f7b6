"""PostgreSQL access for the ledger: one transaction per batch of fills, idempotent on
(venue, trade_id). Position rows are locked in key order, so two writers never deadlock."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

import asyncpg

from tradebus_common.events import Fill

from .cycles import ClosedCycle, Cycle, advance
from .projection import Position, apply_fill

Key = tuple[str, str, str, str]  # account, venue, symbol, strategy
FLAG_UNKNOWN_STRATEGY = "unknown_strategy"

_LOCK_POSITION = """
INSERT INTO positions (account, venue, symbol, strategy) VALUES ($1,$2,$3,$4)
ON CONFLICT DO NOTHING"""

_SELECT_POSITION = """
SELECT quantity, cost_basis, realized_pnl, fees_paid, fill_count,
    opened_at, cycle_realized_base, cycle_fill_count, cycle_max_quantity FROM positions
WHERE account=$1 AND venue=$2 AND symbol=$3 AND strategy=$4 FOR UPDATE"""

_INSERT_FILL = """
INSERT INTO fills (fill_id, venue, trade_id, account, strategy, symbol, client_order_id,
    venue_order_id, side, quantity, price, fee, fee_currency, liquidity, reconciliation,
    correlation_id, event_ts, stream_seq, arrival_price, flags,
    pos_quantity, pos_cost_basis, pos_realized_pnl, pos_fees_paid, pos_fill_count)
VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,
    $20,$21,$22,$23,$24,$25)
ON CONFLICT DO NOTHING RETURNING fill_id"""

_SELECT_RECORDED = """
SELECT fill_id, flags, pos_quantity AS quantity, pos_cost_basis AS cost_basis,
    pos_realized_pnl AS realized_pnl, pos_fees_paid AS fees_paid, pos_fill_count AS fill_count
FROM fills WHERE venue=$1 AND trade_id=$2"""

_UPDATE_POSITION = """
UPDATE positions SET quantity=$5, cost_basis=$6, avg_price=$7, realized_pnl=$8, fees_paid=$9,
    fill_count=$10, opened_at=$11, cycle_realized_base=$12, cycle_fill_count=$13,
    cycle_max_quantity=$14, updated_at=now()
WHERE account=$1 AND venue=$2 AND symbol=$3 AND strategy=$4"""

_INSERT_CYCLE = """
INSERT INTO position_cycles (closing_fill_id, account, venue, symbol, strategy, direction,
    max_quantity, realized_pnl, fill_count, opened_at, closed_at)
VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11)"""

_MARK_SEQUENCE = """
INSERT INTO processed_sequence (consumer, stream_seq) VALUES ($1, $2)
ON CONFLICT (consumer) DO UPDATE
SET stream_seq = GREATEST(processed_sequence.stream_seq, EXCLUDED.stream_seq), updated_at = now()"""


@dataclass(frozen=True)
class RecordedFill:
    fill_id: str  # the id it was first recorded under
    position: Position  # right after this fill
    new: bool  # False: a redelivery or replay, nothing changed
    flags: str = ""
    closed: ClosedCycle | None = None


@dataclass
class _Book:
    position: Position
    cycle: Cycle
    dirty: bool = False


def key_of(fill: Fill) -> Key:
    return (fill.account, fill.venue, fill.symbol, fill.strategy)


async def record_batch(
    conn: asyncpg.Connection,
    fills: Sequence[tuple[Fill, int | None]],
    known_strategies: Collection[str] | None,
    consumer: str,
) -> list[RecordedFill]:
    """Book the fills (each with its stream sequence) in one transaction, in order. A fill
    already recorded (same venue and trade id) changes nothing and returns what was recorded
    then. Returns one result per fill."""
    async with conn.transaction():
        books = {k: await _lock(conn, k) for k in sorted({key_of(f) for f, _ in fills})}
        results = [await _book_one(conn, books, f, s, known_strategies) for f, s in fills]
        for k, book in books.items():
            if book.dirty:
                await _save(conn, k, book)
        seqs = [s for _, s in fills if s is not None]
        if seqs:
            await conn.execute(_MARK_SEQUENCE, consumer, max(seqs))
    return results


async def _lock(conn: asyncpg.Connection, key: Key) -> _Book:
    await conn.execute(_LOCK_POSITION, *key)
    row = dict(await conn.fetchrow(_SELECT_POSITION, *key))  # row lock: one writer per position
    cycle = Cycle(
        opened_at=row.pop("opened_at"),
        realized_base=row.pop("cycle_realized_base"),
        fill_count=row.pop("cycle_fill_count"),
        max_quantity=row.pop("cycle_max_quantity"),
    )
    return _Book(Position(**row), cycle)


def fill_flags(fill: Fill, known_strategies: Collection[str] | None) -> str:
    if known_strategies is not None and fill.strategy not in known_strategies:
        return FLAG_UNKNOWN_STRATEGY
    return ""


async def _book_one(
    conn: asyncpg.Connection,
    books: dict[Key, _Book],
    fill: Fill,
    seq: int | None,
    known_strategies: Collection[str] | None,
) -> RecordedFill:
    book = books[key_of(fill)]
    pos = apply_fill(book.position, fill)
    flags = fill_flags(fill, known_strategies)
    inserted = await conn.fetchval(_INSERT_FILL, *_fill_args(fill, seq), flags, *_pos(pos))
    if inserted is None:
        return await _already_recorded(conn, fill)
    cycle, closed = advance(book.cycle, book.position, pos, fill.ts)
    if closed is not None:
        await conn.execute(_INSERT_CYCLE, fill.id, *key_of(fill), *_cycle(closed))
    book.position, book.cycle, book.dirty = pos, cycle, True
    return RecordedFill(fill.id, pos, new=True, flags=flags, closed=closed)


async def _save(conn: asyncpg.Connection, key: Key, book: _Book) -> None:
    pos, cycle = book.position, book.cycle
    await conn.execute(
        _UPDATE_POSITION,
        *key,
        pos.quantity,
        pos.cost_basis,
        pos.avg_price,
        pos.realized_pnl,
        pos.fees_paid,
        pos.fill_count,
        cycle.opened_at,
        cycle.realized_base,
        cycle.fill_count,
        cycle.max_quantity,
    )


async def record_fill(
    pool: asyncpg.Pool,
    fill: Fill,
    stream_seq: int | None,
    known_strategies: Collection[str] | None = None,
    consumer: str = "position-ledger",
) -> RecordedFill:
    """One fill in its own transaction (the per-message path)."""
    async with pool.acquire() as conn:
        [recorded] = await record_batch(conn, [(fill, stream_seq)], known_strategies, consumer)
    return recorded


async def _already_recorded(conn: asyncpg.Connection, fill: Fill) -> RecordedFill:
    row = dict(await conn.fetchrow(_SELECT_RECORDED, fill.venue, fill.trade_id))
    return RecordedFill(
        row.pop("fill_id"), flags=row.pop("flags"), position=Position(**row), new=False
    )


def _fill_args(fill: Fill, stream_seq: int | None) -> tuple:
    return (
        fill.id,
        fill.venue,
        fill.trade_id,
        fill.account,
        fill.strategy,
        fill.symbol,
        fill.client_order_id,
        fill.venue_order_id,
        fill.side.value,
        fill.quantity,
        fill.price,
        fill.fee,
        fill.fee_currency,
        fill.liquidity.value,
        fill.reconciliation,
        fill.correlation_id,
        fill.ts,
        stream_seq,
        fill.arrival_price,
    )


def _pos(pos: Position) -> tuple:
    return (pos.quantity, pos.cost_basis, pos.realized_pnl, pos.fees_paid, pos.fill_count)


def _cycle(c: ClosedCycle) -> tuple:
    return (
        c.direction,
        c.max_quantity,
        c.realized_pnl,
        c.fill_count,
        c.opened_at,
        c.closed_at,
    )
