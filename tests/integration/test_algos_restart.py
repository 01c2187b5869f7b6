"""The algo engine on a real bus and paper venue, driven by an injected clock (no timers):
TWAP timing exactly on its schedule, and a crash after a child reached the venue but before
its events were published: the restarted engine re-announces the same child, never a new one."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tradebus_common import events as ev
from tradebus_common import subjects
from tradebus_common.bus import Bus, ensure_topology
from tradebus_common.config import BusConfig, Config, VenueConfig
from tradebus_common.ids import client_order_id
from tradebus_execution_gateway.algos.engine import AlgoEngine
from tradebus_execution_gateway.algos.state import AlgoStore
from tradebus_execution_gateway.execution import OrderManagement
from tradebus_execution_gateway.handlers import ApprovedOrderHandler
from tradebus_execution_gateway.tracking import OrderTracker
from tradebus_execution_gateway.venues.paper import PaperVenue

from ..support.bus import publish_event

T0 = 1_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


class Crash(Exception):
    pass


async def gateway(nc, clock: Clock, published: list, crash_on: int = 0) -> AlgoEngine:
    """The gateway's order-management parts, as `build` wires them (a fresh 'process')."""
    bus = Bus(nc, BusConfig(), "execution-gateway")
    await ensure_topology(bus.js, BusConfig(), 30)
    venue = PaperVenue(
        "paper", VenueConfig(symbols=["BTC/USDT"]), bus, await bus.kv(subjects.BUCKET_PAPER_VENUE)
    )
    await venue.load()
    venues = {"paper": venue}
    approvals = ApprovedOrderHandler(venues, await bus.kv(subjects.BUCKET_ORDER_JOURNAL))
    kv = await bus.kv(subjects.BUCKET_EXECUTION)
    engine = AlgoEngine(Config(), venues, AlgoStore(kv), bus, approvals, clock=clock)
    OrderManagement(engine, OrderTracker(Config().execution, kv, bus, clock), approvals, kv)
    calls = 0

    async def publish(events: list) -> None:
        nonlocal calls
        calls += 1
        if calls == crash_on:
            raise Crash("killed between the venue call and the publish")
        published.extend(events)

    engine.publish = publish
    await engine.load()
    return engine


def twap(qty: str = "3") -> ev.OrderApproved:
    return ev.OrderApproved(
        id="approved-twap",
        intent_id="intent-twap",
        strategy="demo",
        venue="paper",
        symbol="BTC/USDT",
        side=ev.Side.BUY,
        quantity=Decimal(qty),
        order_type=ev.OrderType.MARKET,
        client_order_id=client_order_id("intent-twap"),
        algo=ev.AlgoParams(kind=ev.AlgoKind.TWAP, horizon_s=30, interval_s=10),
    )


def submitted(published: list) -> list[ev.OrderSubmitted]:
    return [e for e in published if isinstance(e, ev.OrderSubmitted)]


async def run_due(engine: AlgoEngine, clock: Clock) -> None:
    for pcid in engine.due(clock.now):
        await engine.evaluate(pcid)


@pytest.fixture
async def priced(nc, nats_server):
    await ensure_topology(nc.jetstream(), BusConfig(), 30)
    await publish_event(nc, ev.MarketTick(venue="paper", symbol="BTC/USDT", price=Decimal(100)))


async def test_twap_sends_each_slice_exactly_on_its_schedule(nc, priced):
    clock, published = Clock(), []
    engine = await gateway(nc, clock, published)
    order = twap()
    await engine.start(order)
    await run_due(engine, clock)
    assert [s.quantity for s in submitted(published)] == [Decimal(1)]
    clock.now = T0 + 9.99
    await run_due(engine, clock)
    assert len(submitted(published)) == 1  # not due yet
    clock.now = T0 + 10
    await run_due(engine, clock)
    clock.now = T0 + 20
    await run_due(engine, clock)
    assert [s.parent_id for s in submitted(published)] == [order.client_order_id] * 3
    [done] = [
        e for e in published if isinstance(e, ev.AlgoProgress) and e.status.value == "COMPLETED"
    ]
    assert done.filled_quantity == Decimal(3) and done.children == 3
    [quality] = [
        e
        for e in published
        if isinstance(e, ev.ExecutionQuality) and e.client_order_id == order.client_order_id
    ]
    assert quality.time_to_first_fill_ms == 0 and quality.time_to_last_fill_ms == 20_000


async def test_a_crash_after_the_venue_call_re_announces_the_same_child(nc, priced):
    clock, before_crash = Clock(), []
    engine = await gateway(nc, clock, before_crash, crash_on=2)
    order = twap()
    await engine.start(order)
    await run_due(engine, clock)  # slice 1, published
    clock.now = T0 + 10
    with pytest.raises(Crash):
        await run_due(engine, clock)  # slice 2 reached the venue, its events did not go out

    after_restart: list = []
    engine = await gateway(nc, clock, after_restart)  # a new process on the same state
    await run_due(engine, clock)
    clock.now = T0 + 20
    await run_due(engine, clock)

    cids = [s.client_order_id for s in submitted(before_crash + after_restart)]
    assert cids == [client_order_id("intent-twap", n) for n in (1, 2, 3)]
    venue_orders = [k for k in await (await nc.jetstream().key_value("paper_venue")).keys()]
    assert len(venue_orders) == 3  # one venue order per child, none twice
    fills = [e for e in before_crash + after_restart if isinstance(e, ev.Fill)]
    assert sum(f.quantity for f in fills) == Decimal(3)
