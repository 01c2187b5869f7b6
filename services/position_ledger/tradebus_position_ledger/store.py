"""PostgreSQL access for the ledger: one transaction per batch, idempotent on
(venue, trade_id). Position rows are locked in key order, so two writers never deadlock.

A batch costs a fixed handful of statements, not a few per fill: lock every position of the
batch (one SELECT ... FOR UPDATE), read which of its orders are known, book everything in
memory with the pure accounting code, then write the fills with one COPY and the cycles,
positions and orders with one pipelined executemany each. Fills are booked optimistically
(see record_batch); reading which fills are already booked, when needed, happens after the
position locks, so it is race-free: whoever books a fill holds its position's lock."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

import asyncpg

from tradebus_common.events import Event, ExecutionQuality, Fill, MarketTick

from .cycles import ClosedCycle, Cycle, advance
from .orders import OrderEvents, OrderRow, known_orders, order_row, save_orders, save_quality
from .projection import Position, apply_fill

Key = tuple[str, str, str, str]  # account, venue, symbol, strategy
FLAG_UNKNOWN_STRATEGY = "unknown_strategy"
FLAG_UNKNOWN_ORDER = "unknown_order"

_INSERT_POSITIONS = """
INSERT INTO positions (account, venue, symbol, strategy)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) ORDER BY 1, 2, 3, 4
ON CONFLICT DO NOTHING"""

_SELECT_POSITIONS = """
SELECT account, venue, symbol, strategy, quantity, cost_basis, realized_pnl, fees_paid,
    fill_count, opened_at, cycle_realized_base, cycle_fill_count, cycle_max_quantity,
    cycle_low, cycle_high
FROM positions
WHERE (account, venue, symbol, strategy) IN (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]))
ORDER BY account, venue, symbol, strategy FOR UPDATE"""

_SELECT_RECORDED = """
SELECT venue, trade_id, fill_id, flags, pos_quantity AS quantity, pos_cost_basis AS cost_basis,
    pos_realized_pnl AS realized_pnl, pos_fees_paid AS fees_paid, pos_fill_count AS fill_count
FROM fills WHERE (venue, trade_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))"""

# The fills of a batch go in with one COPY (the fastest bulk path; measured against
# INSERT ... unnest and executemany). COPY has no ON CONFLICT: a fill booked before makes it
# fail with a unique violation, which rolls the transaction back (see record_batch).
FILL_COLUMNS = [
    "fill_id", "venue", "trade_id", "account", "strategy", "symbol", "client_order_id",
    "venue_order_id", "side", "quantity", "price", "fee", "fee_currency", "liquidity",
    "reconciliation", "correlation_id", "event_ts", "stream_seq", "arrival_price",
    "exit_reason", "flags", "pos_quantity", "pos_cost_basis", "pos_realized_pnl",
    "pos_fees_paid", "pos_fill_count",
]  # fmt: skip

_UPDATE_POSITION = """
UPDATE positions SET quantity=$5, cost_basis=$6, avg_price=$7, realized_pnl=$8, fees_paid=$9,
    fill_count=$10, opened_at=$11, cycle_realized_base=$12, cycle_fill_count=$13,
    cycle_max_quantity=$14, cycle_low=$15, cycle_high=$16, updated_at=now()
WHERE account=$1 AND venue=$2 AND symbol=$3 AND strategy=$4"""

_INSERT_CYCLE = """
INSERT INTO position_cycles (closing_fill_id, account, venue, symbol, strategy, direction,
    max_quantity, realized_pnl, fill_count, opened_at, closed_at, exit_reason, entry_price,
    low_price, high_price, mae_pct, mfe_pct)
VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17)"""

_MARK_SEQUENCE = """
INSERT INTO processed_sequence (consumer, stream_seq) VALUES ($1, $2)
ON CONFLICT (consumer) DO UPDATE
SET stream_seq = GREATEST(processed_sequence.stream_seq, EXCLUDED.stream_seq), updated_at = now()"""

# Market ticks widen the price range of every open cycle on their symbol, counting only ticks
# from the cycle's opening on (the tick and fill consumers run apart: after a restart, old
# ticks may arrive after newer fills). Rows are locked in the ingest's key order, only rows a
# tick actually widens, and the opening is checked again on the locked row (a fill may have
# closed the cycle and opened another meanwhile).
_WIDEN_CYCLES = """
WITH t(venue, symbol, price, ts) AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::numeric[], $4::timestamptz[])),
seen AS (
    SELECT p.account, p.venue, p.symbol, p.strategy, p.opened_at,
        min(t.price) AS lo, max(t.price) AS hi
    FROM positions p JOIN t ON p.venue = t.venue AND p.symbol = t.symbol
        AND t.ts >= p.opened_at
    WHERE p.quantity <> 0
    GROUP BY 1, 2, 3, 4, 5),
