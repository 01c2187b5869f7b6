"""Orders the ledger has seen: approvals (trading.order.approved.*) and the gateway's order
events (trading.order.event.*). They arrive on the fills' consumer, in stream order, so an
order is always known before its fills are booked; a fill whose client_order_id was never
approved nor submitted is an unknown order. They are also the base of the fill rate.

An order's status only moves forward (approved < submitted < accepted < closed), so a
redelivered or replayed event changes nothing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import asyncpg

from tradebus_common.events import (
    ExecutionQuality,
    OrderAccepted,
    OrderApproved,
    OrderCanceled,
    OrderExpired,
    OrderRejected,
    OrderSubmitted,
    OrderUnknown,
)

OrderEvents = (
    OrderApproved,
    OrderSubmitted,
    OrderAccepted,
    OrderRejected,
    OrderCanceled,
    OrderExpired,
    OrderUnknown,
)
CLOSE_REASONS = {
    OrderRejected: "rejected",
    OrderCanceled: "canceled",
    OrderExpired: "expired",
    OrderUnknown: "unknown",
}


@dataclass(frozen=True)
class OrderRow:
    client_order_id: str
    strategy: str
    venue: str
    symbol: str
    side: str
    approved_quantity: Decimal | None
    submitted_quantity: Decimal | None
    reference_price: Decimal | None
    status: str
    close_reason: str
    first_ts: datetime
    stream_seq: int | None


def order_row(event: object, seq: int | None) -> OrderRow:
    """What one order event says about its order."""
    e = event  # any of OrderEvents
    approved = isinstance(e, OrderApproved)
    submitted = isinstance(e, OrderSubmitted)
    if approved:
        status = "approved"
    elif submitted:
        status = "submitted"
    elif isinstance(e, OrderAccepted):
        status = "accepted"
    else:
        status = "closed"
    return OrderRow(
        client_order_id=e.client_order_id,  # type: ignore[attr-defined]
        strategy=getattr(e, "strategy", "") or "",
        venue=e.venue,  # type: ignore[attr-defined]
        symbol=e.symbol,  # type: ignore[attr-defined]
        side=e.side.value if approved or submitted else "",  # type: ignore[attr-defined]
        approved_quantity=e.quantity if approved else None,  # type: ignore[attr-defined]
        submitted_quantity=e.quantity if submitted else None,  # type: ignore[attr-defined]
        reference_price=e.reference_price if approved else None,  # type: ignore[attr-defined]
        status=status,
        close_reason=CLOSE_REASONS.get(type(e), ""),
        first_ts=e.ts,  # type: ignore[attr-defined]
        stream_seq=seq,
    )


_RANK = "array_position(ARRAY['approved','submitted','accepted','closed'], {})"
_UPSERT = f"""
INSERT INTO ledger_orders AS o (client_order_id, strategy, venue, symbol, side,
    approved_quantity, submitted_quantity, reference_price, status, close_reason, first_ts,
    stream_seq)
VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12)
ON CONFLICT (client_order_id) DO UPDATE SET
    strategy = CASE WHEN o.strategy = '' THEN EXCLUDED.strategy ELSE o.strategy END,
    side = CASE WHEN o.side = '' THEN EXCLUDED.side ELSE o.side END,
    approved_quantity = coalesce(o.approved_quantity, EXCLUDED.approved_quantity),
    submitted_quantity = coalesce(o.submitted_quantity, EXCLUDED.submitted_quantity),
    reference_price = coalesce(o.reference_price, EXCLUDED.reference_price),
    status = CASE WHEN {_RANK.format("EXCLUDED.status")} > {_RANK.format("o.status")}
        THEN EXCLUDED.status ELSE o.status END,
    close_reason = CASE WHEN o.status <> 'closed' AND EXCLUDED.status = 'closed'
        THEN EXCLUDED.close_reason ELSE o.close_reason END,
    first_ts = least(o.first_ts, EXCLUDED.first_ts),
    stream_seq = least(o.stream_seq, EXCLUDED.stream_seq)"""


async def save_orders(conn: asyncpg.Connection, rows: Sequence[OrderRow]) -> None:
    if rows:
        await conn.executemany(_UPSERT, [_args(r) for r in rows])


async def known_orders(conn: asyncpg.Connection, client_order_ids: set[str]) -> set[str]:
    if not client_order_ids:
        return set()
    rows = await conn.fetch(
        "SELECT client_order_id FROM ledger_orders WHERE client_order_id = ANY($1::text[])",
        list(client_order_ids),
    )
    return {r["client_order_id"] for r in rows}


def _args(r: OrderRow) -> tuple:
    return (
        r.client_order_id,
        r.strategy,
        r.venue,
        r.symbol,
        r.side,
        r.approved_quantity,
        r.submitted_quantity,
        r.reference_price,
        r.status,
        r.close_reason,
        r.first_ts,
        r.stream_seq,
    )


_QUALITY = """
INSERT INTO order_quality (client_order_id, strategy, venue, symbol, side, quantity,
    filled_quantity, slippage_bps, fill_rate, time_to_first_fill_ms, time_to_last_fill_ms, fees,
    implementation_shortfall, implementation_shortfall_bps, children, event_ts)
VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16)
ON CONFLICT (client_order_id) DO NOTHING"""


async def save_quality(conn: asyncpg.Connection, reports: Sequence[ExecutionQuality]) -> None:
    """The gateway publishes one report per finished order: the first one stays."""
    if reports:
        await conn.executemany(_QUALITY, [_quality_args(q) for q in reports])


def _quality_args(q: ExecutionQuality) -> tuple:
    return (
        q.client_order_id,
        q.strategy,
        q.venue,
        q.symbol,
        q.side.value,
        q.quantity,
        q.filled_quantity,
        q.slippage_bps,
        q.fill_rate,
        q.time_to_first_fill_ms,
        q.time_to_last_fill_ms,
        q.fees,
        q.implementation_shortfall,
        q.implementation_shortfall_bps,
        q.children,
        q.ts,
    )
