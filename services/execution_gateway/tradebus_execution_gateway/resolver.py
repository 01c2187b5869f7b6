"""Resolving orders whose state we do not know, and following working orders (E2, E4, E6).

One loop serves three cases, all from the order journal:

* UNKNOWN (a create that may or may not have reached the venue) and `submitting` found after a
  restart (journaled; maybe sent): look the order up by client order id, with backoff.
  - Found: publish what happened (accepted, fills, canceled, rejected), journal it.
  - Not found while younger than `unknown_grace_s` (since it was last sent): look again. The
    grace must exceed the venue's receive window (Binance: recvWindow, 10 s in ccxt): past it
    a request still on its way is refused by the venue, so "not found" is final.
  - Not found past the grace: the venue never took it. If the approval is younger than
    `resubmit_max_age_s` it is sent again with the SAME client order id (safe: nothing with
    that id exists, and the venue refuses a duplicate of a live one); otherwise it is
    REJECTED with NOT_SENT. A resend that is ambiguous again is UNKNOWN again.
  - Lookups failing (venue down): retried forever with capped backoff; an ERROR alert once
    `unknown_resolve_attempts` is reached, so an operator (or the reconciler, C4) knows.
* Working orders on venues without a push feed (`needs_polling`): fetched every
  `order_poll_interval_ms` until they are finished; new fills and cancels are published.

Event ids derive from the approval id and the venue's trade ids, so a repeat after a crash
publishes nothing new (stream dedup; the ledger is unique on venue + trade id).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime

import msgspec

from tradebus_common.config import VenueConfig
from tradebus_common.events import (
    Alert,
    AlertCode,
    Event,
    OrderApproved,
    OrderCanceled,
    OrderExpired,
    OrderUnknown,
    RejectReason,
    Severity,
)
from tradebus_common.ids import derive_id

from .events_out import new_fills, order_events
from .journal import SUBMITTING, UNKNOWN, Journal, JournalEntry, utcnow
from .venues.base import Venue, VenueOrder, VenueOrderStatus
from .venues.errors import OutcomeUnknown, VenueUnavailable
from .venues.resilience import backoff_s

log = logging.getLogger("tradebus.execution_gateway.resolver")

Publish = Callable[[list[Event]], Awaitable[None]]
LOOP_INTERVAL_S = 0.05


def with_approval(approval: OrderApproved, order: VenueOrder) -> VenueOrder:
    """The venue's record plus what only the approval knows (who asked, arrival price)."""
    return msgspec.structs.replace(
        order,
        strategy=approval.strategy,
        approved_id=approval.id,
        correlation_id=approval.correlation_id,
        arrival_price=order.arrival_price or approval.reference_price,
        exit_reason=approval.exit_reason,
    )


def progress_events(
    venue: str,
    approval: OrderApproved,
    before: VenueOrder | None,
    after: VenueOrder,
    announce_cancel: bool = True,
) -> list[Event]:
    """What to publish for an order that went from `before` (last announced) to `after`.
    `announce_cancel` is False when our own cancel caused it: its caller announced it."""
    after = with_approval(approval, after)
    if before is None:
        events = order_events(approval, after)
    else:
        seen = {f.trade_id for f in before.fills}
        fresh = msgspec.structs.replace(
            after, fills=[f for f in after.fills if f.trade_id not in seen]
        )
        events = new_fills(venue, None, fresh)
    was_working = before is None or before.working
    common = {
        "client_order_id": after.client_order_id,
        "venue": venue,
        "symbol": after.symbol,
        "strategy": approval.strategy,
        "venue_order_id": after.venue_order_id,
    }
    if after.status is VenueOrderStatus.CANCELED and was_working and announce_cancel:
        events.append(OrderCanceled(id=derive_id(approval.id, "canceled"), **common))
    if after.status is VenueOrderStatus.EXPIRED and was_working:
        events.append(OrderExpired(id=derive_id(approval.id, "expired"), **common))
    return link(events, approval)


