"""Order management around the submit path: algos (E7), cancel / modify / timeouts (E4) and
execution quality (E9), wired into the gateway's consumers by `service.py`.

* The main consumer's handler is wrapped: cancel and modify commands and algo approvals are
  routed here, a halt or cancel-all first stops the algo parents in scope, and everything
  runs under one order lock shared with the scheduler.
* Every handler's output passes through `observe`: child events get their `parent_id`, and
  finished orders get their ExecutionQuality.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from nats.aio.msg import Msg

from tradebus_common import subjects
from tradebus_common.bus import BatchItem
from tradebus_common.codec import decode
from tradebus_common.events import (
    CancelOrder,
    CancelReason,
    ControlAction,
    ControlCommand,
    Event,
    ModifyOrder,
    OrderApproved,
    TradingState,
    TradingStateChanged,
)
from tradebus_common.runtime import ServiceContext

from .algos.engine import AlgoEngine, Submit
from .algos.state import AlgoStore
from .order_mgmt import CancelOrderHandler, ModifyOrderHandler
from .scheduler import Scheduler
from .tracking import OrderTracker
from .venues.base import Venue

Handler = Callable[[Any], Awaitable[list[Event]]]
COMMAND_SUBJECTS = [subjects.ORDER_CANCEL, subjects.ORDER_MODIFY]


def _plain_approval(event: Any) -> bool:
    return isinstance(event, OrderApproved) and event.algo is None


def decode_command(msg: Msg) -> CancelOrder | ModifyOrder | None:
    """Cancel / modify commands (None for any other subject)."""
    if msg.subject == subjects.ORDER_CANCEL:
        return decode(msg.data, CancelOrder)
    if msg.subject == subjects.ORDER_MODIFY:
        return decode(msg.data, ModifyOrder)
    return None


class OrderManagement:
    def __init__(self, engine: AlgoEngine, tracker: OrderTracker, submit: Submit, kv: Any) -> None:
        self.engine = engine
        self.tracker = tracker
        self.lock = asyncio.Lock()
        self.cancels = CancelOrderHandler(engine.venues, engine)
        self.modifies = ModifyOrderHandler(engine.venues, engine, submit, kv)
        engine.observe = self.observe

    async def observe(self, events: list[Event]) -> list[Event]:
        self.engine.tag(events)
        return await self.tracker.observe(events)

    def order_flow(self, inner: Handler) -> Handler:
        """The main consumer's handler, with commands, algos and halts routed here first."""

        async def handle(event: Any) -> list[Event]:
            async with self.lock:
                stopped = await self._stop_algos(event)
                return await self.observe([*stopped, *await self._route(event, inner)])

        return handle

    def order_flow_batch(
        self, inner: Handler
    ) -> Callable[[Sequence[BatchItem]], Awaitable[list[list[Event]]]]:
        """A backlog of the main consumer at once: plain approvals (no algo) between two
        other messages are submitted concurrently (one venue round trip for the lot instead
        of one after another); every other message, and every repeat of a client order id,
        is handled alone and in stream order, so a halt still stops what follows it."""
        handle = self.order_flow(inner)

        async def batch(items: Sequence[BatchItem]) -> list[list[Event]]:
            out: list[list[Event]] = []
            start = 0
            while start < len(items):
                end = start
                while end < len(items) and _plain_approval(items[end].event):
                    end += 1
                if end == start:
                    out.append(await handle(items[start].event))
                    start += 1
                    continue
                out += await self._concurrently([i.event for i in items[start:end]], inner)
                start = end
            return out

        return batch

    async def _concurrently(self, orders: list[OrderApproved], inner: Handler) -> list[list[Event]]:
        async with self.lock:
            firsts, seen = [], set()
            for i, order in enumerate(orders):
                if order.client_order_id not in seen:
                    seen.add(order.client_order_id)
                    firsts.append(i)
            done = await asyncio.gather(*(inner(orders[i]) for i in firsts), return_exceptions=True)
            failed = next((r for r in done if isinstance(r, BaseException)), None)
            if failed is not None:  # the loop redoes the batch one by one (idempotent)
                raise failed
            results: dict[int, list[Event]] = dict(zip(firsts, done, strict=True))  # type: ignore[arg-type]
            for i, order in enumerate(orders):  # repeats: after the first, one at a time
                if i not in results:
                    results[i] = list(await inner(order) or [])
            return [await self.observe(list(results[i] or [])) for i in range(len(orders))]

    def observing(self, inner: Handler) -> Handler:
        """Any other handler (market ticks): its output observed, no lock."""

        async def handle(event: Any) -> list[Event]:
            return await self.observe(list(await inner(event) or []))

        return handle

    async def _route(self, event: Any, inner: Handler) -> list[Event]:
        if isinstance(event, CancelOrder):
            out = await self.cancels(event)
            if not out and event.reason is not CancelReason.OPERATOR:
                # A timeout for an order that ended unobserved: stop tracking it.
                await self.tracker.drop(event.client_order_id)
            return out
        if isinstance(event, ModifyOrder):
            return await self.modifies(event)
        if isinstance(event, OrderApproved) and event.algo is not None:
            return await self.engine.start(event)
        return list(await inner(event) or [])

    async def _stop_algos(self, event: Any) -> list[Event]:
        """Parents stop before their children are canceled, so no new child follows."""
        if isinstance(event, TradingStateChanged) and event.state is TradingState.HALTED:
            detail = f"trading halted: {event.reason}"
            return await self.engine.stop_in_scope(event.scope, event.id, detail)
        if isinstance(event, TradingStateChanged) and event.state is TradingState.REDUCING:
            detail = f"trading reducing: {event.reason}"
            return await self.engine.reduce_in_scope(event.scope, event.id, detail)
        if isinstance(event, ControlCommand) and event.action is ControlAction.CANCEL_ALL:
            detail = f"cancel-all: {event.reason}"
            return await self.engine.stop_in_scope(event.scope, event.id, detail)
        return []


async def build_order_management(
    ctx: ServiceContext, venues: dict[str, Venue], submit: Submit
) -> OrderManagement:
    """Load the algo parents and tracked orders, and start the scheduler task."""
    kv = await ctx.bus.kv(subjects.BUCKET_EXECUTION)
    engine = AlgoEngine(ctx.config, venues, AlgoStore(kv), ctx.bus, submit)
    tracker = OrderTracker(ctx.config.execution, kv, ctx.bus)
    await engine.load()
    await tracker.load()
    management = OrderManagement(engine, tracker, submit, kv)
    scheduler = Scheduler(ctx.config.execution, engine, tracker, ctx.bus, management.lock)
    ctx.tasks.append(scheduler.run)
    return management
