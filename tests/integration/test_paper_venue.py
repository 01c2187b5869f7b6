"""The paper venue on real NATS: resting limit orders, fills on later ticks, cancel-all on halt,
and its book surviving a gateway restart."""

from __future__ import annotations

from decimal import Decimal

import asyncpg

from tradebus_common import events as ev
from tradebus_common.codec import encode
from tradebus_common.ids import client_order_id

from ..support.bus import collect, publish_event, publish_raw


def approved(
    n: int,
    side=ev.Side.BUY,
    limit: str | None = "99",
    qty: str = "1",
    symbol: str = "BTC/USDT",
    strategy: str = "demo",
) -> ev.OrderApproved:
    return ev.OrderApproved(
        id=f"approved-{n}",
        correlation_id=f"sig-{n}",
        intent_id=f"intent-{n}",
        strategy=strategy,
        venue="paper",
        symbol=symbol,
        side=side,
        quantity=Decimal(qty),
        order_type=ev.OrderType.LIMIT if limit else ev.OrderType.MARKET,
        limit_price=Decimal(limit) if limit else None,
        client_order_id=client_order_id(f"intent-{n}"),
    )


async def tick(nc, price: str, symbol: str = "BTC/USDT", volume: str | None = None) -> None:
    await publish_event(
        nc,
        ev.MarketTick(
            venue="paper",
            symbol=symbol,
            price=Decimal(price),
            volume=Decimal(volume) if volume else None,
        ),
    )


async def test_resting_limit_order_fills_on_a_later_crossing_tick(stack, nc):
    await stack.start("execution-gateway")
    await tick(nc, "100")
    orders = await collect(nc, "trading.order.>")
    fills = await collect(nc, "trading.fill.>")
    await publish_event(nc, approved(1, limit="99"))
    await orders.wait_for(lambda e: isinstance(e, ev.OrderAccepted))
    await tick(nc, "99.50")
    await tick(nc, "98.75")
    [fill] = await fills.wait_for(lambda e: isinstance(e, ev.Fill))
    assert fill.price == Decimal("99") and fill.liquidity is ev.Liquidity.MAKER
    assert fill.correlation_id == "sig-1" and fill.causation_id == "approved-1"
    assert fill.fee == Decimal("0.07920000")  # 1 x 99 x 0.0008 maker


async def test_halt_cancels_working_orders_in_scope_and_they_never_fill(stack, nc):
    await stack.start("execution-gateway")
    await tick(nc, "100")
    await tick(nc, "3000", symbol="ETH/USDT")
    orders = await collect(nc, "trading.order.>")
    await publish_event(nc, approved(1, limit="99"))
    await publish_event(nc, approved(2, limit="98", strategy="other"))
    await publish_event(nc, approved(3, limit="2900", symbol="ETH/USDT"))
    await orders.wait_for(lambda e: isinstance(e, ev.OrderAccepted), count=3)

    halt = ev.TradingStateChanged(
        state=ev.TradingState.HALTED, scope="symbol:BTC/USDT", reason="fat finger", operator="alice"
    )
    await publish_event(nc, halt)
    canceled = await orders.wait_for(lambda e: isinstance(e, ev.OrderCanceled), count=2)
    assert {c.client_order_id for c in canceled} == {
        client_order_id("intent-1"),
        client_order_id("intent-2"),
    }
    assert all(c.reason is ev.CancelReason.HALT and c.causation_id == halt.id for c in canceled)

    fills = await collect(nc, "trading.fill.>")
    await tick(nc, "90")  # would have filled both BTC orders
    await tick(nc, "2800", symbol="ETH/USDT")  # out of scope: still working, fills
    [fill] = await fills.wait_for(lambda e: isinstance(e, ev.Fill))
    assert fill.symbol == "ETH/USDT"
    assert not fills.matching(lambda e: e.symbol == "BTC/USDT")


