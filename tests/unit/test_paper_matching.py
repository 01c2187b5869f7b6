"""The paper venue's matching rules at their boundaries."""

from __future__ import annotations

from decimal import Decimal as D

from tradebus_common.config import VenueConfig
from tradebus_common.events import Liquidity, MarketTick, OrderType, Side
from tradebus_execution_gateway.venues.base import VenueOrder, VenueOrderStatus
from tradebus_execution_gateway.venues.matching import on_arrival, on_tick

CFG = VenueConfig(symbols=["BTC/USDT"], taker_fee_rate=D("0.001"), maker_fee_rate=D("0.0005"))


def order(side=Side.BUY, qty="1", kind=OrderType.LIMIT, limit="100") -> VenueOrder:
    return VenueOrder(
        client_order_id="c1",
        venue_order_id="Pc1",
        symbol="BTC/USDT",
        side=side,
        quantity=D(qty),
        status=VenueOrderStatus.OPEN,
        order_type=kind,
        limit_price=None if kind is OrderType.MARKET else D(limit),
    )


def tick(price: str, volume: str | None = None) -> MarketTick:
    return MarketTick(
        venue="paper",
        symbol="BTC/USDT",
        price=D(price),
        volume=None if volume is None else D(volume),
    )


def test_market_order_fills_at_once_at_last_price_as_taker():
    after = on_arrival(order(kind=OrderType.MARKET), D("100"), 5, CFG)
    assert after.status is VenueOrderStatus.FILLED and after.last_tick_seq == 5
    [fill] = after.fills
    assert (fill.price, fill.quantity, fill.liquidity) == (D("100"), D("1"), Liquidity.TAKER)
    assert fill.fee == D("0.10000000")


def test_slippage_moves_against_the_taker():
    cfg = VenueConfig(symbols=["BTC/USDT"], slippage_bps=D("10"))
    buy = on_arrival(order(kind=OrderType.MARKET), D("100"), 1, cfg)
    sell = on_arrival(order(side=Side.SELL, kind=OrderType.MARKET), D("100"), 1, cfg)
    assert buy.fills[0].price == D("100.1") and sell.fills[0].price == D("99.9")


def test_limit_below_market_rests_and_at_market_fills_capped_at_limit():
    assert on_arrival(order(limit="99.99"), D("100"), 1, CFG).status is VenueOrderStatus.OPEN
    cfg = VenueConfig(symbols=["BTC/USDT"], slippage_bps=D("50"))
    filled = on_arrival(order(limit="100"), D("100"), 1, cfg)
    assert filled.fills[0].price == D("100")  # slippage would be 100.5: the limit caps it


def test_resting_buy_fills_when_price_reaches_the_limit_not_a_tick_before():
    resting = on_arrival(order(limit="99"), D("100"), 1, CFG)
    not_yet = on_tick(resting, tick("99.01"), 2, CFG)
    assert not_yet is not None and not_yet.fills == [] and not_yet.last_tick_seq == 2
    filled = on_tick(not_yet, tick("99"), 3, CFG)
    assert filled.status is VenueOrderStatus.FILLED
    [fill] = filled.fills
    assert (fill.price, fill.liquidity, fill.fee) == (D("99"), Liquidity.MAKER, D("0.04950000"))


def test_resting_sell_fills_at_or_above_its_limit():
    resting = on_arrival(order(side=Side.SELL, limit="101"), D("100"), 1, CFG)
    assert on_tick(resting, tick("100.99"), 2, CFG).fills == []
    assert on_tick(resting, tick("101.5"), 2, CFG).fills[0].price == D("101")


def test_partial_fills_against_tick_volume_then_complete():
    cfg = VenueConfig(symbols=["BTC/USDT"], participation_rate=D("0.5"))
    resting = on_arrival(order(qty="1"), D("101"), 1, cfg)
    part = on_tick(resting, tick("100", volume="0.6"), 2, cfg)
    assert part.status is VenueOrderStatus.PARTIALLY_FILLED
    assert part.filled_quantity == D("0.3") and part.remaining == D("0.7")
    done = on_tick(part, tick("99", volume="10"), 3, cfg)
    assert done.status is VenueOrderStatus.FILLED and done.filled_quantity == D("1")
    assert [f.trade_id for f in done.fills] == ["Tc1-1", "Tc1-2"]


def test_a_tick_already_seen_changes_nothing():
    resting = on_arrival(order(limit="99"), D("100"), 7, CFG)
    assert on_tick(resting, tick("90"), 7, CFG) is None
    assert on_tick(resting, tick("90"), 6, CFG) is None


def test_finished_orders_ignore_ticks():
    filled = on_arrival(order(kind=OrderType.MARKET), D("100"), 1, CFG)
    assert on_tick(filled, tick("1"), 2, CFG) is None


def test_same_inputs_same_outputs():
    a = on_tick(on_arrival(order(), D("101"), 1, CFG), tick("100", "0.4"), 2, CFG)
    b = on_tick(on_arrival(order(), D("101"), 1, CFG), tick("100", "0.4"), 2, CFG)
    assert a == b
