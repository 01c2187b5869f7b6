"""OrderApproved -> venue -> order events and fills, idempotent on the client order id."""

from __future__ import annotations

import logging
import time
from decimal import Decimal

import msgspec
from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from tradebus_common.bus import current_delivery
from tradebus_common.errors import ErrorCode, PermanentError
from tradebus_common.events import (
    CancelReason,
    ControlAction,
    ControlCommand,
    Event,
    MarketTick,
    OrderApproved,
    OrderType,
    Side,
    TradingState,
    TradingStateChanged,
    VenueLatencyObserved,
)
from tradebus_common.ids import client_order_id, derive_id

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
        started = time.perf_counter()
        result = await venue.submit(order)
        latency = venue_latency(order, "create_order", time.perf_counter() - started)
        await self._record(order, result.status.value)
        return [*order_events(order, result), latency]

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


def venue_latency(order: OrderApproved, operation: str, seconds: float) -> VenueLatencyObserved:
    """One venue call's round trip, for the latency monitor (A4) and breaker (R5)."""
    return VenueLatencyObserved(
        id=derive_id(order.id, "latency", operation),
        venue=order.venue,
        operation=operation,
        latency_ms=round(seconds * 1000),
    )


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


async def cancel_in_scope(
    venues: dict[str, Venue], scope: str, cause_id: str, detail: str
) -> list[Event]:
    """Cancel every working order in scope. Cancels are never blocked by a halt."""
    events: list[Event] = []
    for name, venue in venues.items():
        for order in await venue.open_orders():
            if not in_scope(scope, name, order):
                continue
            after = await venue.cancel(order.client_order_id)
            if after is not None and after.status is VenueOrderStatus.CANCELED:
                events.append(canceled_event(name, after, CancelReason.HALT, cause_id, detail))
            # else it filled first: its fill has been (or will be) announced
    if events:
        log.warning("working orders canceled", extra={"count": len(events), "scope": scope})
    return events


class HaltHandler:
    """A halt cancels every working order in its scope (R4)."""

    def __init__(self, venues: dict[str, Venue]) -> None:
        self.venues = venues

    async def __call__(self, change: TradingStateChanged) -> list[Event]:
        if change.state is not TradingState.HALTED:
            return []
        return await cancel_in_scope(
            self.venues, change.scope, change.id, f"trading halted: {change.reason}"
        )


class CancelAllHandler:
    """trading.control.cancel-all (the risk-gate sends one with every halt): cancel working
    orders in scope and, with `flatten`, close the positions in scope with market orders that
    only reduce (R4). They bypass the gate on purpose: it is halted, and closing is the point."""

    def __init__(self, venues: dict[str, Venue], approvals: ApprovedOrderHandler) -> None:
        self.venues = venues
        self.approvals = approvals

    async def __call__(self, cmd: ControlCommand) -> list[Event]:
        if cmd.action is not ControlAction.CANCEL_ALL:
            raise PermanentError(f"gateway does not handle {cmd.action}", ErrorCode.INVALID_COMMAND)
        events = await cancel_in_scope(self.venues, cmd.scope, cmd.id, f"cancel-all: {cmd.reason}")
        if cmd.flatten:
            for order in self._flatten_orders(cmd):
                events += await self.approvals(order)
        return events

    def _flatten_orders(self, cmd: ControlCommand) -> list[OrderApproved]:
        orders = []
        for name, venue in self.venues.items():
            if not isinstance(venue, PaperVenue):
                continue
            for (symbol, strategy), qty in venue.positions_by_strategy().items():
                probe = VenueOrder(
                    client_order_id="",
                    venue_order_id="",
                    symbol=symbol,
                    side=Side.BUY,
                    quantity=qty,
                    status=VenueOrderStatus.OPEN,
                    strategy=strategy,
                )
                if in_scope(cmd.scope, name, probe):
                    orders.append(flatten_order(cmd, name, symbol, strategy, qty))
        return orders


def flatten_order(
    cmd: ControlCommand, venue: str, symbol: str, strategy: str, position: Decimal
) -> OrderApproved:
    """The market order that takes one strategy's position on one symbol back to zero. Its id
    derives from the command, so a redelivered command submits nothing new."""
    order_id = derive_id(cmd.id, "flatten", venue, symbol, strategy)
    return OrderApproved(
        id=order_id,
        correlation_id=cmd.id,
        causation_id=cmd.id,
        intent_id="",
        strategy=strategy,
        venue=venue,
        symbol=symbol,
        side=Side.SELL if position > 0 else Side.BUY,
        quantity=abs(position),
        order_type=OrderType.MARKET,
        client_order_id=client_order_id(order_id),
    )
