"""OrderApproved -> venue -> order events and fills, idempotent on the client order id."""

from __future__ import annotations

import logging

import msgspec
from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from tradebus_common.errors import ErrorCode, PermanentError
from tradebus_common.events import (
    Alert,
    AlertCode,
    Event,
    Fill,
    OrderAccepted,
    OrderApproved,
    OrderRejected,
    OrderSubmitted,
    RejectReason,
    Severity,
)
from tradebus_common.ids import derive_id

from .venues.base import Venue, VenueOrder, VenueOrderStatus

log = logging.getLogger("tradebus.execution_gateway")


class JournalEntry(msgspec.Struct, kw_only=True):
    client_order_id: str
    approved_id: str
    status: str


_journal_encoder = msgspec.json.Encoder()


def fill_id(venue: str, trade_id: str) -> str:
    return derive_id(f"{venue}:{trade_id}", "fill")


class ApprovedOrderHandler:
    def __init__(self, venues: dict[str, Venue], journal: KeyValue) -> None:
        self.venues = venues
        self.journal = journal

    async def __call__(self, order: OrderApproved) -> list[Event]:
        venue = self.venues.get(order.venue)
        if venue is None:
            raise PermanentError(f"no venue {order.venue!r} configured", ErrorCode.UNKNOWN_VENUE)
        await self._record(order, "submitting")  # durable before the venue hears of it
        result = await venue.submit(order)
        await self._record(order, result.status.value)
        return order_events(order, result)

    async def _record(self, order: OrderApproved, status: str) -> None:
        entry = JournalEntry(
            client_order_id=order.client_order_id, approved_id=order.id, status=status
        )
        data = _journal_encoder.encode(entry)
        if status == "submitting":
            try:
                await self.journal.create(order.client_order_id, data)
            except KeyWrongLastSequenceError:
                log.info(
                    "order already journaled: resolving by client order id",
                    extra={"client_order_id": order.client_order_id},
                )
            return
        await self.journal.put(order.client_order_id, data)


def order_events(order: OrderApproved, result: VenueOrder) -> list[Event]:
    """The same inputs always give the same event ids, so a replay deduplicates."""
    common = {
        "client_order_id": order.client_order_id,
        "venue": order.venue,
        "symbol": order.symbol,
        "strategy": order.strategy,
        "venue_order_id": result.venue_order_id,
    }
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
        events.append(
            OrderRejected(
                id=derive_id(order.id, "rejected"),
                reason=result.reject_reason or RejectReason.VENUE_REJECTED,
                detail=result.reject_detail,
                **common,
            )
        )
        events.append(
            Alert(
                id=derive_id(order.id, "rejected-alert"),
                severity=Severity.WARNING,
                source="execution-gateway",
                code=AlertCode.VENUE_REJECTED,
                message=(
                    f"{order.venue} rejected {order.client_order_id}: "
                    f"{result.reject_reason} {result.reject_detail}"
                ),
                dedup_key=f"execution-gateway:rejected:{order.venue}",
            )
        )
        return events
    events.append(OrderAccepted(id=derive_id(order.id, "accepted"), **common))
    events += [
        Fill(
            id=fill_id(order.venue, f.trade_id),
            venue=order.venue,
            symbol=order.symbol,
            strategy=order.strategy,
            client_order_id=order.client_order_id,
            venue_order_id=result.venue_order_id,
            trade_id=f.trade_id,
            side=order.side,
            quantity=f.quantity,
            price=f.price,
            fee=f.fee,
            fee_currency=f.fee_currency,
            liquidity=f.liquidity,
            arrival_price=result.arrival_price,
        )
        for f in result.fills
    ]
    return events