target AS (
    SELECT p.account, p.venue, p.symbol, p.strategy, seen.lo, seen.hi
    FROM positions p JOIN seen ON p.account = seen.account AND p.venue = seen.venue
        AND p.symbol = seen.symbol AND p.strategy = seen.strategy
    WHERE p.opened_at = seen.opened_at AND p.quantity <> 0
        AND (p.cycle_low IS NULL OR p.cycle_low > seen.lo
            OR p.cycle_high IS NULL OR p.cycle_high < seen.hi)
    ORDER BY 1, 2, 3, 4 FOR UPDATE OF p)
UPDATE positions p SET cycle_low = least(p.cycle_low, target.lo),
    cycle_high = greatest(p.cycle_high, target.hi)
FROM target WHERE p.account = target.account AND p.venue = target.venue
    AND p.symbol = target.symbol AND p.strategy = target.strategy"""


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


@dataclass
class _Writes:
    fills: list[tuple] = field(default_factory=list)
    cycles: list[tuple] = field(default_factory=list)
    orders: list[OrderRow] = field(default_factory=list)
    quality: list[ExecutionQuality] = field(default_factory=list)


def key_of(fill: Fill) -> Key:
    return (fill.account, fill.venue, fill.symbol, fill.strategy)


def _columns(rows: Collection[tuple]) -> list[list]:
    return [list(c) for c in zip(*rows, strict=True)] if rows else []


async def record_batch(
    conn: asyncpg.Connection,
    items: Sequence[tuple[Event, int | None]],
    known_strategies: Collection[str] | None,
    consumer: str,
) -> list[RecordedFill | None]:
    """Book the fills and order events (each with its stream sequence) in one transaction, in
    order. A fill already recorded (same venue and trade id) changes nothing and returns what
    was recorded then. Returns one result per item: None for an order event.

    Optimistic: a batch is first booked as if none of its fills were booked before (the usual
    case: one statement less). If one was, the fills' COPY fails on the unique key, the
    transaction rolls back, and the batch is redone after reading which fills are booked;
    those are no-ops. A unique violation then is not a redelivery: it is raised."""
    try:
        return await _record(conn, items, known_strategies, consumer, optimistic=True)
    except asyncpg.UniqueViolationError:
        return await _record(conn, items, known_strategies, consumer, optimistic=False)


async def _record(
    conn: asyncpg.Connection,
    items: Sequence[tuple[Event, int | None]],
    known_strategies: Collection[str] | None,
    consumer: str,
    optimistic: bool,
) -> list[RecordedFill | None]:
    fills = [f for f, _ in items if isinstance(f, Fill)]
    async with conn.transaction():
        books = await _lock(conn, sorted({key_of(f) for f in fills}))
        recorded = {} if optimistic else await _recorded(conn, fills)
        known = await _known(conn, fills)
        writes, results = _Writes(), []
        for event, seq in items:
            if isinstance(event, OrderEvents):
                writes.orders.append(order_row(event, seq))
                known.add(event.client_order_id)
                results.append(None)
            elif isinstance(event, ExecutionQuality):
                writes.quality.append(event)
                results.append(None)
            elif isinstance(event, Fill):
                flags = fill_flags(event, known_strategies, known)
                results.append(_book(books, recorded, writes, event, seq, flags))
        await _write(conn, books, writes)
        seqs = [s for _, s in items if s is not None]
        if seqs:
            await conn.execute(_MARK_SEQUENCE, consumer, max(seqs))
    return results


async def _lock(conn: asyncpg.Connection, keys: list[Key]) -> dict[Key, _Book]:
    """Lock the positions (row locks, key order: one writer per position); a key with no row
    yet gets one, locked by its insert. Existing rows first, so the steady state costs one
    statement."""
    if not keys:
        return {}
    books = await _select_books(conn, keys)
    missing = [k for k in keys if k not in books]
    if missing:
        await conn.execute(_INSERT_POSITIONS, *_columns(missing))
        # A row someone created meanwhile was skipped by ON CONFLICT: this reads it, locked.
        books.update(await _select_books(conn, missing))
    return books


async def _select_books(conn: asyncpg.Connection, keys: list[Key]) -> dict[Key, _Book]:
    books: dict[Key, _Book] = {}
    for r in await conn.fetch(_SELECT_POSITIONS, *_columns(keys)):
        row = dict(r)
        key = (row.pop("account"), row.pop("venue"), row.pop("symbol"), row.pop("strategy"))
        cycle = Cycle(
            opened_at=row.pop("opened_at"),
            realized_base=row.pop("cycle_realized_base"),
            fill_count=row.pop("cycle_fill_count"),
            max_quantity=row.pop("cycle_max_quantity"),
            low=row.pop("cycle_low"),
            high=row.pop("cycle_high"),
        )
        books[key] = _Book(Position(**row), cycle)
    return books


async def _recorded(conn: asyncpg.Connection, fills: list[Fill]) -> dict[tuple, RecordedFill]:
    if not fills:
        return {}
    rows = await conn.fetch(_SELECT_RECORDED, [f.venue for f in fills], [f.trade_id for f in fills])
    out = {}
    for r in rows:
        row = dict(r)
        k = (row.pop("venue"), row.pop("trade_id"))
        out[k] = RecordedFill(
            row.pop("fill_id"), flags=row.pop("flags"), position=Position(**row), new=False
        )
    return out


async def _known(conn: asyncpg.Connection, fills: list[Fill]) -> set[str]:
    """The fills' orders already recorded before this batch (the batch's own order events
    are added as they come, so an order is known only to the fills after it)."""
    asked = {f.client_order_id for f in fills if not f.reconciliation}
    asked |= {f.parent_id for f in fills if f.parent_id}
    return await known_orders(conn, asked)


def fill_flags(
    fill: Fill, known_strategies: Collection[str] | None, known: set[str] | None = None
) -> str:
    """Flags of a fill that is booked anyway: a strategy not configured, an order the system
    never approved nor submitted. A reconciliation fill has no order by nature (the
    reconciler books what the venue did and alerts on the mismatch itself). An algorithm's
    child fill is known when its parent order (`parent_id`) is."""
    flags = []
    if known_strategies is not None and fill.strategy not in known_strategies:
        flags.append(FLAG_UNKNOWN_STRATEGY)
    if known is not None and not fill.reconciliation and not _known_order(fill, known):
        flags.append(FLAG_UNKNOWN_ORDER)
    return ",".join(flags)


def _known_order(fill: Fill, known: set[str]) -> bool:
    return fill.client_order_id in known or bool(fill.parent_id and fill.parent_id in known)


def _book(
    books: dict[Key, _Book],
    recorded: dict[tuple, RecordedFill],
    writes: _Writes,
    fill: Fill,
    seq: int | None,
    flags: str,
) -> RecordedFill:
    done = recorded.get((fill.venue, fill.trade_id))
    if done is not None:  # booked before, or earlier in this very batch
        return RecordedFill(done.fill_id, done.position, new=False, flags=done.flags)
    book = books[key_of(fill)]
    pos = apply_fill(book.position, fill)
    reason = fill.exit_reason.value if fill.exit_reason else None
    cycle, closed = advance(book.cycle, book.position, pos, fill.ts, fill.price, reason)
    writes.fills.append((*_fill_args(fill, seq), reason, flags, *_pos(pos)))
    if closed is not None:
        writes.cycles.append((fill.id, *key_of(fill), *_cycle(closed)))
    book.position, book.cycle, book.dirty = pos, cycle, True
    result = RecordedFill(fill.id, pos, new=True, flags=flags, closed=closed)
    recorded[(fill.venue, fill.trade_id)] = result
    return result


async def _write(conn: asyncpg.Connection, books: dict[Key, _Book], writes: _Writes) -> None:
    if writes.fills:
        await conn.copy_records_to_table("fills", records=writes.fills, columns=FILL_COLUMNS)

    if writes.cycles:
        await conn.executemany(_INSERT_CYCLE, writes.cycles)
    dirty = [(k, b) for k, b in books.items() if b.dirty]
    if dirty:
        await conn.executemany(_UPDATE_POSITION, [(*k, *_position_args(b)) for k, b in dirty])
    await save_orders(conn, writes.orders)
    await save_quality(conn, writes.quality)


def _position_args(book: _Book) -> tuple:
    pos, cycle = book.position, book.cycle
    return (
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
        cycle.low,
        cycle.high,
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
    assert recorded is not None
    return recorded


async def widen_cycles(conn: asyncpg.Connection, ticks: Sequence[MarketTick]) -> None:
    """Fold a batch of ticks into the price ranges of the open cycles (MAE/MFE)."""
    if ticks:
        cols = [[t.venue for t in ticks], [t.symbol for t in ticks]]
        await conn.execute(_WIDEN_CYCLES, *cols, [t.price for t in ticks], [t.ts for t in ticks])


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
        c.exit_reason,
        c.entry_price,
        c.low_price,
        c.high_price,
        c.mae_pct,
        c.mfe_pct,
    )
