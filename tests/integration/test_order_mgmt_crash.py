"""Modify is cancel-confirm-replace across a crash: killed after the cancel and before the
replacement went out, the redelivered command still replaces (once), it does not refuse."""

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
from tradebus_execution_gateway.handlers import ApprovedOrderHandler
from tradebus_execution_gateway.order_mgmt import ModifyOrderHandler
from tradebus_execution_gateway.venues.paper import PaperVenue

from ..support.bus import publish_event


class Crash(Exception):
    pass


async def parts(nc):
    bus = Bus(nc, BusConfig(), "execution-gateway")
    await ensure_topology(bus.js, BusConfig(), 30)
    venue = PaperVenue(
        "paper", VenueConfig(symbols=["BTC/USDT"]), bus, await bus.kv(subjects.BUCKET_PAPER_VENUE)
    )
    await venue.load()
    approvals = ApprovedOrderHandler({"paper": venue}, await bus.kv(subjects.BUCKET_ORDER_JOURNAL))
    kv = await bus.kv(subjects.BUCKET_EXECUTION)
    engine = AlgoEngine(Config(), {"paper": venue}, AlgoStore(kv), bus, approvals)
    return venue, approvals, engine, kv


async def test_a_modify_killed_between_cancel_and_replace_replaces_once_on_redelivery(nc):
    await ensure_topology(nc.jetstream(), BusConfig(), 30)
    await publish_event(nc, ev.MarketTick(venue="paper", symbol="BTC/USDT", price=Decimal(100)))
    venue, approvals, engine, kv = await parts(nc)
    order = ev.OrderApproved(
        id="approved-1",
        intent_id="intent-1",
        strategy="demo",
        venue="paper",
        symbol="BTC/USDT",
        side=ev.Side.BUY,
        quantity=Decimal(2),
        order_type=ev.OrderType.LIMIT,
        limit_price=Decimal(99),
        client_order_id=client_order_id("intent-1"),
    )
    await approvals(order)
    cmd = ev.ModifyOrder(client_order_id=order.client_order_id, limit_price=Decimal("98.5"))

    async def dies(_: ev.OrderApproved) -> list:
        raise Crash("killed before the replacement was sent")

    with pytest.raises(Crash):
        await ModifyOrderHandler({"paper": venue}, engine, dies, kv)(cmd)
    old = await venue.fetch_order(order.client_order_id)
    assert old is not None and old.status.value == "canceled"

    venue, approvals, engine, kv = await parts(nc)  # the restarted gateway
    events = await ModifyOrderHandler({"paper": venue}, engine, approvals, kv)(cmd)
    [canceled] = [e for e in events if isinstance(e, ev.OrderCanceled)]
    assert canceled.reason is ev.CancelReason.REPLACED
    [submitted] = [e for e in events if isinstance(e, ev.OrderSubmitted)]
    assert submitted.client_order_id == client_order_id(cmd.id)
    assert submitted.quantity == Decimal(2) and submitted.limit_price == Decimal("98.5")

    again = await ModifyOrderHandler({"paper": venue}, engine, approvals, kv)(cmd)
    assert [e.id for e in again if isinstance(e, ev.OrderSubmitted)] == [submitted.id]
    keys = await (await nc.jetstream().key_value(subjects.BUCKET_PAPER_VENUE)).keys()
    assert len(keys) == 2  # the old order and one replacement
