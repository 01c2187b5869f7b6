"""R1 checks at their boundaries: exactly at the limit passes, one tick over is denied."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tradebus_common.config import RiskConfig, RiskLimitsOverride, VenueSymbolRules
from tradebus_common.events import (
    DenyReason,
    LedgerSnapshot,
    OrderIntent,
    OrderType,
    PositionView,
    Side,
    TradingState,
    TradingStateChanged,
)
from tradebus_risk_gate import checks as c
from tradebus_risk_gate.limits import resolve
from tradebus_risk_gate.view import RiskView

D = Decimal
ACTIVE = TradingStateChanged(state=TradingState.ACTIVE)


def intent(qty: str = "1", side: Side = Side.BUY, price: str | None = None) -> OrderIntent:
    return OrderIntent(
        strategy="demo",
        venue="paper",
        symbol="BTC/USDT",
        side=side,
        quantity=D(qty),
        order_type=OrderType.LIMIT if price else OrderType.MARKET,
        limit_price=D(price) if price else None,
    )


def snap(position: str = "0", **kw: Any) -> LedgerSnapshot:
    positions = [PositionView(venue="paper", symbol="BTC/USDT", quantity=D(position))]
    return LedgerSnapshot(positions=positions if D(position) else [], **kw)


def view(limits: RiskConfig | None = None, **kw: Any) -> RiskView:
    kw.setdefault("states", (ACTIVE,))
    kw.setdefault("last_price", D("100"))
    kw.setdefault("tick_age_s", 0.0)
    return RiskView(limits=limits or RiskConfig(), **kw)


def denied(check: c.Check, i: OrderIntent, v: RiskView, reason: DenyReason) -> None:
    denial = check(i, v)
    assert denial is not None, f"{check.__name__} passed"
    assert denial.reason is reason
    assert c.first_denial(i, v) is not None


# --- market sanity ----------------------------------------------------------------------


def test_stale_market_data_boundary() -> None:
    limits = RiskConfig(stale_market_data_s=30)
    assert c.check_stale_market_data(intent(), view(limits, tick_age_s=30.0)) is None
    d = c.check_stale_market_data(intent(), view(limits, tick_age_s=30.001))
    assert d is not None and d.reason is DenyReason.STALE_MARKET_DATA
    assert d.limit == D(30) and d.current == D("30.001")


def test_no_tick_at_all_denies_market_and_limit_orders_unless_configured() -> None:
    no_tick = {"last_price": None, "tick_age_s": None}
    denied(c.check_market_price, intent(), view(**no_tick), DenyReason.NO_MARKET_PRICE)
    denied(c.check_market_price, intent(price="100"), view(**no_tick), DenyReason.NO_MARKET_PRICE)
    lenient = RiskConfig(deny_without_market_data=False)
    assert c.check_market_price(intent(price="100"), view(lenient, **no_tick)) is None
    d = c.check_market_price(intent(), view(lenient, **no_tick))
    assert d is not None and d.reason is DenyReason.NO_MARKET_PRICE


@pytest.mark.parametrize("side", [Side.BUY, Side.SELL])
def test_price_collar_boundary_both_ways(side: Side) -> None:
    limits = RiskConfig(price_collar_pct=D("10"))
    assert c.check_price_collar(intent(side=side, price="110"), view(limits)) is None
    assert c.check_price_collar(intent(side=side, price="90"), view(limits)) is None
    for price in ("110.01", "89.99"):
        d = c.check_price_collar(intent(side=side, price=price), view(limits))
        assert d is not None and d.reason is DenyReason.PRICE_COLLAR
        assert d.limit == D("10") and d.current == D("10.01")
        assert d.breach_pct == D("0.10")


# --- order size and venue rules ---------------------------------------------------------


def test_max_notional_boundary_and_breach_pct() -> None:
    limits = RiskConfig(max_notional_per_order=D("1000"))
    assert c.check_max_notional(intent("10"), view(limits)) is None
    d = c.check_max_notional(intent("10.01"), view(limits))
    assert d is not None and d.reason is DenyReason.MAX_NOTIONAL
    assert d.check == "max_notional" and d.breach_pct == D("0.10")


def test_venue_min_notional_boundary() -> None:
    rules = VenueSymbolRules(min_notional=D("10"))
    assert c.check_venue_min_notional(intent("0.1"), view(rules=rules)) is None
    d = c.check_venue_min_notional(intent("0.0999"), view(rules=rules))
    assert d is not None and d.reason is DenyReason.VENUE_MIN_NOTIONAL
    assert d.limit == D("10") and d.current == D("9.9900")


def test_venue_precision_on_quantity_and_price() -> None:
    rules = VenueSymbolRules(qty_step=D("0.001"), price_tick=D("0.5"))
    assert c.check_venue_precision(intent("0.123", price="100.5"), view(rules=rules)) is None
    for bad in (intent("0.1234"), intent("1", price="100.25")):
        d = c.check_venue_precision(bad, view(rules=rules))
        assert d is not None and d.reason is DenyReason.VENUE_PRECISION


def test_venue_rules_come_from_config_per_venue_and_symbol() -> None:
    from tradebus_risk_gate.limits import venue_rules

    rules = VenueSymbolRules(min_notional=D("5"))
    risk = RiskConfig(venue_rules={"paper": {"BTC/USDT": rules}})
    assert venue_rules(risk, "paper", "BTC/USDT") == rules
    assert venue_rules(risk, "paper", "ETH/USDT").min_notional == 0


# --- throttle and open counts -----------------------------------------------------------


def test_rate_limit_per_strategy_boundary() -> None:
    limits = RiskConfig(max_orders_per_window_per_strategy=5, max_orders_per_window=100)
    assert c.check_rate(intent(), view(limits, recent_orders_strategy=4)) is None
    d = c.check_rate(intent(), view(limits, recent_orders_strategy=5))
    assert d is not None and d.reason is DenyReason.RATE_LIMIT_STRATEGY
    assert d.limit == 5 and d.current == 6


def test_rate_limit_overall_boundary() -> None:
    limits = RiskConfig(max_orders_per_window_per_strategy=100, max_orders_per_window=10)
    assert c.check_rate(intent(), view(limits, recent_orders_total=9)) is None
    d = c.check_rate(intent(), view(limits, recent_orders_total=10))
    assert d is not None and d.reason is DenyReason.RATE_LIMIT_TOTAL


def test_max_open_orders_boundary() -> None:
    limits = RiskConfig(max_open_orders=3)
    assert c.check_max_open_orders(intent(), view(limits, open_orders=2)) is None
    denied(
        c.check_max_open_orders, intent(), view(limits, open_orders=3), DenyReason.MAX_OPEN_ORDERS
    )


def test_max_open_positions_counts_only_new_positions() -> None:
    limits = RiskConfig(max_open_positions=1)
    other = PositionView(venue="paper", symbol="ETH/USDT", quantity=D("1"))
    one_open = LedgerSnapshot(positions=[other])
    assert c.check_max_open_positions(intent(), view(limits, snapshot=LedgerSnapshot())) is None
    denied(
        c.check_max_open_positions,
        intent(),
        view(limits, snapshot=one_open),
        DenyReason.MAX_OPEN_POSITIONS,
    )
    adding = LedgerSnapshot(positions=[other, *snap("1").positions])
    assert c.check_max_open_positions(intent(), view(limits, snapshot=adding)) is None


# --- position and exposure --------------------------------------------------------------


def test_max_position_qty_boundary_including_open_orders() -> None:
    limits = RiskConfig(max_position_qty=D("5"))
    v = view(limits, snapshot=snap("3"), pending_qty=D("1"))
    assert c.check_max_position_qty(intent("1"), v) is None
    d = c.check_max_position_qty(intent("1.001"), v)
    assert d is not None and d.reason is DenyReason.MAX_POSITION_QTY
    assert d.current == D("5.001")


def test_position_limits_never_block_a_reduction() -> None:
    limits = RiskConfig(max_position_qty=D("1"), max_position_notional=D("1"))
    v = view(limits, snapshot=snap("10"))
    assert c.check_max_position_qty(intent("2", Side.SELL), v) is None
    assert c.check_max_position_notional(intent("2", Side.SELL), v) is None


def test_max_position_notional_boundary() -> None:
    limits = RiskConfig(max_position_notional=D("500"))
    assert c.check_max_position_notional(intent("5"), view(limits, snapshot=snap())) is None
    denied(
        c.check_max_position_notional,
        intent("5.01"),
        view(limits, snapshot=snap()),
        DenyReason.MAX_POSITION_NOTIONAL,
    )


def test_gross_exposure_boundary() -> None:
    limits = RiskConfig(max_gross_exposure=D("1000"))
    s = snap(gross_exposure=D("700"))
    assert (
        c.check_max_gross_exposure(intent("2"), view(limits, snapshot=s, pending_notional=D("100")))
        is None
    )
    d = c.check_max_gross_exposure(
        intent("2.01"), view(limits, snapshot=s, pending_notional=D("100"))
    )
    assert d is not None and d.reason is DenyReason.MAX_GROSS_EXPOSURE and d.current == D("1001.00")


def test_concentration_boundary() -> None:
    limits = RiskConfig(max_concentration_pct=D("20"))
    s = snap(equity=D("1000"))
    assert c.check_concentration(intent("2"), view(limits, snapshot=s)) is None
    d = c.check_concentration(intent("2.01"), view(limits, snapshot=s))
    assert d is not None and d.reason is DenyReason.MAX_CONCENTRATION
    zero = c.check_concentration(intent("1"), view(limits, snapshot=snap(equity=D(0))))
    assert zero is not None and zero.reason is DenyReason.MAX_CONCENTRATION


def test_leverage_boundary() -> None:
    limits = RiskConfig(max_leverage=D("2"))
    s = snap(equity=D("1000"), gross_exposure=D("1500"))
    assert c.check_leverage(intent("5"), view(limits, snapshot=s)) is None
    denied(c.check_leverage, intent("5.01"), view(limits, snapshot=s), DenyReason.MAX_LEVERAGE)


def test_buying_power_boundary_net_of_open_orders() -> None:
    limits = RiskConfig(check_buying_power=True)
    v = view(limits, snapshot=snap(cash=D("1000")), pending_notional=D("500"))
    assert c.check_buying_power(intent("5"), v) is None
    d = c.check_buying_power(intent("5.01"), v)
    assert d is not None and d.reason is DenyReason.BUYING_POWER
    assert d.limit == D("500") and d.current == D("501.00")


# --- losses -----------------------------------------------------------------------------


def test_daily_loss_boundary_blocks_only_new_risk() -> None:
    limits = RiskConfig(daily_loss_limit=D("100"))
    assert c.check_daily_loss(intent(), view(limits, snapshot=snap(daily_pnl=D("-100")))) is None
    over = view(limits, snapshot=snap("1", daily_pnl=D("-100.01")))
    denied(c.check_daily_loss, intent(), over, DenyReason.DAILY_LOSS)
    assert c.check_daily_loss(intent("1", Side.SELL), over) is None  # closing is allowed


def test_drawdown_boundary() -> None:
    limits = RiskConfig(max_drawdown_pct=D("15"))
    assert c.check_drawdown(intent(), view(limits, snapshot=snap(drawdown_pct=D("15")))) is None
    denied(
        c.check_drawdown,
        intent(),
        view(limits, snapshot=snap(drawdown_pct=D("15.01"))),
        DenyReason.MAX_DRAWDOWN,
    )


@pytest.mark.parametrize(
    ("key", "value", "check"),
    [
        ("max_gross_exposure", D("1"), c.check_max_gross_exposure),
        ("max_concentration_pct", D("1"), c.check_concentration),
        ("max_leverage", D("1"), c.check_leverage),
        ("check_buying_power", True, c.check_buying_power),
        ("daily_loss_limit", D("1"), c.check_daily_loss),
        ("max_drawdown_pct", D("1"), c.check_drawdown),
        ("max_open_positions", 1, c.check_max_open_positions),
    ],
)
def test_ledger_checks_fail_closed_without_a_snapshot(key: str, value: Any, check: c.Check) -> None:
    limits = RiskConfig(**{key: value})
    d = check(intent(), view(limits, snapshot=None))
    assert d is not None and d.reason is DenyReason.LEDGER_VIEW_MISSING and key in d.detail


def test_ledger_checks_are_off_by_default() -> None:
    assert c.first_denial(intent(), view(snapshot=None)) is None


# --- trading state and scopes -----------------------------------------------------------


def reducing(scope: str = "global") -> TradingStateChanged:
    return TradingStateChanged(state=TradingState.REDUCING, scope=scope)


def test_a_halted_narrow_scope_wins_over_an_active_global() -> None:
    halted = TradingStateChanged(state=TradingState.HALTED, scope="symbol:BTC/USDT")
    d = c.check_trading_state(intent(), view(states=(ACTIVE, halted)))
    assert d is not None and d.reason is DenyReason.HALTED and "symbol:BTC/USDT" in d.detail


@pytest.mark.parametrize(
    ("position", "order", "allowed"),
    [
        ("2", intent("1", Side.SELL), True),  # shrinks
        ("2", intent("2", Side.SELL), True),  # to exactly flat
        ("2", intent("2.01", Side.SELL), False),  # a flip
        ("2", intent("0.1", Side.BUY), False),  # grows
        ("-2", intent("1", Side.BUY), True),  # shrinks a short
        ("0", intent("1", Side.SELL), False),  # nothing to reduce
    ],
)
def test_reducing_approves_only_shrinking_orders(
    position: str, order: OrderIntent, allowed: bool
) -> None:
    d = c.check_trading_state(order, view(states=(ACTIVE, reducing()), snapshot=snap(position)))
    assert (d is None) is allowed
    if d is not None:
        assert d.reason is DenyReason.REDUCING_ONLY


def test_reducing_counts_open_orders_so_two_sells_cannot_flip() -> None:
    v = view(states=(reducing(),), snapshot=snap("2"), pending_qty=D("-1.5"))
    d = c.check_trading_state(intent("1", Side.SELL), v)
    assert d is not None and d.reason is DenyReason.REDUCING_ONLY


def test_reducing_without_a_snapshot_denies() -> None:
    d = c.check_trading_state(intent("1", Side.SELL), view(states=(reducing(),)))
    assert d is not None and d.reason is DenyReason.REDUCING_ONLY


def test_state_not_read_fails_closed_before_anything_else() -> None:
    d = c.first_denial(intent("1000000"), view(states=None))
    assert d is not None and d.reason is DenyReason.STATE_UNKNOWN


# --- limits resolution ------------------------------------------------------------------


def test_limits_strategy_then_symbol_override() -> None:
    risk = RiskConfig(
        max_notional_per_order=D("100"),
        price_collar_pct=D("5"),
        strategies={"demo": RiskLimitsOverride(max_notional_per_order=D("200"))},
        symbols={"BTC/USDT": RiskLimitsOverride(price_collar_pct=D("1"))},
    )
    limits = resolve(risk, "demo", "BTC/USDT")
    assert limits.max_notional_per_order == D("200") and limits.price_collar_pct == D("1")
    other = resolve(risk, "other", "ETH/USDT")
    assert other.max_notional_per_order == D("100") and other.price_collar_pct == D("5")
    both = RiskConfig(
        strategies={"demo": RiskLimitsOverride(max_position_qty=D("1"))},
        symbols={"BTC/USDT": RiskLimitsOverride(max_position_qty=D("2"))},
    )
    assert resolve(both, "demo", "BTC/USDT").max_position_qty == D("2")  # most specific wins


def test_each_check_has_its_own_reason() -> None:
    assert len(set(DenyReason)) == len(DenyReason)
    assert {m.value for m in DenyReason} >= {
        "MAX_NOTIONAL", "VENUE_MIN_NOTIONAL", "VENUE_PRECISION", "MAX_POSITION_QTY",
        "MAX_POSITION_NOTIONAL", "MAX_GROSS_EXPOSURE", "MAX_CONCENTRATION", "BUYING_POWER",
        "MAX_LEVERAGE", "MAX_OPEN_ORDERS", "MAX_OPEN_POSITIONS", "RATE_LIMIT_STRATEGY",
        "RATE_LIMIT_TOTAL", "PRICE_COLLAR", "STALE_MARKET_DATA", "DAILY_LOSS", "MAX_DRAWDOWN",
        "DUPLICATE_INTENT",
    }  # fmt: skip


def test_stage_exposure_boundary() -> None:
    s = snap(equity=D("1000"), gross_exposure=D("20"))
    assert (
        c.check_stage_exposure(intent("0.2"), view(snapshot=s, stage_exposure_pct=D("4"))) is None
    )
    d = c.check_stage_exposure(intent("0.21"), view(snapshot=s, stage_exposure_pct=D("4")))
    assert d is not None and d.reason is DenyReason.STAGE_EXPOSURE
    assert c.check_stage_exposure(intent("100"), view(snapshot=s)) is None  # not enforced