def link(events: list[Event], approval: OrderApproved) -> list[Event]:
    for event in events:
        event.correlation_id = event.correlation_id or approval.correlation_id or approval.id
        event.causation_id = event.causation_id or approval.id
    return events


def unknown_events(approval: OrderApproved, detail: str) -> list[Event]:
    """The order went UNKNOWN: say so, and raise an alert that it is being resolved."""
    unknown = OrderUnknown(
        id=derive_id(approval.id, "unknown"),
        client_order_id=approval.client_order_id,
        venue=approval.venue,
        symbol=approval.symbol,
        strategy=approval.strategy,
        detail=detail[:300],
    )
    alert = Alert(
        id=derive_id(approval.id, "unknown-alert"),
        severity=Severity.WARNING,
        source="execution-gateway",
        code=AlertCode.ORDER_UNKNOWN,
        message=f"{approval.venue} order {approval.client_order_id} outcome unknown: resolving",
        context={"client_order_id": approval.client_order_id, "venue": approval.venue},
        dedup_key=f"execution-gateway:unknown:{approval.client_order_id}",
    )
    return link([unknown, alert], approval)


def not_sent(approval: OrderApproved, detail: str) -> VenueOrder:
    return VenueOrder(
        client_order_id=approval.client_order_id,
        venue_order_id="",
        symbol=approval.symbol,
        side=approval.side,
        quantity=approval.quantity,
        status=VenueOrderStatus.REJECTED,
        order_type=approval.order_type,
        limit_price=approval.limit_price,
        reject_reason=RejectReason.NOT_SENT,
        reject_detail=detail,
    )


