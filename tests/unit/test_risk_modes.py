"""Mode validation (R8) and stage rules (R9) at their boundaries."""

from __future__ import annotations

from decimal import Decimal

from tradebus_common.config import ModeConfig
from tradebus_risk_gate.modes import Record, profitable_days, sharpe, validate

D = Decimal
CFG = ModeConfig()  # >= 10 trades, win rate >= 45%, Sharpe >= 0.5, max drawdown <= 15%


def record(wins: int, losses: int, win: str = "10", loss: str = "-2", dd: str = "0") -> Record:
    pnls = [D(win)] * wins + [D(loss)] * losses
    return Record(trades=len(pnls), wins=wins, pnls=pnls, max_drawdown_pct=D(dd))


def test_a_good_record_passes_with_its_figures() -> None:
    failed, figures = validate(record(6, 4), CFG)
    assert failed == []
    assert figures["trades"] == "10" and figures["win_rate_pct"] == "60.00"


def test_trade_count_boundary() -> None:
    assert validate(record(6, 4), CFG)[0] == []
    failed, _ = validate(record(6, 3), CFG)
    assert failed == ["trades 9 < 10"]


def test_win_rate_boundary() -> None:
    # 9 wins of 20 is exactly 45%: passes; 9 of 21 is 42.86%: fails
    assert not any("win rate" in f for f in validate(record(9, 11, win="20"), CFG)[0])
    assert any("win rate" in f for f in validate(record(9, 12, win="20"), CFG)[0])


def test_sharpe_boundary() -> None:
    cfg = ModeConfig(min_trades=2, min_win_rate_pct=D(0))
    at = Record(trades=2, wins=2, pnls=[D("1"), D("3")])  # mean 2, sd 1.4142: 1.4142
    assert sharpe(at.pnls) == D("1.4142")
    assert validate(at, ModeConfig(min_trades=2, min_sharpe=D("1.4142")))[0] == []
    assert validate(at, ModeConfig(min_trades=2, min_sharpe=D("1.4143")))[0] != []
    assert sharpe([D(1)]) == 0 and validate(Record(), cfg)[0] != []


def test_drawdown_boundary() -> None:
    assert validate(record(6, 4, dd="15"), CFG)[0] == []
    assert validate(record(6, 4, dd="15.01"), CFG)[0] == ["max drawdown 15.01% > 15%"]


def test_an_empty_record_lists_every_failed_criterion() -> None:
    failed, _ = validate(Record(), CFG)
    assert [f.split()[0] for f in failed] == ["trades", "win", "sharpe"]


def test_profitable_days_count_completed_days_after_the_stage_change() -> None:
    days = {"2026-01-01": D(5), "2026-01-02": D(1), "2026-01-03": D(-1), "2026-01-04": D(9)}
    assert profitable_days(days, "", "2026-01-04") == 2  # today does not count yet
    assert profitable_days(days, "2026-01-01", "2026-01-05") == 2
    assert profitable_days(days, "2026-01-04", "2026-01-05") == 0
