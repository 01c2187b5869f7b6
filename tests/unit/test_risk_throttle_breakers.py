"""Throttle with an injected clock, breaker trip rules and scopes, at their boundaries."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tradebus_common.config import BreakerConfig, Config, StrategyConfig, VenueConfig
from tradebus_common.errors import ErrorCode, PermanentError
from tradebus_common.events import LedgerSnapshot, ReconMismatch, ReconReport
from tradebus_risk_gate.breakers import (
    daily_loss_tripped,
    drawdown_tripped,
    heartbeat_lost,
    recon_tripped,
)
from tradebus_risk_gate.scopes import GLOBAL, Scope, parse_scope
from tradebus_risk_gate.throttle import RateWindow

D = Decimal


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_rate_window_counts_approvals_and_forgets_them_after_the_window() -> None:
    clock = FakeClock()
    rate = RateWindow(1.0, clock)
    for _ in range(3):
        rate.record("a")
    rate.record("b")
    assert rate.counts("a") == (3, 4)
    clock.now += 0.999
    assert rate.counts("a") == (3, 4)
    clock.now += 0.001  # exactly one window later: the old approvals are out
    assert rate.counts("a") == (0, 0)


def test_daily_loss_breaker_boundary() -> None:
    cfg = BreakerConfig(daily_loss_limit=D("100"))
    assert daily_loss_tripped(LedgerSnapshot(daily_pnl=D("-100")), cfg) is None
    assert daily_loss_tripped(LedgerSnapshot(daily_pnl=D("-100.01")), cfg)
    assert daily_loss_tripped(LedgerSnapshot(daily_pnl=D("-1e9")), BreakerConfig()) is None


def test_drawdown_breaker_boundary() -> None:
    cfg = BreakerConfig(max_drawdown_pct=D("10"))
    assert drawdown_tripped(LedgerSnapshot(drawdown_pct=D("10")), cfg) is None
    assert drawdown_tripped(LedgerSnapshot(drawdown_pct=D("10.01")), cfg)


def test_recon_drift_breaker_boundary() -> None:
    cfg = BreakerConfig(recon_drift_mismatches=2)
    one = ReconMismatch(venue="paper", symbol="X", ledger_quantity=D(1), venue_quantity=D(0))
    assert recon_tripped(ReconReport(venue="paper", clean=False, mismatches=[one]), cfg) is None
    assert recon_tripped(ReconReport(venue="paper", clean=False, mismatches=[one, one]), cfg)


def test_heartbeat_lost_boundary() -> None:
    assert not heartbeat_lost(100.0, 0.0, 115.0, 15.0)
    assert heartbeat_lost(100.0, 0.0, 115.001, 15.0)
    assert heartbeat_lost(None, 100.0, 115.001, 15.0)  # never seen since our start


CFG = Config(
    venues={"paper": VenueConfig(symbols=["BTC/USDT"])},
    strategies={"demo": StrategyConfig()},
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("", GLOBAL),
        ("global", GLOBAL),
        ("all", GLOBAL),
        ("strategy:demo", Scope("strategy", "demo")),
        ("symbol:BTC/USDT", Scope("symbol", "BTC/USDT")),
        ("venue:paper", Scope("venue", "paper")),
    ],
)
def test_scopes_parse(raw: str, expected: Scope) -> None:
    assert parse_scope(raw, CFG) == expected


@pytest.mark.parametrize(
    "raw", ["planet:mars", "strategy:nope", "symbol:DOGE/USDT", "strategy:", "x" * 10000, "venue"]
)
def test_unknown_or_bad_scopes_are_refused(raw: str) -> None:
    with pytest.raises(PermanentError) as e:
        parse_scope(raw, CFG)
    assert e.value.code is ErrorCode.INVALID_COMMAND


def test_scope_keys_are_valid_kv_keys() -> None:
    assert Scope("symbol", "BTC/USDT").key == "state.symbol.BTC-USDT"
    assert GLOBAL.key == "state.global"
