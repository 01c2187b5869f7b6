"""Pre-trade checks: boundaries of max notional, price choice, and the trading state."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tradebus_common.config import RiskConfig
from tradebus_common.events import (
    DenyReason,
    OrderIntent,
    OrderType,
    Side,
    TradingState,
    TradingStateChanged,
)
from tradebus_risk_gate.checks import (
    RiskView,
    check_max_notional,
    check_trading_state,
    first_denial,
)

LIMIT = Decimal("50000")
LIMITS = RiskConfig(max_notional_per_order=LIMIT)
ACTIVE = TradingStateChanged(state=TradingState.ACTIVE)


def intent(quantity: str = "1", limit_price: str | None = None) -> OrderIntent:
    return OrderIntent(
        strategy="demo",
        venue="paper",
        symbol="BTC/USDT",
        side=Side.BUY,
        quantity=Decimal(quantity),
        order_type=OrderType.LIMIT if limit_price is not None else OrderType.MARKET,
        limit_price=Decimal(limit_price) if limit_price is not None else None,
    )


def view(last_price: str | None = "50000", state: Any = ACTIVE) -> RiskView:
    return RiskView(
        states=None if state is None else (state,),
        last_price=Decimal(last_price) if last_price else None,
        limits=LIMITS,
    )


# --- max notional -----------------------------------------------------------------------


def test_notional_exactly_at_the_limit_passes() -> None:
    assert check_max_notional(intent("1"), view("50000")) is None
    assert check_max_notional(intent("0.5"), view("100000")) is None


def test_one_price_tick_over_the_limit_is_denied() -> None:
    denial = check_max_notional(intent("1"), view("50000.01"))
    assert denial is not None
    assert denial.reason is DenyReason.MAX_NOTIONAL
    assert denial.limit == LIMIT
    assert denial.current == Decimal("50000.01")


def test_one_quantity_step_over_the_limit_is_denied() -> None:
    denial = check_max_notional(intent("1.00000001"), view("50000"))
    assert denial is not None
    assert denial.reason is DenyReason.MAX_NOTIONAL
    assert denial.limit == LIMIT
    assert denial.current == Decimal("50000.00050000")


def test_limit_price_is_used_over_the_last_price_when_it_is_lower() -> None:
    assert check_max_notional(intent("1", limit_price="40000"), view("60000")) is None


def test_limit_price_is_used_over_the_last_price_when_it_is_higher() -> None:
    denial = check_max_notional(intent("1", limit_price="60000"), view("40000"))
    assert denial is not None
    assert denial.reason is DenyReason.MAX_NOTIONAL
    assert denial.current == Decimal("60000")


def test_limit_price_suffices_without_a_market_price() -> None:
    assert check_max_notional(intent("1", limit_price="100"), view(None)) is None


def test_no_price_at_all_is_denied_as_no_market_price() -> None:
    denial = check_max_notional(intent("1"), view(None))
    assert denial is not None
    assert denial.reason is DenyReason.NO_MARKET_PRICE
    assert "BTC/USDT" in denial.detail


# --- trading state ----------------------------------------------------------------------


def test_unknown_state_fails_closed() -> None:
    denial = check_trading_state(intent(), view(state=None))
    assert denial is not None
    assert denial.reason is DenyReason.STATE_UNKNOWN


def test_halted_state_is_denied_with_the_reason() -> None:
    halted = TradingStateChanged(state=TradingState.HALTED, reason="fat finger")
    denial = check_trading_state(intent(), view(state=halted))
    assert denial is not None
    assert denial.reason is DenyReason.HALTED
    assert "fat finger" in denial.detail


def test_reducing_state_is_denied_as_reducing_only() -> None:
    denial = check_trading_state(
        intent(), view(state=TradingStateChanged(state=TradingState.REDUCING))
    )
    assert denial is not None
    assert denial.reason is DenyReason.REDUCING_ONLY


def test_active_state_passes() -> None:
    assert check_trading_state(intent(), view(state=ACTIVE)) is None


# --- the chain --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (None, DenyReason.STATE_UNKNOWN),
        (TradingStateChanged(state=TradingState.HALTED), DenyReason.HALTED),
        (TradingStateChanged(state=TradingState.REDUCING), DenyReason.REDUCING_ONLY),
    ],
)
def test_first_denial_reports_the_state_before_the_notional(
    state: Any, expected: DenyReason
) -> None:
    denial = first_denial(intent("100"), view("50000", state=state))  # also over notional
    assert denial is not None
    assert denial.reason is expected


def test_first_denial_reports_notional_when_active() -> None:
    denial = first_denial(intent("2"), view("50000"))
    assert denial is not None
    assert denial.reason is DenyReason.MAX_NOTIONAL


def test_first_denial_passes_a_clean_intent() -> None:
    assert first_denial(intent("1"), view("50000")) is None
