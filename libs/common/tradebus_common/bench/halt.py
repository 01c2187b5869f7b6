"""Halt propagation with a full book (R4): 1,000 resting paper orders, then a halt.

Three times per round, from the halt published:
- the risk-gate latched HALTED (TradingStateChanged);
- the cancel request for every open order was issued (the gate's cancel-all command);
- the gateway confirmed every order canceled (the last OrderCanceled).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import msgspec
import nats
from nats.aio.client import Client as NATS

from .. import events as ev
from ..codec import decode
from ..errors import PermanentError
from .figures import Figure, percentile
from .pipeline import set_price

_ENC = msgspec.json.Encoder()
REST_PRICE = "47500"  # 5% under the 50,000 bench price: the buys rest, inside the collar


@dataclass
class Watch:
    """Arrival times of the events one round waits for (core subscriptions)."""

    accepted: set[str] = field(default_factory=set)
    canceled: set[str] = field(default_factory=set)
    states: list[tuple[float, ev.TradingState]] = field(default_factory=list)
    cancel_all_at: list[float] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def on_msg(self, msg: Any) -> None:
        now = time.perf_counter()
        try:
            event = decode(msg.data)
        except PermanentError:
            return
        match event:
            case ev.OrderAccepted():
                self.accepted.add(event.client_order_id)
            case ev.OrderCanceled():
                self.canceled.add(event.client_order_id)
            case ev.TradingStateChanged() if event.scope == "global":
                self.states.append((now, event.state))
            case ev.ControlCommand() if event.action is ev.ControlAction.CANCEL_ALL:
                self.cancel_all_at.append(now)
        self.changed.set()

    async def until(self, done: Any, timeout_s: float) -> None:
        deadline = time.perf_counter() + timeout_s
        while not done():
            self.changed.clear()
            left = deadline - time.perf_counter()
            if left <= 0:
                raise TimeoutError("halt bench: the stack did not get there in time")
            try:
                await asyncio.wait_for(self.changed.wait(), left)
            except TimeoutError:
                continue


async def _subscribe(nc: NATS, watch: Watch) -> None:
    for subject in (
        "trading.order.event.>",
        "trading.risk.state",
        "trading.control.cancel-all",
    ):
        await nc.subscribe(subject, cb=watch.on_msg)
    await nc.flush()


async def _fill_book(nc: NATS, watch: Watch, round_no: int, orders: int) -> None:
    js = nc.jetstream()
    want = len(watch.accepted) + orders
    for i in range(orders):
        sid = f"rest-{round_no}-{i}"
        body = {
            "id": sid,
            "strategy": "bench",
            "venue": "paper",
            "symbol": "BTC/USDT",
            "side": "buy",
            "quantity": "0.001",
            "order_type": "limit",
            "limit_price": REST_PRICE,
        }
        await js.publish_async(
            "trading.signal.bench", _ENC.encode(body), headers={"Nats-Msg-Id": sid}
        )
    await js.publish_async_completed()
    await watch.until(lambda: len(watch.accepted) >= want, 300)


async def halt_with_open_orders(url: str, orders: int, rounds: int) -> dict[str, Figure]:
    nc = await nats.connect(url)
    watch = Watch()
    to_state, to_cancel_all, to_all_canceled = [], [], []
    try:
        await _subscribe(nc, watch)
        await set_price(nc)
        js = nc.jetstream()
        for r in range(rounds):
            await _fill_book(nc, watch, r, orders)
            canceled_before, states_before = len(watch.canceled), len(watch.states)
            cancel_alls_before = len(watch.cancel_all_at)
            t0 = time.perf_counter()
            await js.publish("trading.control.halt", b"bench halt with a full book")
            want = canceled_before + orders
            await watch.until(lambda want=want: len(watch.canceled) >= want, 300)
            halted = [t for t, s in watch.states[states_before:] if s is ev.TradingState.HALTED]
            to_state.append((halted[0] - t0) * 1000)
            to_cancel_all.append((watch.cancel_all_at[cancel_alls_before] - t0) * 1000)
            to_all_canceled.append((time.perf_counter() - t0) * 1000)
            await js.publish("trading.control.resume", b'{"operator": "bench"}')
            await watch.until(lambda: watch.states[-1][1] is ev.TradingState.ACTIVE, 30)
    finally:
        await nc.close()
    note = f"{orders} open paper orders, {rounds} round(s)"
    return {
        "halt_book_state_p99": Figure(
            "halt (full book) -> HALTED p99", percentile(to_state, 99), "ms", target=50, note=note
        ),
        "halt_book_cancel_p99": Figure(
            "halt (full book) -> cancels issued p99",
            percentile(to_cancel_all, 99),
            "ms",
            target=50,
            note=note,
        ),
        "halt_book_canceled_p99": Figure(
            "halt (full book) -> all canceled p99", percentile(to_all_canceled, 99), "ms", note=note
        ),
    }
