"""The events the gateway publishes about an order, built from the venue's record.

Ids derive from the approval id, the client order id and the venue's trade ids, so the
same record always gives the same events and a replay deduplicates.
"""

from __future__ import annotations

import msgspec

from tradebus_common.events import (
    Alert,
    AlertCode,
    CancelReason,
    Event,
    Fill,
    OrderAccepted,
    OrderApproved,
    OrderCanceled,
    OrderRejected,
    OrderSubmitted,
    RejectReason,
    Severity,
)
from tradebus_common.ids import derive_id

from .venues.base import VenueOrder, VenueOrderStatus


def fill_id(venue: str, trade_id: str) -> str:
    return derive_id(f"{venue}:{trade_id}", "fill")


def _common(venue: str, order: VenueOrder) -> dict[str, str]:
    return {
        "client_order_id": order.client_order_id,
        "venue": venue,
        "symbol": order.symbol,
        "strategy": order.strategy,
        "venue_order_id": order.venue_order_id,
    }


def order_events(order: OrderApproved, result: VenueOrder) -> list[Event]:
    """What a submit produced: submitted, then rejected, or accepted plus any fills."""
    # The approval is the authority on who asked; a venue record may not carry it.
    result = msgspec.structs.replace(
        result,
        strategy=order.strategy,
        approved_id=order.id,
        correlation_id=order.correlation_id,
        exit_reason=order.exit_reason,
    )
    common = {**_common(order.venue, result), "strategy": order.strategy}
    events: list[Event] = [
        OrderSubmitted(
            id=derive_id(order.id, "submitted"),
            side=order.side,
            quantity=order.quantity,
            order_type=order.order_type,
            limit_price=order.limit_price,
            **common,
        )
    ]
    if result.status is VenueOrderStatus.REJECTED:
        return events + rejected_events(order, result, common)
    events.append(OrderAccepted(id=derive_id(order.id, "accepted"), **common))
    return events + new_fills(order.venue, None, result)


def rejected_events(
    order: OrderApproved, result: VenueOrder, common: dict[str, str]
) -> list[Event]:
    reason = result.reject_reason or RejectReason.VENUE_REJECTED
    return [
        OrderRejected(
            id=derive_id(order.id, "rejected"), reason=reason, detail=result.reject_detail, **common
        ),
        Alert(
            id=derive_id(order.id, "rejected-alert"),
            severity=Severity.WARNING,
            source="execution-gateway",
            code=AlertCode.VENUE_REJECTED,
            message=f"{order.venue} rejected {order.client_order_id}: {reason} "
            f"{result.reject_detail}".strip(),
            dedup_key=f"execution-gateway:rejected:{order.venue}",
        ),
    ]


def new_fills(venue: str, before: VenueOrder | None, after: VenueOrder) -> list[Event]:
    """A Fill for each execution in `after` that `before` did not have."""
    seen = len(before.fills) if before else 0
    return [
        Fill(
            id=fill_id(venue, f.trade_id),
            correlation_id=after.correlation_id,
            causation_id=after.approved_id,
            venue=venue,
            symbol=after.symbol,
            strategy=after.strategy,
            client_order_id=after.client_order_id,
            venue_order_id=after.venue_order_id,
            trade_id=f.trade_id,
            side=after.side,
            quantity=f.quantity,
            price=f.price,
            fee=f.fee,
            fee_currency=f.fee_currency,
            liquidity=f.liquidity,
            arrival_price=after.arrival_price,
            exit_reason=after.exit_reason,
        )
        for f in after.fills[seen:]
    ]


def canceled_event(
    venue: str, order: VenueOrder, reason: CancelReason, cause_id: str, detail: str = ""
) -> OrderCanceled:
    return OrderCanceled(
        id=derive_id(cause_id, "cancel", order.client_order_id),
        reason=reason,
        detail=detail,
        correlation_id=order.correlation_id,
        causation_id=cause_id,
        **_common(venue, order),
    )
