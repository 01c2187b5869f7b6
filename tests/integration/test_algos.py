"""Execution algorithms on real NATS with the paper venue: TWAP, iceberg, limit-then-market,
a halt stopping every child, and a parent resumed after a gateway restart (E7)."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import msgspec

from tradebus_common import events as ev
from tradebus_common.config import ExecutionConfig
from tradebus_common.ids import client_order_id

from ..support.bus import collect, publish_event

PAPER = "paper"


def parent(
    n: int,
    algo: ev.AlgoParams,
    qty: str = "1",
    limit: str | None = None,
    side: ev.Side = ev.Side.BUY,
    symbol: str = "BTC/USDT",
) -> ev.OrderApproved:
    return ev.OrderApproved(
        id=f"approved-{n}",
        correlation_id=f"sig-{n}",
        intent_id=f"intent-{n}",
        strategy="demo",
        venue=PAPER,
        symbol=symbol,
        side=side,
        quantity=Decimal(qty),
        order_type=ev.OrderType.LIMIT if limit else ev.OrderType.MARKET,
        limit_price=Decimal(limit) if limit else None,
        client_order_id=client_order_id(f"intent-{n}"),
        algo=algo,
    )


async def tick(nc, price: str, volume: str | None = None, symbol: str = "BTC/USDT") -> None:
    await publish_event(
        nc,
        ev.MarketTick(
            venue=PAPER,
            symbol=symbol,
            price=Decimal(price),
            volume=Decimal(volume) if volume else None,
        ),
    )


def children_of(col, pcid: str, kind: type) -> list:
    return col.matching(lambda e: isinstance(e, kind) and e.parent_id == pcid)


def finished(pcid: str, status: ev.AlgoStatus = ev.AlgoStatus.COMPLETED):
    return lambda e: (
        isinstance(e, ev.AlgoProgress) and e.client_order_id == pcid and e.status is status
    )


async def test_twap_slices_are_real_children_that_sum_exactly_to_the_parent(stack, nc):
    await stack.start("execution-gateway")
    await tick(nc, "100")
    orders = await collect(nc, "trading.order.>")
    fills = await collect(nc, "trading.fill.>")
    # 1 s apart: a slow scheduler on a loaded machine still sends three separate slices
    order = parent(1, ev.AlgoParams(kind=ev.AlgoKind.TWAP, horizon_s=3, interval_s=1))
    await publish_event(nc, order)
    await orders.wait_for(finished(order.client_order_id), timeout=15)

    submitted = children_of(orders, order.client_order_id, ev.OrderSubmitted)
    assert [s.quantity for s in submitted] == [
        Decimal("0.33333333"),
        Decimal("0.33333333"),
        Decimal("0.33333334"),
    ]
    assert [s.client_order_id for s in submitted] == [
        client_order_id("intent-1", n) for n in (1, 2, 3)
    ]
    child_fills = children_of(fills, order.client_order_id, ev.Fill)
    assert sum(f.quantity for f in child_fills) == Decimal("1")
    assert all(f.correlation_id == "sig-1" for f in child_fills)
    [quality] = orders.matching(
        lambda e: isinstance(e, ev.ExecutionQuality) and e.client_order_id == order.client_order_id
    )
    assert quality.children == 3 and quality.fill_rate == Decimal("1")


async def test_iceberg_never_shows_more_than_its_display_quantity(stack, nc):
    await stack.start("execution-gateway")
    await tick(nc, "100")
    orders = await collect(nc, "trading.order.>")
    fills = await collect(nc, "trading.fill.>")
    order = parent(
        2,
        ev.AlgoParams(kind=ev.AlgoKind.ICEBERG, display_quantity=Decimal("0.4")),
        qty="1",
        limit="99",
    )
    await publish_event(nc, order)
    pcid = order.client_order_id
    for n in range(1, 4):
        await orders.wait_for(
            lambda e: isinstance(e, ev.OrderAccepted) and e.parent_id == pcid, count=n
        )
        await tick(nc, "98.5")  # fills the one working child
        await fills.wait_for(lambda e: e.parent_id == pcid, count=n)
    await orders.wait_for(finished(pcid), timeout=15)

    submitted = children_of(orders, pcid, ev.OrderSubmitted)
    assert [s.quantity for s in submitted] == [Decimal("0.4"), Decimal("0.4"), Decimal("0.2")]
    assert all(s.limit_price == Decimal("99") for s in submitted)
    # Never two children at once: each child was sent only after the one before had filled.
    sequence = [
        (type(e).__name__, e.client_order_id)
        for e in orders.events + fills.events
        if isinstance(e, ev.OrderSubmitted | ev.Fill) and e.parent_id == pcid
    ]
    progress = orders.matching(
        lambda e: isinstance(e, ev.AlgoProgress) and e.client_order_id == pcid
    )
    assert progress and all(p.working_quantity <= Decimal("0.4") for p in progress)
    assert len(sequence) == 6


async def test_limit_then_market_cancels_the_limit_before_sending_the_rest_at_market(stack, nc):
    await stack.start("execution-gateway")
    await tick(nc, "100")
    orders = await collect(nc, "trading.order.>")
    fills = await collect(nc, "trading.fill.>")
    order = parent(
        3, ev.AlgoParams(kind=ev.AlgoKind.LIMIT_THEN_MARKET, timeout_s=3.0), qty="2", limit="99"
    )
    pcid = order.client_order_id
    await publish_event(nc, order)
    await orders.wait_for(lambda e: isinstance(e, ev.OrderAccepted) and e.parent_id == pcid)
    await tick(nc, "98.9", volume="0.5")  # the limit child fills 0.5 of 2
    await fills.wait_for(lambda e: e.parent_id == pcid)
    await orders.wait_for(finished(pcid), timeout=15)

    limit_child, market_child = children_of(orders, pcid, ev.OrderSubmitted)
    assert limit_child.order_type is ev.OrderType.LIMIT and limit_child.quantity == Decimal("2")
    assert market_child.order_type is ev.OrderType.MARKET
    assert market_child.quantity == Decimal("1.5")  # only what the limit did not fill
    [canceled] = children_of(orders, pcid, ev.OrderCanceled)
    assert canceled.client_order_id == limit_child.client_order_id
    assert canceled.reason is ev.CancelReason.REPLACED
    events = orders.events
    assert events.index(canceled) < events.index(market_child)  # confirmed before replacing
    assert sum(f.quantity for f in children_of(fills, pcid, ev.Fill)) == Decimal("2")


async def test_a_halt_cancels_every_child_and_stops_every_parent(stack, nc):
    await stack.start("execution-gateway")
    await tick(nc, "100")
    await tick(nc, "3000", symbol="ETH/USDT")
    orders = await collect(nc, "trading.order.>")
    fills = await collect(nc, "trading.fill.>")
    iceberg = parent(
        4, ev.AlgoParams(kind=ev.AlgoKind.ICEBERG, display_quantity=Decimal("1")), "3", "99"
    )
    ltm = parent(5, ev.AlgoParams(kind=ev.AlgoKind.LIMIT_THEN_MARKET, timeout_s=600), "2", "98")
    twap = parent(6, ev.AlgoParams(kind=ev.AlgoKind.TWAP, horizon_s=600, interval_s=60), "6")
    for order in (iceberg, ltm, twap):
        await publish_event(nc, order)
    await orders.wait_for(lambda e: isinstance(e, ev.OrderAccepted) and e.parent_id != "", count=3)
    await publish_event(
        nc, ev.TradingStateChanged(state=ev.TradingState.HALTED, scope="global", reason="test")
    )
    for order in (iceberg, ltm, twap):
        await orders.wait_for(finished(order.client_order_id, ev.AlgoStatus.CANCELED))
    canceled = await orders.wait_for(
        lambda e: isinstance(e, ev.OrderCanceled) and e.parent_id != "", count=2
    )
    assert {c.reason for c in canceled} == {ev.CancelReason.HALT}
    assert {c.parent_id for c in canceled} == {iceberg.client_order_id, ltm.client_order_id}

    stopped = {iceberg.client_order_id, ltm.client_order_id, twap.client_order_id}
    fills_before = len(fills.matching(lambda e: e.parent_id in stopped))  # twap's first slice
    await tick(nc, "90")  # would fill both resting children
    marker = parent(
        7, ev.AlgoParams(kind=ev.AlgoKind.TWAP, horizon_s=1, interval_s=1), "1", symbol="ETH/USDT"
    )
    await publish_event(nc, marker)  # a later parent (the gate would not send it while halted)
    await fills.wait_for(lambda e: e.parent_id == marker.client_order_id)
    assert len(fills.matching(lambda e: e.parent_id in stopped)) == fills_before
    assert (
        len(
            [
                s
                for s in orders.matching(lambda e: isinstance(e, ev.OrderSubmitted))
                if s.parent_id in stopped
            ]
        )
        == 3
    )  # no child after the halt


async def test_a_parent_resumes_after_a_restart_without_duplicate_children(stack, nc):
    await stack.start("execution-gateway")
    await tick(nc, "100")
    orders = await collect(nc, "trading.order.>")
    fills = await collect(nc, "trading.fill.>")
    order = parent(
        8, ev.AlgoParams(kind=ev.AlgoKind.ICEBERG, display_quantity=Decimal("1")), "3", "99"
    )
    pcid = order.client_order_id
    await publish_event(nc, order)
    await orders.wait_for(lambda e: isinstance(e, ev.OrderAccepted) and e.parent_id == pcid)
    await stack.stop("execution-gateway")
    await tick(nc, "98")  # the first child fills while the gateway is down
    await stack.start("execution-gateway")
    for n in (2, 3):
        await orders.wait_for(
            lambda e: isinstance(e, ev.OrderAccepted) and e.parent_id == pcid, count=n
        )
        await tick(nc, "98")
    await orders.wait_for(finished(pcid), timeout=15)

    submitted = children_of(orders, pcid, ev.OrderSubmitted)
    cids = [s.client_order_id for s in submitted]
    assert cids == [client_order_id("intent-8", n) for n in (1, 2, 3)]  # each exactly once
    child_fills = {f.id: f for f in children_of(fills, pcid, ev.Fill)}
    assert sum(f.quantity for f in child_fills.values()) == Decimal("3")


async def test_reducing_stops_parents_that_add_exposure_and_keeps_reduce_only_ones(stack, nc):
    await stack.start("execution-gateway")
    await tick(nc, "100")
    orders = await collect(nc, "trading.order.>")
    algo = ev.AlgoParams(kind=ev.AlgoKind.ICEBERG, display_quantity=Decimal("1"))
    opening = parent(9, algo, "3", "99")
    closing = msgspec.structs.replace(
        parent(10, algo, "2", "101", side=ev.Side.SELL), reduce_only=True
    )
    for order in (opening, closing):
        await publish_event(nc, order)
    await orders.wait_for(lambda e: isinstance(e, ev.OrderAccepted) and e.parent_id, count=2)
    await publish_event(
        nc, ev.TradingStateChanged(state=ev.TradingState.REDUCING, scope="symbol:BTC/USDT")
    )
    await orders.wait_for(finished(opening.client_order_id, ev.AlgoStatus.CANCELED))
    [canceled] = await orders.wait_for(
        lambda e: isinstance(e, ev.OrderCanceled) and e.parent_id == opening.client_order_id
    )
    assert canceled.reason is ev.CancelReason.HALT
    for n in (1, 2):  # the reduce-only parent works on to the end
        await tick(nc, "102")
        await orders.wait_for(
            lambda e: isinstance(e, ev.ExecutionQuality) and e.parent_id == closing.client_order_id,
            count=n,
        )
        if n == 1:
            await orders.wait_for(
                lambda e: (
                    isinstance(e, ev.OrderAccepted) and e.parent_id == closing.client_order_id
                ),
                count=2,
            )
    await orders.wait_for(finished(closing.client_order_id))


async def test_a_parent_past_its_ttl_is_canceled_with_its_children(stack, nc, config):
    cfg = msgspec.structs.replace(config, execution=ExecutionConfig(order_ttl_s=0.5))
    await stack.start("execution-gateway", config=cfg)
    await tick(nc, "100")
    orders = await collect(nc, "trading.order.>")
    order = parent(
        11, ev.AlgoParams(kind=ev.AlgoKind.ICEBERG, display_quantity=Decimal("1")), "3", "99"
    )
    await publish_event(nc, order)
    pcid = order.client_order_id
    [progress] = await orders.wait_for(finished(pcid, ev.AlgoStatus.CANCELED))
    assert progress.detail.startswith("ttl_expired")
    [canceled] = await orders.wait_for(
        lambda e: isinstance(e, ev.OrderCanceled) and e.parent_id == pcid
    )
    assert canceled.reason is ev.CancelReason.TTL_EXPIRED
    modify = ev.ModifyOrder(client_order_id=canceled.client_order_id, quantity=Decimal(5))
    await publish_event(nc, modify)
    [refused] = await orders.wait_for(lambda e: isinstance(e, ev.OrderCommandRejected))
    assert refused.reason is ev.CommandRejectReason.NOT_SUPPORTED  # children belong to the algo


async def test_the_gate_counts_an_algo_parent_as_open_until_its_children_finish(stack, nc):
    """The risk-gate's open-order book holds the approved parent; children's fills count
    against it (by parent_id) and the terminal AlgoProgress closes it."""
    await stack.start("risk-gate", "execution-gateway")
    await tick(nc, "100")
    orders = await collect(nc, "trading.order.>")
    intent = ev.OrderIntent(
        id="gate-twap",
        strategy="demo",
        venue=PAPER,
        symbol="BTC/USDT",
        side=ev.Side.BUY,
        quantity=Decimal("0.2"),
        order_type=ev.OrderType.MARKET,
        algo=ev.AlgoParams(kind=ev.AlgoKind.TWAP, horizon_s=1, interval_s=0.5),
    )
    book = await nc.jetstream().key_value("risk_orders")
    watcher = await book.watchall()
    await publish_event(nc, intent)
    [approved] = await orders.wait_for(lambda e: isinstance(e, ev.OrderApproved))
    pcid = approved.client_order_id
    await orders.wait_for(finished(pcid), timeout=15)
    assert len(children_of(orders, pcid, ev.OrderSubmitted)) >= 2  # worked as children

    async def book_history() -> list[str | None]:
        ops: list[str | None] = []
        async for entry in watcher:
            if entry is not None and entry.key == pcid:
                ops.append(entry.operation)
                if entry.operation == "DEL":
                    return ops
        return ops

    ops = await asyncio.wait_for(book_history(), 15)
    assert ops[0] is None and ops[-1] == "DEL"  # opened at approval, closed when finished
    await watcher.stop()
