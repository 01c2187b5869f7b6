"""S2/S3 sizing at its edges: every mode, rounding, the minimum, zero stop distance, target
reached, and allocation capping the size to the strategy's share."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tradebus_common.config import StrategyConfig, VenueSymbolRules
from tradebus_common.errors import ErrorCode, PermanentError
from tradebus_common.events import Side, Signal, SignalRejectReason, SizingHint, SizingMode
from tradebus_signal.sizing import (
    SizingRefused,
    SizingView,
    cap_to_share,
    equity_pct,
    fixed_notional,
    risk_per_trade,
    round_down,
    size_order,
    target_delta,
)

D = Decimal
PLAIN = StrategyConfig()
RULES = VenueSymbolRules(qty_step=D("0.001"), min_notional=D("10"))


def signal(**overrides: Any) -> Signal:
    fields: dict[str, Any] = {
        "id": "s1",
        "strategy": "demo",
        "venue": "paper",
        "symbol": "BTC/USDT",
        "side": Side.BUY,
    }
    fields.update(overrides)
    return Signal(**fields)


def hint(mode: SizingMode, value: str | None) -> SizingHint:
    return SizingHint(mode=mode, value=None if value is None else D(value))


def refused(sig: Signal, view: SizingView, strategy: StrategyConfig = PLAIN) -> SignalRejectReason:
    with pytest.raises(SizingRefused) as info:
        size_order(sig, strategy, view)
    return info.value.reason


# --- formulas ---------------------------------------------------------------------------


def test_fixed_notional_divides_by_price() -> None:
    assert fixed_notional(D("1000"), D("50000")) == D("0.02")


def test_equity_pct_is_a_percentage_of_the_share() -> None:
    assert equity_pct(D("10"), D("100000"), D("50000")) == D("0.2")


def test_risk_per_trade_loses_exactly_the_risk_at_the_stop() -> None:
    qty = risk_per_trade(D("1"), D("100000"), D("50000"), D("49000"))
    assert qty == D("1")  # 1% of 100k = 1000 = 1 x (50000 - 49000)
    assert qty * (D("50000") - D("49000")) == D("100000") * D("0.01")


def test_risk_per_trade_works_for_a_short_stop_above() -> None:
    assert risk_per_trade(D("0.5"), D("20000"), D("100"), D("110")) == D("10")


def test_zero_stop_distance_is_refused() -> None:
    with pytest.raises(PermanentError) as info:
        risk_per_trade(D("1"), D("100000"), D("50000"), D("50000"))
    assert info.value.code is ErrorCode.ZERO_STOP_DISTANCE


def test_target_delta_buys_up_sells_down_and_none_when_reached() -> None:
    assert target_delta(D("1.5"), D("0.5")) == (Side.BUY, D("1.0"))
    assert target_delta(D("-1"), D("0.5")) == (Side.SELL, D("1.5"))
    assert target_delta(D("0.5"), D("0.5")) is None


def test_round_down_never_rounds_up() -> None:
    assert round_down(D("0.12399"), D("0.001")) == D("0.123")
    assert round_down(D("0.123"), D("0.001")) == D("0.123")
    assert round_down(D("0.0009"), D("0.001")) == 0


def test_round_down_without_a_step_keeps_eight_decimals() -> None:
    assert round_down(D("1") / D("3"), D("0")) == D("0.33333333")


# --- size_order: each mode end to end ---------------------------------------------------


def view(**overrides: Any) -> SizingView:
    fields: dict[str, Any] = {"price": D("50000"), "equity": D("100000"), "rules": RULES}
    fields.update(overrides)
    return SizingView(**fields)


def test_fixed_quantity_rounds_to_the_step() -> None:
    assert size_order(signal(quantity=D("0.12345")), PLAIN, view()) == (Side.BUY, D("0.123"))


def test_fixed_quantity_needs_no_market_or_ledger() -> None:
    assert size_order(signal(quantity=D("2")), PLAIN, SizingView()) == (Side.BUY, D("2.00000000"))


def test_fixed_notional_mode() -> None:
    sig = signal(sizing=hint(SizingMode.FIXED_NOTIONAL, "1000"))
    assert size_order(sig, PLAIN, view()) == (Side.BUY, D("0.020"))


def test_fixed_notional_without_a_price_is_refused() -> None:
    sig = signal(sizing=hint(SizingMode.FIXED_NOTIONAL, "1000"))
    assert refused(sig, view(price=None)) is SignalRejectReason.NO_MARKET_PRICE


def test_equity_pct_mode_uses_the_strategys_share() -> None:
    sig = signal(sizing=hint(SizingMode.EQUITY_PCT, "10"))
    half = view(weight=D("0.5"))
    assert size_order(sig, PLAIN, half) == (Side.BUY, D("0.100"))  # 10% of 50k / 50k


def test_equity_pct_without_a_snapshot_is_refused() -> None:
    sig = signal(sizing=hint(SizingMode.EQUITY_PCT, "10"))
    assert refused(sig, view(equity=None)) is SignalRejectReason.LEDGER_VIEW_MISSING


def test_risk_per_trade_mode_with_the_views_risk_pct() -> None:
    sig = signal(sizing=hint(SizingMode.RISK_PER_TRADE, None))
    got = size_order(sig, PLAIN, view(stop=D("49000"), risk_pct=D("0.25")))
    assert got == (Side.BUY, D("0.250"))  # 0.25% of 100k = 250, / 1000 of distance


def test_risk_per_trade_with_the_stop_at_entry_is_refused() -> None:
    sig = signal(sizing=hint(SizingMode.RISK_PER_TRADE, "1"))
    with pytest.raises(PermanentError) as info:
        size_order(sig, PLAIN, view(stop=D("50000")))
    assert info.value.code is ErrorCode.ZERO_STOP_DISTANCE


def test_target_position_orders_the_delta() -> None:
    sig = signal(target_position=D("0.3"), side=Side.SELL)  # side is not used with a target
    assert size_order(sig, PLAIN, view(position=D("0.1"))) == (Side.BUY, D("0.200"))


def test_target_already_reached_is_no_order() -> None:
    sig = signal(target_position=D("0.1"))
    assert refused(sig, view(position=D("0.1"))) is SignalRejectReason.TARGET_REACHED


def test_target_without_a_snapshot_is_refused() -> None:
    sig = signal(target_position=D("0.1"))
    assert refused(sig, view(equity=None)) is SignalRejectReason.LEDGER_VIEW_MISSING


def test_under_min_notional_is_refused() -> None:
    sig = signal(quantity=D("0.0001"))  # 5 USDT at 50k, under 10
    assert refused(sig, view()) is SignalRejectReason.BELOW_MINIMUM


def test_exactly_min_notional_passes() -> None:
    sig = signal(quantity=D("0.0002"))
    assert size_order(
        sig, PLAIN, view(price=D("50000"), rules=VenueSymbolRules(min_notional=D("10")))
    ) == (
        Side.BUY,
        D("0.00020000"),
    )


def test_rounding_to_zero_is_refused() -> None:
    sig = signal(quantity=D("0.0004"))
    assert refused(sig, view(rules=VenueSymbolRules(qty_step=D("0.001")))) is (
        SignalRejectReason.BELOW_MINIMUM
    )


# --- allocation (S3) --------------------------------------------------------------------


def test_allocation_caps_the_size_to_the_strategys_share() -> None:
    # share 30% of 100k = 30k = 0.6 BTC at 50k; asks 1 BTC
    got = size_order(signal(quantity=D("1")), PLAIN, view(weight=D("0.3")))
    assert got == (Side.BUY, D("0.600"))


def test_allocation_counts_what_the_strategy_already_holds() -> None:
    got = size_order(signal(quantity=D("1")), PLAIN, view(weight=D("0.3"), exposure=D("25000")))
    assert got == (Side.BUY, D("0.100"))


def test_allocation_used_up_is_refused_with_its_reason() -> None:
    v = view(weight=D("0.3"), exposure=D("30000"))
    assert refused(signal(quantity=D("1")), v) is SignalRejectReason.ALLOCATION_EXHAUSTED


def test_reducing_a_position_is_never_capped() -> None:
    v = view(weight=D("0.3"), exposure=D("40000"), position=D("0.8"))
    assert cap_to_share(Side.SELL, D("0.8"), v) == (D("0.8"), False)


def test_within_the_share_is_not_capped() -> None:
    assert cap_to_share(Side.BUY, D("0.5"), view(weight=D("0.3"))) == (D("0.5"), False)


def test_no_snapshot_means_no_cap_for_fixed_sizes() -> None:
    assert cap_to_share(Side.BUY, D("5"), view(equity=None, weight=D("0.1"))) == (D("5"), False)


def test_strategy_fixed_quantity_wins_over_the_signals() -> None:
    fixed = StrategyConfig(quantity=D("0.25"))
    assert size_order(signal(quantity=D("7")), fixed, view()) == (Side.BUY, D("0.250"))


def test_the_signals_sizing_hint_wins_over_the_strategys_quantity() -> None:
    fixed = StrategyConfig(quantity=D("0.25"))
    sig = signal(sizing=hint(SizingMode.FIXED_NOTIONAL, "500"))
    assert size_order(sig, fixed, view()) == (Side.BUY, D("0.010"))


def test_strategy_default_mode_applies_without_quantity() -> None:
    pct = StrategyConfig(sizing_mode="equity_pct", sizing_value=D("5"))
    assert size_order(signal(), pct, view()) == (Side.BUY, D("0.100"))
