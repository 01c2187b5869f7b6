"""Execution quality (E9) on scripted fills with known answers."""

from __future__ import annotations

from decimal import Decimal

from tradebus_common.events import Side
from tradebus_execution_gateway.quality import TimedFill, measure


def fill(n: int, qty: str, price: str, fee: str, ts: float) -> TimedFill:
    return TimedFill(
        trade_id=f"t{n}", quantity=Decimal(qty), price=Decimal(price), fee=Decimal(fee), ts=ts
    )


def test_a_buy_filled_in_two_parts_above_arrival():
    fills = [fill(1, "1", "100.10", "0.1", 10.25), fill(2, "1", "100.30", "0.1", 11.5)]
    q = measure(Side.BUY, Decimal("2"), fills, 10.0, Decimal("100"), Decimal("99.90"))
    assert q.filled_quantity == Decimal("2") and q.fill_rate == Decimal("1")
    assert q.avg_price == Decimal("100.2")
    assert q.slippage_bps == Decimal("20.00")
    assert (q.time_to_first_fill_ms, q.time_to_last_fill_ms) == (250, 1500)
    # against the decision price 99.90: 0.2 + 0.4 = 0.6 of price, plus 0.2 of fees
    assert q.implementation_shortfall == Decimal("0.8")
    assert q.implementation_shortfall_bps == Decimal("40.04")  # 0.8 / 199.8


def test_a_sell_half_filled_counts_the_unfilled_half_at_the_last_price():
    fills = [fill(1, "1", "99", "0", 5.0)]
    q = measure(Side.SELL, Decimal("2"), fills, 5.0, Decimal("100"), last_price=Decimal("98"))
    assert q.fill_rate == Decimal("0.5")
    assert q.slippage_bps == Decimal("100.00")  # sold 1% under arrival: a cost
    # sold 1 at 99 vs 100 (1.0) + 1 unsold while the price fell to 98 (2.0)
    assert q.implementation_shortfall == Decimal("3")
    assert q.implementation_shortfall_bps == Decimal("150.00")


def test_an_order_with_no_fill_has_no_price_figures():
    q = measure(Side.BUY, Decimal("1"), [], 0.0, None)
    assert q.avg_price is None and q.slippage_bps is None
    assert q.implementation_shortfall is None and q.time_to_first_fill_ms is None
    assert q.fill_rate == 0
