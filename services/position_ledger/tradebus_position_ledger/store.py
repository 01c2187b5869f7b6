"""PostgreSQL access for the ledger: one transaction per fill, idempotent on (venue, trade_id)."""

from __future__ import annotations

import asyncpg

from tradebus_common.events import Fill

from .projection import Position, apply_fill

_INSERT_FILL = """
INSERT INTO fills (fill_id, venue, trade_id, account, strategy, symbol, client_order_id,
    venue_order_id, side, quantity, price, fee, fee_currency, liquidity, reconciliation,
    correlation_id, event_ts, stream_seq)
VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18)
ON CONFLICT DO NOTHING RETURNING fill_id"""

_SELECT_POSITION = """
SELECT quantity, cost_basis, realized_pnl, fees_paid, fill_count FROM positions
WHERE account=$1 AND venue=$2 AND symbol=$3 AND strategy=$4 FOR UPDATE"""

_UPSERT_POSITION = """
INSERT INTO positions (account, venue, symbol, strategy, quantity, cost_basis, avg_price,
    realized_pnl, fees_paid, fill_count, updated_at)
VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10, now())
ON CONFLICT (account, venue, symbol, strategy) DO UPDATE SET quantity=$5, cost_basis=$6,
    avg_price=$7, realized_pnl=$8, fees_paid=$9, fill_count=$10, updated_at=now()"""


async def record_fill(pool: asyncpg.Pool, fill: Fill, stream_seq: int | None) -> Position | None:
    """Insert the fill and update its position atomically. Returns the new position, or
    None if the fill was already recorded (a redelivery or a replay: no effect)."""
    key = (fill.account, fill.venue, fill.symbol, fill.strategy)
    async with pool.acquire() as conn, conn.transaction():
        inserted = await conn.fetchval(
            _INSERT_FILL,
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
        if inserted is None:
            return None
        row = await conn.fetchrow(_SELECT_POSITION, *key)
        pos = apply_fill(Position(**dict(row)) if row else Position(), fill)
        await conn.execute(
            _UPSERT_POSITION,
            *key,
            pos.quantity,
            pos.cost_basis,
            pos.avg_price,
            pos.realized_pnl,
            pos.fees_paid,
            pos.fill_count,
        )
        return pos
