"""Read side and equity persistence: positions, closed cycles, fills, equity and daily P&L."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

import asyncpg

from .accounting import Holding, Valuation
from .projection import Position
from .stats import Execution, FillRate, Trade


async def holdings(conn: asyncpg.Connection) -> list[Holding]:
    rows = await conn.fetch(
        "SELECT account, venue, symbol, strategy, quantity, cost_basis, realized_pnl, "
        "fees_paid, fill_count FROM positions ORDER BY account, venue, symbol, strategy"
    )
    return [
        Holding(
            r["account"],
            r["venue"],
            r["symbol"],
            r["strategy"],
            Position(
                r["quantity"], r["cost_basis"], r["realized_pnl"], r["fees_paid"], r["fill_count"]
            ),
        )
        for r in rows
    ]


async def high_water_mark(conn: asyncpg.Connection, account: str) -> Decimal | None:
    return await conn.fetchval(
        "SELECT max(high_water_mark) FROM equity_snapshots WHERE account=$1", account
    )


async def day_open_equity(conn: asyncpg.Connection, account: str, day: date) -> Decimal | None:
    """Today's opening equity, else the last close before today (None: first day ever)."""
    row = await conn.fetchrow(
        "SELECT day, open_equity, close_equity FROM daily_pnl WHERE account=$1 AND day<=$2 "
        "ORDER BY day DESC LIMIT 1",
        account,
        day,
    )
    if row is None:
        return None
    return row["open_equity"] if row["day"] == day else row["close_equity"]


async def save_snapshot(
    conn: asyncpg.Connection,
    v: Valuation,
    ts: datetime,
    hwm: Decimal,
    dd: Decimal,
    day: date,
    open_equity: Decimal,
) -> None:
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO equity_snapshots (account, ts, equity, cash, realized_pnl, "
            "unrealized_pnl, high_water_mark, drawdown, gross_exposure, net_exposure) "
            "VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10) ON CONFLICT DO NOTHING",
            v.account, ts, v.equity, v.cash, v.realized_pnl, v.unrealized_pnl, hwm, dd,
            v.gross_exposure, v.net_exposure,
        )  # fmt: skip
        await conn.execute(
            "INSERT INTO daily_pnl (account, day, open_equity, close_equity, pnl) "
            "VALUES ($1,$2,$3,$4,$4::numeric-$3::numeric) ON CONFLICT (account, day) DO UPDATE SET "
            "close_equity=EXCLUDED.close_equity, pnl=EXCLUDED.close_equity-daily_pnl.open_equity, "
            "updated_at=now()",
            v.account,
            day,
            open_equity,
            v.equity,
        )


async def closed_trades(
    conn: asyncpg.Connection,
    strategy: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> dict[str, list[Trade]]:
    rows = await conn.fetch(
        "SELECT strategy, realized_pnl, opened_at, closed_at, exit_reason, mae_pct, mfe_pct "
        "FROM position_cycles "
        "WHERE ($1::text IS NULL OR strategy=$1) AND ($2::timestamptz IS NULL OR closed_at>=$2) "
        "AND ($3::timestamptz IS NULL OR closed_at<$3) ORDER BY closed_at, closing_fill_id",
        strategy,
        since,
        until,
    )
    out: dict[str, list[Trade]] = {}
    for r in rows:
        out.setdefault(r["strategy"], []).append(
            Trade(
                r["realized_pnl"],
                r["opened_at"],
                r["closed_at"],
                r["exit_reason"],
                r["mae_pct"],
                r["mfe_pct"],
            )
        )
    return out


async def strategies(conn: asyncpg.Connection) -> list[str]:
    rows = await conn.fetch("SELECT DISTINCT strategy FROM positions ORDER BY strategy")
    return [r["strategy"] for r in rows]


async def fills(
    conn: asyncpg.Connection,
    since: datetime | None,
    until: datetime | None,
    limit: int,
) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT fill_id, venue, trade_id, account, strategy, symbol, client_order_id, side, "
        "quantity, price, fee, fee_currency, liquidity, reconciliation, flags, event_ts, "
        "stream_seq FROM fills WHERE ($1::timestamptz IS NULL OR event_ts>=$1) AND "
        "($2::timestamptz IS NULL OR event_ts<$2) ORDER BY event_ts, fill_id LIMIT $3",
        since,
        until,
        limit,
    )
    return [dict(r) for r in rows]