async def test_resting_book_survives_a_gateway_restart(stack, nc):
    await stack.start("execution-gateway")
    await tick(nc, "100")
    orders = await collect(nc, "trading.order.>")
    await publish_event(nc, approved(1, side=ev.Side.SELL, limit="105", qty="2"))
    await orders.wait_for(lambda e: isinstance(e, ev.OrderAccepted))
    await stack.stop("execution-gateway")
    await stack.start("execution-gateway")
    fills = await collect(nc, "trading.fill.>")
    await tick(nc, "106", volume="10")
    [fill] = await fills.wait_for(lambda e: isinstance(e, ev.Fill))
    assert fill.quantity == Decimal("2") and fill.price == Decimal("105")
    # ... and the same approval again after the restart (a new stream message: a replay
    # past the dedup window) does not place the order again.
    again = approved(1, side=ev.Side.SELL, limit="105", qty="2")
    await publish_raw(
        nc, "trading.order.approved.paper", encode(again), {"Nats-Msg-Id": "replayed-approval"}
    )
    await tick(nc, "107")
    await tick(nc, "100")  # a market order on the same symbol proves the ticks were processed
    await publish_event(nc, approved(9, limit=None))
    await fills.wait_for(lambda e: e.correlation_id == "sig-9")
    assert len({f.id for f in fills.matching(lambda e: e.correlation_id == "sig-1")}) == 1


async def test_halt_with_flatten_closes_every_position_and_the_ledger_ends_at_zero(
    stack, nc, config
):
    """R4 end to end: `{"flatten": true}` on the halt subject -> risk-gate latches HALTED and
    sends cancel-all -> the gateway cancels resting orders and closes each strategy's
    positions with market orders -> the ledger books them -> every position is flat."""
    await stack.start("risk-gate", "execution-gateway", "position-ledger")
    await tick(nc, "100")
    positions = await collect(nc, "trading.position.>")
    orders = await collect(nc, "trading.order.>")
    await publish_event(nc, approved(1, limit=None, qty="2"))  # demo long 2
    await publish_event(
        nc, approved(2, side=ev.Side.SELL, limit=None, qty="0.5", strategy="other")
    )  # other short 0.5
    await publish_event(nc, approved(3, limit="90"))  # resting, must be canceled
    await positions.wait_for(lambda e: isinstance(e, ev.PositionChanged), count=2)
    await orders.wait_for(lambda e: isinstance(e, ev.OrderAccepted), count=3)

    await publish_raw(
        nc, "trading.control.halt", {"reason": "flatten test", "operator": "alice", "flatten": True}
    )
    [canceled] = await orders.wait_for(lambda e: isinstance(e, ev.OrderCanceled))
    assert canceled.client_order_id == client_order_id("intent-3")
    flat = await positions.wait_for(lambda e: e.quantity == 0, count=2)
    assert {(p.strategy, p.quantity) for p in flat} == {("demo", 0), ("other", 0)}
    conn = await asyncpg.connect(config.database.dsn)
    try:
        open_qty = await conn.fetch("SELECT strategy, quantity FROM positions WHERE quantity <> 0")
    finally:
        await conn.close()
    assert open_qty == []


async def test_every_venue_call_reports_its_latency(stack, nc):
    await stack.start("execution-gateway")
    await tick(nc, "100")
    latencies = await collect(nc, "trading.venue.latency.>")
    await publish_event(nc, approved(1, limit=None))
    [seen] = await latencies.wait_for(lambda e: isinstance(e, ev.VenueLatencyObserved))
    assert (seen.venue, seen.operation, seen.ok) == ("paper", "create_order", True)
    assert seen.latency_ms >= 0 and seen.correlation_id == "sig-1"


async def test_a_backlog_is_submitted_together_once_each_and_a_halt_keeps_its_place(stack, nc):
    """Approvals waiting before the gateway starts come as one fetch: plain ones are sent
    concurrently, a repeated client order id still makes one order, and a cancel-all in the
    middle cancels what rests before it and nothing after it."""
    await stack.start("execution-gateway")
    await tick(nc, "100")
    await stack.stop("execution-gateway")
    for n in range(1, 6):  # resting limit buys
        await publish_event(nc, approved(n))
    await publish_raw(  # a repeat of #1 (a new stream message, the same order)
        nc, "trading.order.approved.paper", encode(approved(1)), {"Nats-Msg-Id": "again-1"}
    )
    await publish_event(nc, ev.ControlCommand(action=ev.ControlAction.CANCEL_ALL, reason="t"))
    for n in range(6, 9):
        await publish_event(nc, approved(n))
    orders = await collect(nc, "trading.order.>")
    await stack.start("execution-gateway")
    accepted = await orders.wait_for(lambda e: isinstance(e, ev.OrderAccepted), count=8)
    canceled = await orders.wait_for(lambda e: isinstance(e, ev.OrderCanceled), count=5)
    assert len({e.client_order_id for e in accepted}) == 8
    before = {client_order_id(f"intent-{n}") for n in range(1, 6)}
    assert {e.client_order_id for e in canceled} == before
    kv = await nc.jetstream().key_value("paper_venue")
    assert len([k for k in await kv.keys() if ".order." in k]) == 8  # one venue order each
