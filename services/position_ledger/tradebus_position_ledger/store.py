"""PostgreSQL access for the ledger: one transaction per fill, idempotent on (venue, trade_id)."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from tradebus_common.events import Fill

from .projection import Position, apply_fill

_LOCK_POSITION = """
INSERT INTO positions (account, venue, symbol, strategy) VALUES ($1,$2,$3,$4)
ON CONFLICT DO NOTHING"""

_SELECT_POSITION = """
SELECT quantity, cost_basis, realized_pnl, fees_paid, fill_count FROM positions
WHERE account=$1 AND venue=$2 AND symbol=$3 AND strategy=$4 FOR UPDATE"""

_INSERT_FILL = """
INSERT INTO fills (fill_id, venue, trade_id, account, strategy, symbol, client_order_id,
    venue_order_id, side, quantity, price, fee, fee_currency, liquidity, reconciliation,
    correlation_id, event_ts, stream_seq,
    pos_quantity, pos_cost_basis, pos_realized_pnl, pos_fees_paid, pos_fill_count)
VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20,$21,$22,$23)
ON CONFLICT DO NOTHING RETURNING fill_id"""

_SELECT_RECORDED = """
SELECT fill_id, pos_quantity AS quantity, pos_cost_basis AS cost_basis,
    pos_realized_pnl AS realized_pnl, pos_fees_paid AS fees_paid, pos_fill_count AS fill_count
FROM fills WHERE venue=$1 AND trade_id=$2"""

_UPDATE_POSITION = """
UPDATE positions SET quantity=$5, cost_basis=$6, avg_price=$7, realized_pnl=$8, fees_paid=$9,
    fill_count=$10, updated_at=now()
WHERE account=$1 AND venue=$2 AND symbol=$3 AND strategy=$4"""


@dataclass(frozen=True)
class RecordedFill:
    fill_id: str  # the id it was first recorded under
    position: Position  # right after this fill
    new: bool  # False: a redelivery or replay, nothing changed


async def record_fill(pool: asyncpg.Pool, fill: Fill, stream_seq: int | None) -> RecordedFill:
    """Insert the fill and update its position in one transaction; a fill already recorded
    (same venue and trade id) changes nothing and returns what was recorded then."""
    key = (fill.account, fill.venue, fill.symbol, fill.strategy)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(_LOCK_POSITION, *key)
        row = await conn.fetchrow(_SELECT_POSITION, *key)  # row lock: one writer per position
        pos = apply_fill(Position(**dict(row)), fill)
        inserted = await conn.fetchval(_INSERT_FILL, *_fill_args(fill, stream_seq), *_pos(pos))
        if inserted is None:
            return await _already_recorded(conn, fill)
        await conn.execute(
            _UPDATE_POSITION,
            *key,
            pos.quantity,
            pos.cost_basis,
            pos.avg_price,
            pos.realized_pnl,
            pos.fees_paid,
            pos.fill_count,
        )
        return RecordedFill(fill.id, pos, new=True)


async def _already_recorded(conn: asyncpg.Connection, fill: Fill) -> RecordedFill:
    row = dict(await conn.fetchrow(_SELECT_RECORDED, fill.venue, fill.trade_id))
    return RecordedFill(row.pop("fill_id"), Position(**row), new=False)


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
    )


def _pos(pos: Position) -> tuple:
    return (pos.quantity, pos.cost_basis, pos.realized_pnl, pos.fees_paid, pos.fill_count)
