"""Protections and the latency breaker's rules, at their boundaries."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from tradebus_common.config import BreakerConfig, ProtectionConfig, RiskConfig
from tradebus_common.events import (
    DenyReason,
    LedgerSnapshot,
    OrderAccepted,
    OrderIntent,
    OrderSubmitted,
    OrderType,
    PositionView,
    Side,
    TradingState,
    TradingStateChanged,
)
from tradebus_risk_gate.breakers import LatencyTracker
from tradebus_risk_gate.checks import check_protection_locks
from tradebus_risk_gate.protections import (
    Exit,
    Lock,
    LockKind,
    is_exit,
    low_profit,
    stoploss_guard,
)
from tradebus_risk_gate.view import RiskView

D = Decimal


def test_is_exit_tells_exits_from_entries() -> None:
    assert not is_exit(D(0), D(1))  # an entry
    assert not is_exit(D(1), D(2))  # adding
    assert is_exit(D(2), D(1)) and is_exit(D(2), D(0)) and is_exit(D(-2), D(-1))
    assert is_exit(D(1), D(-1))  # a flip closes the long first


def exits(*pnls: str, at: float = 100.0) -> list[Exit]:
    return [Exit(event_id=str(i), at_s=at, pnl=D(p)) for i, p in enumerate(pnls)]


def test_stoploss_guard_boundary_and_window() -> None:
    cfg = ProtectionConfig(stoploss_guard_trades=2, stoploss_guard_window_s=60)
    assert not stoploss_guard(exits("-1", "5"), 100.0, cfg)
    assert stoploss_guard(exits("-1", "-1"), 100.0, cfg)
    assert stoploss_guard(exits("-1", "-1"), 160.0, cfg)  # exactly at the window's edge
    assert not stoploss_guard(exits("-1", "-1"), 160.001, cfg)
    assert not stoploss_guard(exits("-1", "-1"), 100.0, ProtectionConfig())  # off


def test_low_profit_boundary() -> None:
    cfg = ProtectionConfig(low_profit_threshold=D("1"), low_profit_window_s=60)
    assert low_profit(exits("0.5", "0.5"), 100.0, cfg) is None  # exactly at the threshold
    assert low_profit(exits("0.5", "0.49"), 100.0, cfg) == D("0.99")
    assert low_profit([], 100.0, cfg) is None
    assert low_profit(exits("-5"), 100.0, ProtectionConfig()) is None  # off


def intent(side: Side) -> OrderIntent:
    return OrderIntent(
        strategy="demo",
        venue="paper",
        symbol="BTC/USDT",
        side=side,
        quantity=D("1"),
        order_type=OrderType.MARKET,
    )


def test_a_lock_stops_entries_until_it_expires_and_never_exits() -> None:
    lock = Lock(kind=LockKind.COOLDOWN, target="BTC/USDT", reason="loss", until_s=200.0)
    long = LedgerSnapshot(
        positions=[PositionView(venue="paper", symbol="BTC/USDT", quantity=D("3"))]
    )
    base = {
        "limits": RiskConfig(),
        "states": (TradingStateChanged(state=TradingState.ACTIVE),),
        "locks": (lock,),
        "snapshot": long,
    }
    d = check_protection_locks(intent(Side.BUY), RiskView(now_s=199.9, **base))
    assert d is not None and d.reason is DenyReason.SYMBOL_COOLDOWN
    assert check_protection_locks(intent(Side.SELL), RiskView(now_s=199.9, **base)) is None
    assert check_protection_locks(intent(Side.BUY), RiskView(now_s=200.0, **base)) is None


def test_latency_breaker_needs_n_slow_round_trips_in_a_row() -> None:
    tracker = LatencyTracker(BreakerConfig(venue_latency_ms=2000, venue_latency_consecutive=2))

    def round_trip(cid: str, ms: int) -> str | None:
        sub = OrderSubmitted(
            client_order_id=cid,
            venue="v",
            symbol="s",
            side=Side.BUY,
            quantity=D(1),
            order_type=OrderType.MARKET,
        )
        acc = OrderAccepted(client_order_id=cid, venue="v", symbol="s")
        acc.ts = sub.ts + timedelta(milliseconds=ms)
        tracker.submitted(sub)
        return tracker.accepted(acc)

    assert round_trip("a", 2001) is None
    assert round_trip("b", 2000) is None  # at the threshold: not slow, resets the run
    assert round_trip("c", 2001) is None
    assert round_trip("d", 2500) is not None
    off = LatencyTracker(BreakerConfig())
    tracker = off
    assert round_trip("e", 99999) is None
