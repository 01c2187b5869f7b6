"""OrderApproved -> venue -> order events and fills, idempotent on the client order id."""

from __future__ import annotations

import logging

import msgspec
from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from tradebus_common.bus import current_delivery
from tradebus_common.errors import ErrorCode, PermanentError
from tradebus_common.events import (
    CancelReason,
    Event,
    MarketTick,
    OrderApproved,
    TradingState,
    TradingStateChanged,
)

from .events_out import canceled_event, new_fills, order_events
from .venues.base import Venue, VenueOrder, VenueOrderStatus
from .venues.paper import PaperVenue

log = logging.getLogger("tradebus.execution_gateway")


class JournalEntry(msgspec.Struct, kw_only=True):
    client_order_id: str
    approved_id: str
    status: str


_journal_encoder = msgspec.json.Encoder()


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


class TickHandler:
    """Market ticks drive the paper venue: resting orders fill when the price reaches them."""

    def __init__(self, venues: dict[str, Venue]) -> None:
        self.venues = venues

    async def __call__(self, tick: MarketTick) -> list[Event]:
        venue = self.venues.get(tick.venue)
        if not isinstance(venue, PaperVenue):
            return []
        delivery = current_delivery.get()
        seq = delivery.stream_seq if delivery else 0
        events: list[Event] = []
        for before, after in await venue.on_tick(tick, seq):
            events += new_fills(tick.venue, before, after)
        return events


def in_scope(scope: str, venue: str, order: VenueOrder) -> bool:
    """Scopes: global (or all), venue:<name>, symbol:<symbol>, strategy:<name>."""
    kind, _, name = scope.partition(":")
    if kind in ("", "global", "all"):
        return True
    return {"venue": venue, "symbol": order.symbol, "strategy": order.strategy}.get(kind) == name


class HaltHandler:
    """A halt cancels every working order in its scope (R4). Cancels are never blocked."""

    def __init__(self, venues: dict[str, Venue]) -> None:
        self.venues = venues

    async def __call__(self, change: TradingStateChanged) -> list[Event]:
        if change.state is not TradingState.HALTED:
            return []
        events: list[Event] = []
        for name, venue in self.venues.items():
            for order in await venue.open_orders():
                if in_scope(change.scope, name, order):
                    events += await self._cancel(name, venue, order, change)
        if events:
            log.warning(
                "halt: working orders canceled", extra={"count": len(events), "scope": change.scope}
            )
        return events

    async def _cancel(
        self, name: str, venue: Venue, order: VenueOrder, change: TradingStateChanged
    ) -> list[Event]:
        after = await venue.cancel(order.client_order_id)
        if after is None or after.status is not VenueOrderStatus.CANCELED:
            return []  # it filled first: its fill has been (or will be) announced
        return [
            canceled_event(
                name, after, CancelReason.HALT, change.id, f"trading halted: {change.reason}"
            )
        ]
