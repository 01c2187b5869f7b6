"""OrderApproved -> venue -> order events and fills, idempotent on the client order id."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal

import msgspec
from nats.js.kv import KeyValue

from tradebus_common.bus import current_delivery
from tradebus_common.errors import ErrorCode, PermanentError
from tradebus_common.events import (
    CancelReason,
    ControlAction,
    ControlCommand,
    Event,
    LedgerSnapshot,
    MarketTick,
    OrderApproved,
    OrderType,
    RejectReason,
    Side,
    TradingState,
    TradingStateChanged,
    VenueLatencyObserved,
)
from tradebus_common.ids import client_order_id, derive_id

from .events_out import canceled_event, new_fills, order_events
from .journal import SUBMITTING, UNKNOWN, Journal, JournalEntry, utcnow
from .resolver import OrderResolver, not_sent, unknown_events, with_approval
from .venues.base import Venue, VenueOrder, VenueOrderStatus
from .venues.errors import OutcomeUnknown, VenueUnavailable
from .venues.paper import PaperVenue

log = logging.getLogger("tradebus.execution_gateway")


class ApprovedOrderHandler:
    """Journal first, then send once. Outcomes: a venue record (accepted, filled, rejected);
    REJECTED VENUE_UNAVAILABLE when the venue's breaker is open (nothing sent); UNKNOWN when
    the create may have reached the venue: the resolver then looks it up by client order id.
    A redelivered approval never sends blind: a known order is re-announced (same ids, so
    deduplicated), an unresolved one is left to the resolver."""

    def __init__(
        self, venues: dict[str, Venue], journal: KeyValue, resolver: OrderResolver | None = None
    ) -> None:
        self.venues = venues
        self.journal = Journal(journal)
        self.resolver = resolver

    async def __call__(self, order: OrderApproved) -> list[Event]:
        venue = self.venues.get(order.venue)
        if venue is None:
            raise PermanentError(f"no venue {order.venue!r} configured", ErrorCode.UNKNOWN_VENUE)
        entry = JournalEntry(
            client_order_id=order.client_order_id,
            approved_id=order.id,
            status=SUBMITTING,
            venue=order.venue,
            approval=order,
            journaled_at=utcnow(),
        )
        if not await self.journal.create(entry):  # durable before the venue hears of it
            return await self._redelivered(venue, order)
        return await self._send(venue, order, entry)

    async def _send(self, venue: Venue, order: OrderApproved, entry: JournalEntry) -> list[Event]:
        started = time.perf_counter()
        entry.sent_at = utcnow()
        try:
            result = await venue.submit(order)
        except OutcomeUnknown as e:
            latency = venue_latency(order, "create_order", time.perf_counter() - started, ok=False)
            entry.status = UNKNOWN
            await self.journal.put(entry)
            self._track(entry)
            log.warning(
                "order outcome unknown: resolving by client order id",
                extra={"client_order_id": order.client_order_id, "error": str(e)[:200]},
            )
            return [
                submitted_event(order),
                *unknown_events(order, str(e)),
                latency,
            ]
        except VenueUnavailable as e:  # not sent at all (breaker open)
            result = with_approval(order, not_sent(order, str(e)))
            result = msgspec.structs.replace(result, reject_reason=RejectReason.VENUE_UNAVAILABLE)
        latency = venue_latency(order, "create_order", time.perf_counter() - started)
        entry.status = result.status.value
        entry.order = result
        await self.journal.put(entry)
        self._track(entry)
        return [*order_events(order, result), latency]

    async def _redelivered(self, venue: Venue, order: OrderApproved) -> list[Event]:
        entry = await self.journal.get(order.client_order_id)
        if entry is not None and entry.status == SUBMITTING and self._sends_atomically(venue):
            found = await venue.fetch_order(order.client_order_id, order.symbol)
            return order_events(order, found) if found else await self._send(venue, order, entry)
        if entry is None or entry.status in (SUBMITTING, UNKNOWN):
            log.info(
                "order already journaled, outcome not known yet: resolving by client order id",
                extra={"client_order_id": order.client_order_id},
            )
            if entry is not None and entry.approval is not None:
                self._track(entry)
            return []
        result = entry.order or await venue.fetch_order(order.client_order_id, order.symbol)
        return order_events(order, result) if result is not None else []

    def _sends_atomically(self, venue: Venue) -> bool:
        """No request can be in flight unseen (paper), or no resolver to wait for one."""
        return self.resolver is None or not getattr(venue, "needs_polling", False)

    def _track(self, entry: JournalEntry) -> None:
        if self.resolver is not None and not self.resolver.tracking(entry.client_order_id):
            self.resolver.track(entry)


def submitted_event(order: OrderApproved) -> Event:
    """Just the OrderSubmitted of an order (order_events always starts with it)."""
    placeholder = VenueOrder(
        client_order_id=order.client_order_id,
        venue_order_id="",
        symbol=order.symbol,
        side=order.side,
        quantity=order.quantity,
        status=VenueOrderStatus.OPEN,
    )
    return order_events(order, placeholder)[0]


def venue_latency(
    order: OrderApproved, operation: str, seconds: float, ok: bool = True
) -> VenueLatencyObserved:
    """One venue call's round trip, for the latency monitor (A4) and breaker (R5)."""
    return VenueLatencyObserved(
        id=derive_id(order.id, "latency", operation),
        venue=order.venue,
        operation=operation,
        latency_ms=round(seconds * 1000),
        ok=ok,
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


SnapshotReader = Callable[[], Awaitable[LedgerSnapshot | None]]


class CancelAllHandler:
    """trading.control.cancel-all (the risk-gate sends one with every halt): cancel working
    orders in scope and, with `flatten`, close the positions in scope with market orders that
    only reduce (R4). They bypass the gate on purpose: it is halted, and closing is the point.

    What to close: a paper venue knows each strategy's position from its own fills. A real
    venue does not (a spot account also holds coins from before tradebus, which must not be
    sold), so there the positions are the ledger's, from its newest snapshot, and a long is
    never sold beyond what the venue holds (a base-currency fee leaves it a little less)."""

    def __init__(
        self,
        venues: dict[str, Venue],
        approvals: ApprovedOrderHandler,
        snapshot: SnapshotReader | None = None,
    ) -> None:
        self.venues = venues
        self.approvals = approvals
        self.snapshot = snapshot

    async def __call__(self, cmd: ControlCommand) -> list[Event]:
        if cmd.action is not ControlAction.CANCEL_ALL:
            raise PermanentError(f"gateway does not handle {cmd.action}", ErrorCode.INVALID_COMMAND)
        events = await cancel_in_scope(self.venues, cmd.scope, cmd.id, f"cancel-all: {cmd.reason}")
        if cmd.flatten:
            for order in await self._flatten_orders(cmd):
                events += await self.approvals(order)
        return events

    async def _flatten_orders(self, cmd: ControlCommand) -> list[OrderApproved]:
        orders = []
        for name, venue in self.venues.items():
            if isinstance(venue, PaperVenue):
                held = venue.positions_by_strategy()
            else:
                held = await self._ledger_positions(name, venue)
            for (symbol, strategy), qty in held.items():
                if in_scope(cmd.scope, name, _probe(symbol, strategy)):
                    orders.append(flatten_order(cmd, name, symbol, strategy, qty))
        return orders

    async def _ledger_positions(self, name: str, venue: Venue) -> dict[tuple[str, str], Decimal]:
        snapshot = await self.snapshot() if self.snapshot else None
        if snapshot is None:
            log.error("flatten: no ledger snapshot; positions left open", extra={"venue": name})
            return {}
        holding = {p.symbol: p.quantity for p in await venue.positions()}
        out: dict[tuple[str, str], Decimal] = {}
        for p in snapshot.positions:
            if p.venue != name or p.quantity == 0:
                continue
            qty = p.quantity
            if qty > 0:  # sell what is there, never more
                qty = min(qty, max(holding.get(p.symbol, Decimal(0)), Decimal(0)))
                holding[p.symbol] = holding.get(p.symbol, Decimal(0)) - qty
            if qty != 0:
                out[(p.symbol, p.strategy)] = out.get((p.symbol, p.strategy), Decimal(0)) + qty
        return out


def _probe(symbol: str, strategy: str) -> VenueOrder:
    """A stand-in order, to ask in_scope about a position."""
    return VenueOrder(
        client_order_id="",
        venue_order_id="",
        symbol=symbol,
        side=Side.BUY,
        quantity=Decimal(0),
        status=VenueOrderStatus.OPEN,
        strategy=strategy,
    )


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