async def fill_count(conn: asyncpg.Connection) -> int:
    return await conn.fetchval("SELECT count(*) FROM fills")


async def executions(
    conn: asyncpg.Connection,
    strategy: str | None,
    since: datetime | None,
    until: datetime | None,
) -> dict[str, list[Execution]]:
    rows = await conn.fetch(
        "SELECT strategy, side, quantity, price, arrival_price FROM fills "
        "WHERE arrival_price IS NOT NULL AND ($1::text IS NULL OR strategy=$1) "
        "AND ($2::timestamptz IS NULL OR event_ts>=$2) AND ($3::timestamptz IS NULL OR event_ts<$3)",
        strategy,
        since,
        until,
    )
    out: dict[str, list[Execution]] = {}
    for r in rows:
        out.setdefault(r["strategy"], []).append(
            Execution(r["side"], r["quantity"], r["price"], r["arrival_price"])
        )
    return out


# Fill rate over finished orders first seen in the window: an order is finished when its fills
# reach its quantity (submitted, else approved) or the venue/cancel closed it. Orders still
# working are left out: they would count as unfilled while they may yet fill.
_FILL_RATES = """
WITH o AS (
    SELECT client_order_id, strategy, coalesce(submitted_quantity, approved_quantity) AS qty,
        status FROM ledger_orders
    WHERE ($1::text IS NULL OR strategy = $1) AND ($2::timestamptz IS NULL OR first_ts >= $2)
        AND ($3::timestamptz IS NULL OR first_ts < $3)),
f AS (
    SELECT client_order_id, sum(quantity) AS filled FROM fills
    WHERE client_order_id IN (SELECT client_order_id FROM o) GROUP BY client_order_id)
SELECT o.strategy, count(*) AS orders, count(f.filled) AS orders_filled,
    sum(least(coalesce(f.filled, 0), o.qty)) AS filled, sum(o.qty) AS ordered
FROM o LEFT JOIN f USING (client_order_id)
WHERE o.qty IS NOT NULL AND (o.status = 'closed' OR coalesce(f.filled, 0) >= o.qty)
GROUP BY o.strategy"""


async def fill_rates(
    conn: asyncpg.Connection,
    strategy: str | None,
    since: datetime | None,
    until: datetime | None,
) -> dict[str, FillRate]:
    rows = await conn.fetch(_FILL_RATES, strategy, since, until)
    return {
        r["strategy"]: FillRate(r["orders"], r["orders_filled"], r["filled"], r["ordered"])
        for r in rows
    }


async def closed_trade_count(conn: asyncpg.Connection, since: datetime | None = None) -> int:
    return await conn.fetchval(
        "SELECT count(*) FROM position_cycles WHERE $1::timestamptz IS NULL OR closed_at >= $1",
        since,
    )


# The gateway's per-order reports (order_quality), aggregated per strategy: time to first
# fill (mean), implementation shortfall (sum, quote currency; bps weighted by quantity).
_QUALITY = """
SELECT strategy, count(*) AS reports, avg(time_to_first_fill_ms) AS ttf_ms,
    sum(implementation_shortfall) AS shortfall,
    sum(implementation_shortfall_bps * quantity) FILTER (
        WHERE implementation_shortfall_bps IS NOT NULL)
        / nullif(sum(quantity) FILTER (WHERE implementation_shortfall_bps IS NOT NULL), 0)
        AS shortfall_bps
FROM order_quality
WHERE ($1::text IS NULL OR strategy = $1) AND ($2::timestamptz IS NULL OR event_ts >= $2)
    AND ($3::timestamptz IS NULL OR event_ts < $3)
GROUP BY strategy"""


async def quality(
    conn: asyncpg.Connection,
    strategy: str | None,
    since: datetime | None,
    until: datetime | None,
) -> dict[str, asyncpg.Record]:
    return {r["strategy"]: r for r in await conn.fetch(_QUALITY, strategy, since, until)}
