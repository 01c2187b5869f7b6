"""The algo engine: starts parents, evaluates them (plan.decide) and carries out the
decision against the venue, persisting intent before acting.

Every method is called under the gateway's order lock (see execution.py), so an evaluation
never interleaves with a halt, a cancel or another evaluation. Children are sent through the
gateway's ordinary submit path (journal first, idempotent on the client order id), and a
child's client order id is a pure function of the parent and its slice number: whatever
crashes where, a resumed parent re-sends the same ids and the venue answers with the orders
it already has."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal

from tradebus_common.bus import Bus
from tradebus_common.config import Config
from tradebus_common.errors import ErrorCode, PermanentError
from tradebus_common.events import (
    AlgoProgress,
    AlgoStatus,
    CancelOrder,
    CancelReason,
    Event,
    Fill,
    OrderApproved,
    OrderEvent,
)
from tradebus_common.ids import derive_id

from ..events_out import canceled_event
from ..quality import TimedFill
from ..tracking import timeouts
from ..venues.base import Venue, VenueOrder
from .plan import ChildView, Decision, Market, decide, view_of
from .reports import child_id, child_order, in_scope, invalid_params, progress_event, quality_event
from .state import AlgoChild, AlgoState, AlgoStore

log = logging.getLogger("tradebus.execution_gateway.algos")

Submit = Callable[[OrderApproved], Awaitable[list[Event]]]
Publish = Callable[[list[Event]], Awaitable[None]]
Observe = Callable[[list[Event]], Awaitable[list[Event]]]
_MAX_STEPS = 4  # decide/act rounds per evaluation (cancel -> submit -> finish)


class AlgoEngine:
    def __init__(
        self,
        config: Config,
        venues: dict[str, Venue],
        store: AlgoStore,
        bus: Bus,
        submit: Submit,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.venues = venues
        self.store = store
        self.bus = bus
        self.submit = submit
        self.clock = clock
        self.publish: Publish = bus.publish_all
        self.observe: Observe = _unchanged
        self.due_at: dict[str, float] = {}  # working parent -> when to evaluate it next
        self.deadlines: dict[str, tuple[float, float]] = {}  # parent -> (ttl_at, unfilled_at)
        self.parent_of: dict[str, str] = {}  # child client id -> parent client id
        self.requested: set[str] = set()  # timeouts already asked for (CancelOrder sent)
        self.filled_parents: set[str] = set()  # parents with a fill (no unfilled timeout)
        self.wake = asyncio.Event()

    # --- bookkeeping -------------------------------------------------------------------

    async def load(self) -> None:
        """After a restart: every working parent resumes at once."""
        for state in await self.store.all():
            self._index(state)
            if state.status is AlgoStatus.WORKING:
                self.due_at[state.parent.client_order_id] = 0.0
        if self.due_at:
            log.info("algo parents resumed", extra={"count": len(self.due_at)})

    def _index(self, state: AlgoState) -> None:
        pcid = state.parent.client_order_id
        for child in state.children:
            self.parent_of[child.client_order_id] = pcid
        if state.fills:
            self.filled_parents.add(pcid)
        if state.status is AlgoStatus.WORKING:
            self.deadlines[pcid] = (state.ttl_at, state.unfilled_at)
        else:
            self.due_at.pop(pcid, None)
            self.deadlines.pop(pcid, None)

    def is_parent(self, cid: str) -> bool:
        return cid in self.due_at or cid in self.deadlines

    def tag(self, events: list[Event]) -> None:
        """Link child events to their parent; a child's fill or end wakes the parent."""
        for event in events:
            if not isinstance(event, OrderEvent | Fill):
                continue
            parent = self.parent_of.get(event.client_order_id)
            if parent is None:
                continue
            event.parent_id = parent
            if not isinstance(event, AlgoProgress) and parent in self.due_at:
                self.due_at[parent] = 0.0
                self.wake.set()

    def due(self, now: float) -> list[str]:
        return [pcid for pcid, at in self.due_at.items() if at <= now]

    def expired(self, now: float) -> list[CancelOrder]:
        """Parents past their TTL or unfilled timeout: the cancel commands to send."""
        out = []
        for pcid, (ttl_at, unfilled_at) in self.deadlines.items():
            reason = _timeout(now, ttl_at, unfilled_at, pcid in self.filled_parents)
            if reason is None or pcid in self.requested:
                continue
            out.append(
                CancelOrder(
                    id=derive_id(pcid, "timeout", reason.value),
                    client_order_id=pcid,
                    reason=reason,
                    detail="algo parent",
                )
            )
        return out

    # --- life cycle --------------------------------------------------------------------

    async def start(self, order: OrderApproved) -> list[Event]:
        """A new parent: persisted, then evaluated by the scheduler (woken now)."""
        if order.venue not in self.venues:
            raise PermanentError(f"no venue {order.venue!r} configured", ErrorCode.UNKNOWN_VENUE)
        existing = await self.store.get(order.client_order_id)
        if existing is not None:  # a redelivered approval: nothing new
            return [progress_event(existing, {})]
        now = self.clock()
        state = AlgoState(parent=order, started_at=now, arrival_price=await self._mid(order))
        state.ttl_at, state.unfilled_at = timeouts(self.config.execution, order.strategy, now)
        problem = invalid_params(order)
        if problem:
            state.status, state.detail = AlgoStatus.FAILED, problem
        if not await self.store.create(state):
            return []
        self._index(state)
        if state.status is AlgoStatus.WORKING:
            self.due_at[order.client_order_id] = 0.0
            self.wake.set()
        log.info(
            "algo started",
            extra={
                "client_order_id": order.client_order_id,
                "kind": order.algo.kind if order.algo else "",
            },
        )
        return [progress_event(state, {})]

    async def evaluate(self, pcid: str) -> None:
        """One look at a parent: re-send what was planned, read the children, decide, act,
        publish, then record what was published."""
        state = await self.store.get(pcid)
        if state is None or state.status is not AlgoStatus.WORKING:
            self._forget(pcid)
            return
        venue = self.venues[state.parent.venue]
        events = await self._announce(state)
        views = await self._views(state, venue)
        market = await self._market(state.parent)
        decision = Decision()
        for _ in range(_MAX_STEPS):
            now = self.clock()
            decision = decide(state, views, now, market)
            if decision.cancel:
                cause = derive_id(pcid, "replace")
                events += await self._cancel_children(
                    state, venue, decision.cancel, views, CancelReason.REPLACED, cause
                )
            if decision.finish is not None:
                state.status, state.detail = decision.finish, decision.detail
                break
            if decision.submit is None:
                if decision.cancel:
                    continue  # the cancels are confirmed: decide again with their rest
                break
            self._plan(state, decision)
            await self.store.put(state)  # the child is durable before it is sent
            events += await self._announce(state)
            views = await self._views(state, venue)
        events += self._closing(state, views, market)
        await self._finish_evaluation(state, events, decision)

    async def _finish_evaluation(
        self, state: AlgoState, events: list[Event], decision: Decision
    ) -> None:
        await self.publish(events)
        for child in state.children:
            child.announced = True
        await self.store.put(state)
        pcid = state.parent.client_order_id
        if state.status is not AlgoStatus.WORKING:
            self._forget(pcid)
            return
        poll = self.clock() + self.config.execution.algo_poll_s
        self.due_at[pcid] = min(decision.next_due or poll, poll)

    def _forget(self, pcid: str) -> None:
        self.due_at.pop(pcid, None)
        self.deadlines.pop(pcid, None)

    def _plan(self, state: AlgoState, decision: Decision) -> None:
        spec = decision.submit
        assert spec is not None
        n = len(state.children) + 1
        child = AlgoChild(
            slice=n,
            client_order_id=child_id(state.parent, n),
            quantity=spec.quantity,
            order_type=spec.order_type,
            limit_price=spec.limit_price,
            target_index=spec.target_index,
        )
        state.children.append(child)
        self.parent_of[child.client_order_id] = state.parent.client_order_id

    async def _announce(self, state: AlgoState) -> list[Event]:
        """Send every planned child not yet announced (the submit path is idempotent)."""
        events: list[Event] = []
        for child in state.children:
            if not child.announced and not child.final:
                events += await self.observe(await self.submit(child_order(state.parent, child)))
                child.announced = True  # in memory; stored after the publish
        return events

    async def _views(self, state: AlgoState, venue: Venue) -> dict[str, ChildView]:
        views: dict[str, ChildView] = {}
        now = self.clock()
        for child in state.children:
            if child.final:
                continue
            record = await venue.fetch_order(child.client_order_id)
            if record is None:
                continue
            views[child.client_order_id] = ChildView(record.filled_quantity, record.status.value)
            self._absorb(state, child, record, now)
        return views

    def _absorb(self, state: AlgoState, child: AlgoChild, record: VenueOrder, now: float) -> None:
        """Note new fills (with when we first saw them) and settle finished children."""
        seen = {f.trade_id for f in state.fills}
        for f in record.fills:
            if f.trade_id not in seen:
                state.fills.append(
                    TimedFill(
                        trade_id=f.trade_id, quantity=f.quantity, price=f.price, fee=f.fee, ts=now
                    )
                )
        if state.fills:
            self.filled_parents.add(state.parent.client_order_id)
        if not ChildView(record.filled_quantity, record.status.value).working:
            child.final, child.filled, child.status = (
                True,
                record.filled_quantity,
                record.status.value,
            )

    async def _cancel_children(
        self,
        state: AlgoState,
        venue: Venue,
        cids: list[str],
        views: dict[str, ChildView],
        reason: CancelReason,
        cause_id: str,
    ) -> list[Event]:
        """Cancel and confirm: a child still working after its cancel raises (retried)."""
        for cid in cids:
            child = state.child(cid)
            if child is not None:
                child.cancel_requested = True
        await self.store.put(state)  # the intent first: a canceled child is then ours
        events: list[Event] = []
        for cid in cids:
            after = await venue.cancel(cid)
            if after is None:
                continue
            if after.status.value == "canceled":
                events.append(canceled_event(venue.name, after, reason, cause_id))
            child = state.child(cid)
            if child is not None:
                self._absorb(state, child, after, self.clock())
                views[cid] = ChildView(after.filled_quantity, after.status.value)
        return await self.observe(events)

    # --- stopping ----------------------------------------------------------------------

    async def stop_in_scope(self, scope: str, cause_id: str, detail: str) -> list[Event]:
        """A halt or cancel-all: stop every working parent in scope before its children are
        canceled (by the caller's cancel-in-scope), so no new child can follow."""
        events: list[Event] = []
        for state in await self._working_in(scope):
            events += await self._stop(state, AlgoStatus.CANCELED, detail)
        return events

    async def reduce_in_scope(self, scope: str, cause_id: str, detail: str) -> list[Event]:
        """REDUCING: parents that could add exposure stop, and their working children are
        canceled here (the halt's cancel-in-scope does not run for REDUCING). Reduce-only
        parents go on: closing is what REDUCING is for."""
        events: list[Event] = []
        for state in await self._working_in(scope):
            if state.parent.reduce_only:
                continue
            venue = self.venues[state.parent.venue]
            views = await self._views(state, venue)
            working = [c.client_order_id for c in state.children if view_of(c, views).working]
            events += await self._cancel_children(
                state, venue, working, views, CancelReason.HALT, cause_id
            )
            events += await self._stop(state, AlgoStatus.CANCELED, detail, views)
        return events

    async def _working_in(self, scope: str) -> list[AlgoState]:
        states = []
        for pcid in list(self.deadlines):
            state = await self.store.get(pcid)
            if state is not None and state.status is AlgoStatus.WORKING:
                if in_scope(scope, state.parent):
                    states.append(state)
        return states

    async def cancel_parent(self, cmd: CancelOrder) -> list[Event]:
        """Cancel by the parent's client id: stop it, then cancel its working children."""
        state = await self.store.get(cmd.client_order_id)
        if state is None:
            return []
        if state.status is not AlgoStatus.WORKING:
            return [progress_event(state, {})]  # the same event again: deduplicated
        detail = f"{cmd.reason.value.lower()}: {cmd.detail}".strip(": ")
        venue = self.venues[state.parent.venue]
        views = await self._views(state, venue)
        working = [c.client_order_id for c in state.children if view_of(c, views).working]
        events = await self._cancel_children(state, venue, working, views, cmd.reason, cmd.id)
        closing = await self._stop(state, AlgoStatus.CANCELED, detail, views)
        for event in closing:
            event.causation_id = cmd.id  # the answer to this command (the CLI waits for it)
        return events + closing

    async def _stop(
        self,
        state: AlgoState,
        status: AlgoStatus,
        detail: str,
        views: dict[str, ChildView] | None = None,
    ) -> list[Event]:
        if views is None:
            views = await self._views(state, self.venues[state.parent.venue])
        state.status, state.detail = status, detail
        events = self._closing(state, views, await self._market(state.parent))
        await self.store.put(state)
        self._forget(state.parent.client_order_id)
        log.warning(
            "algo stopped",
            extra={
                "client_order_id": state.parent.client_order_id,
                "status": status.value,
                "detail": detail,
            },
        )
        return events

    # --- events ------------------------------------------------------------------------

    def _closing(
        self, state: AlgoState, views: dict[str, ChildView], market: Market
    ) -> list[Event]:
        """The progress event when something changed, and the quality once it is over."""
        events: list[Event] = []
        progress = progress_event(state, views)
        if progress.id != state.reported:
            state.reported = progress.id
            events.append(progress)
        if state.status is not AlgoStatus.WORKING:
            events.append(quality_event(state, market))
        return events

    async def _mid(self, order: OrderApproved) -> Decimal | None:
        tick = await self.bus.last_tick(order.venue, order.symbol)
        if tick is None:
            return None
        if tick.bid is not None and tick.ask is not None:
            return (tick.bid + tick.ask) / 2
        return tick.price

    async def _market(self, order: OrderApproved) -> Market:
        rules = self.config.risk.venue_rules.get(order.venue, {}).get(order.symbol)
        step = rules.qty_step if rules and rules.qty_step > 0 else Decimal("1e-8")
        tick = rules.price_tick if rules else Decimal(0)
        return Market(mid=await self._mid(order), qty_step=step, price_tick=tick)


def _timeout(now: float, ttl_at: float, unfilled_at: float, has_fills: bool) -> CancelReason | None:
    if ttl_at and now >= ttl_at:
        return CancelReason.TTL_EXPIRED
    if unfilled_at and now >= unfilled_at and not has_fills:
        return CancelReason.UNFILLED_TIMEOUT
    return None


async def _unchanged(events: list[Event]) -> list[Event]:
    return events