class OrderResolver:
    def __init__(
        self,
        venues: dict[str, Venue],
        configs: dict[str, VenueConfig],
        journal: Journal,
        publish: Publish,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self.venues = venues
        self.configs = configs
        self.journal = journal
        self.publish = publish
        self.now = now
        self.rng = random.Random()
        self._tracked: dict[str, tuple[JournalEntry, float]] = {}  # cid -> (entry, due)
        self._changed = asyncio.Event()
        self._stopping = False

    # --- what the gateway hands over ------------------------------------------------------

    def tracking(self, client_order_id: str) -> bool:
        return client_order_id in self._tracked

    def track(self, entry: JournalEntry, delay_s: float | None = None) -> None:
        venue = self.venues.get(entry.venue)
        if venue is None:
            return
        resolving = entry.status in (SUBMITTING, UNKNOWN)
        if not resolving and not getattr(venue, "needs_polling", False):
            return  # a paper order: its fills come from the tick handler
        remember = getattr(venue, "remember", None)
        if remember is not None and entry.approval is not None:
            remember(entry.approval)  # so its venue records carry strategy and ids
        if delay_s is None:
            delay_s = self._delay(entry)
        self._tracked[entry.client_order_id] = (entry, time.monotonic() + delay_s)
        self._changed.set()

    def poke(self, client_order_id: str) -> None:
        """Look at this order now (a pushed update named it)."""
        found = self._tracked.get(client_order_id)
        if found is not None:
            self._tracked[client_order_id] = (found[0], 0.0)
            self._changed.set()

    def poke_all(self, venue: str) -> None:
        """Look at every order of a venue now (its update stream had a gap)."""
        for cid, (entry, _) in list(self._tracked.items()):
            if entry.venue == venue:
                self._tracked[cid] = (entry, 0.0)
        self._changed.set()

    @property
    def pending(self) -> int:
        return len(self._tracked)

    # --- restart --------------------------------------------------------------------------

    async def resolve_at_start(self) -> int:
        """Rebuild the working orders from the journal and resolve each against its venue.
        Returns once every one is resolved, or when the longest grace has passed (what is
        left stays tracked in the background; its approvals are acked, never resent here)."""
        for entry in await self.journal.resolvable():
            self.track(entry, delay_s=0)
        deadline = time.monotonic() + self._startup_budget_s()
        while self._unresolved() and time.monotonic() < deadline:
            await self.iterate()
            await asyncio.sleep(LOOP_INTERVAL_S)
        left = self._unresolved()
        if left:
            log.warning(
                "orders still unresolved after start; resolving in background",
                extra={"count": len(left)},
            )
        return len(left)

    def _unresolved(self) -> list[str]:
        return [c for c, (e, _) in self._tracked.items() if e.status in (SUBMITTING, UNKNOWN)]

    def _startup_budget_s(self) -> float:
        graces = [c.unknown_grace_s for c in self.configs.values()] or [0.0]
        return max(graces) + 5.0

    # --- the loop -------------------------------------------------------------------------

    def stop(self) -> None:
        """Finish the current pass and return from run() (what is tracked stays journaled)."""
        self._stopping = True
        self._changed.set()

    async def run(self) -> None:
        while not self._stopping:
            await self.iterate()
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), LOOP_INTERVAL_S)
            except TimeoutError:
                pass

    async def iterate(self) -> None:
        now = time.monotonic()
        due = [(c, e) for c, (e, at) in list(self._tracked.items()) if at <= now]
        unchanged = await self._unchanged_working(e for _, e in due)
        for cid, entry in due:
            if cid in unchanged:  # still open as last announced: no lookup needed
                self._tracked[cid] = (entry, time.monotonic() + self._delay(entry))
                continue
            try:
                done = await self.step(entry)
            except Exception as e:  # one order's trouble must not stop the others
                log.warning(
                    "resolving order failed", extra={"client_order_id": cid, "error": repr(e)}
                )
                done = False
            if done:
                self._tracked.pop(cid, None)
            elif cid in self._tracked:
                self._tracked[cid] = (entry, time.monotonic() + self._delay(entry))

    async def _unchanged_working(self, entries: Iterable[JournalEntry]) -> set[str]:
        """Working orders the venue still lists as open with no new fill, from one open-orders
        call per venue instead of one lookup per order (rate limits: Binance allows ~20/s)."""
        working: dict[str, list[JournalEntry]] = {}
        for entry in entries:
            if entry.status not in (SUBMITTING, UNKNOWN) and entry.order is not None:
                working.setdefault(entry.venue, []).append(entry)
        unchanged: set[str] = set()
        for name, group in working.items():
            if len(group) < 2:  # one lookup is as cheap as the listing
                continue
            try:
                listed = {o.client_order_id: o for o in await self.venues[name].open_orders()}
            except Exception as e:  # fall back to one lookup per order
                log.warning("open orders listing failed", extra={"venue": name, "error": repr(e)})
                continue
            for entry in group:
                now_open = listed.get(entry.client_order_id)
                assert entry.order is not None
                if now_open is not None and now_open.filled_quantity == entry.order.filled_quantity:
                    unchanged.add(entry.client_order_id)
        return unchanged

    def _delay(self, entry: JournalEntry) -> float:
        cfg = self.configs.get(entry.venue, VenueConfig())
        if entry.status in (SUBMITTING, UNKNOWN):
            return backoff_s(
                entry.lookups + 1, cfg.retry_base_ms / 1000, cfg.retry_max_ms / 1000, self.rng
            )
        return cfg.order_poll_interval_ms / 1000

    # --- one order ------------------------------------------------------------------------

    async def step(self, entry: JournalEntry) -> bool:
        """One look at one order; True when nothing more is needed."""
        venue = self.venues[entry.venue]
        symbol = entry.approval.symbol if entry.approval else ""
        try:
            found = await venue.fetch_order(entry.client_order_id, symbol)
        except Exception as e:  # down, or a final error: either way, look again later
            await self._lookup_failed(entry, f"{type(e).__name__}: {e}")
            return False
        if entry.approval is None:  # written by someone else (reconciler): status only
            if found is not None:
                entry.status = found.status.value
                await self.journal.put(entry)
            return found is None or not found.working
        if found is not None:
            return await self._found(venue, entry, found)
        return await self._not_found(venue, entry)

    async def _found(self, venue: Venue, entry: JournalEntry, found: VenueOrder) -> bool:
        assert entry.approval is not None
        requested: set[str] = getattr(venue, "cancel_requested", set())
        ours = entry.client_order_id in requested
        events = progress_events(entry.venue, entry.approval, entry.order, found, not ours)
        if not found.working:
            requested.discard(entry.client_order_id)
        if entry.status in (SUBMITTING, UNKNOWN):
            events.append(self._resolved_alert(entry, found.status.value))
        await self.publish(events)
        entry.status = found.status.value
        entry.order = with_approval(entry.approval, found)
        entry.lookups = 0
        await self.journal.put(entry)
        return not (found.working and getattr(venue, "needs_polling", False))

    async def _not_found(self, venue: Venue, entry: JournalEntry) -> bool:
        assert entry.approval is not None
        if entry.status not in (SUBMITTING, UNKNOWN):
            log.error(  # a working order the venue no longer knows: the reconciler's case
                "venue no longer knows a working order",
                extra={"client_order_id": entry.client_order_id, "venue": entry.venue},
            )
            return True
        cfg = self.configs.get(entry.venue, VenueConfig())
        now = self.now()
        since = entry.sent_at or entry.journaled_at or entry.approval.ts
        # A venue whose send is atomic and local (paper) has nothing in flight to wait for.
        grace_s = cfg.unknown_grace_s if getattr(venue, "needs_polling", False) else 0.0
        if (now - since).total_seconds() < grace_s:
            entry.lookups += 1
            return False
        if (now - entry.approval.ts).total_seconds() <= cfg.resubmit_max_age_s:
            return await self._resend(venue, entry)
        detail = f"not found at the venue {grace_s}s after sending; too old to resend"
        return await self._found(venue, entry, not_sent(entry.approval, detail))

    async def _resend(self, venue: Venue, entry: JournalEntry) -> bool:
        """Same client order id, journaled first: the venue has nothing with that id."""
        assert entry.approval is not None
        log.warning(
            "order never reached the venue: sending it again with the same client order id",
            extra={"client_order_id": entry.client_order_id, "venue": entry.venue},
        )
        entry.sent_at = self.now()
        await self.journal.put(entry)
        try:
            result = await venue.submit(entry.approval)
        except OutcomeUnknown as e:
            entry.status = UNKNOWN
            await self.journal.put(entry)
            await self.publish(unknown_events(entry.approval, str(e)))
            return False
        except VenueUnavailable:  # not sent (breaker open): look again later
            return False
        return await self._found(venue, entry, result)

    async def _lookup_failed(self, entry: JournalEntry, error: str) -> None:
        entry.lookups += 1
        cfg = self.configs.get(entry.venue, VenueConfig())
        if entry.status in (SUBMITTING, UNKNOWN) and entry.lookups == cfg.unknown_resolve_attempts:
            assert entry.approval is not None
            await self.publish(
                link(
                    [
                        Alert(
                            id=derive_id(entry.approval.id, "unknown-stuck"),
                            severity=Severity.ERROR,
                            source="execution-gateway",
                            code=AlertCode.ORDER_UNKNOWN,
                            message=f"{entry.venue} order {entry.client_order_id} still unknown "
                            f"after {entry.lookups} lookups: {error[:200]}",
                            context={"client_order_id": entry.client_order_id},
                            dedup_key=f"execution-gateway:unknown:{entry.client_order_id}",
                        )
                    ],
                    entry.approval,
                )
            )

    def _resolved_alert(self, entry: JournalEntry, status: str) -> Alert:
        assert entry.approval is not None
        return Alert(
            id=derive_id(entry.approval.id, "unknown-resolved", status),
            severity=Severity.INFO,
            source="execution-gateway",
            code=AlertCode.ORDER_UNKNOWN_RESOLVED,
            message=f"{entry.venue} order {entry.client_order_id} resolved: {status}",
            context={"client_order_id": entry.client_order_id, "status": status},
            dedup_key=f"execution-gateway:unknown:{entry.client_order_id}",
            resolved=True,
            correlation_id=entry.approval.correlation_id,
            causation_id=entry.approval.id,
        )
