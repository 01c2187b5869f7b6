"""Modes (R8) and stages (R9) against a real nats-server: the mode gate refuses on failed
criteria and passes on met ones, emergency stop halts, stages step up and a breaker steps down."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec
import pytest

from tradebus_common import events as ev
from tradebus_common.config import BreakerConfig, Config, RiskConfig, StageConfig
from tradebus_common.errors import ErrorCode

from ..conftest import make_config
from ..support.bus import Collector, collect, publish_event, publish_raw
from ..support.stack import InProcessStack

D = Decimal


@pytest.fixture
def gate_config(nats_server) -> Config:
    return make_config(nats_server.url)


@pytest.fixture
async def gate(gate_config):
    s = InProcessStack(gate_config)
    yield s
    await s.stop()


def with_risk(cfg: Config, **risk: Any) -> Config:
    return msgspec.structs.replace(cfg, risk=RiskConfig(**risk))


async def trades(nc, pnls: list[str]) -> None:
    """Scripted round trips: entry (qty 1) then exit (qty 0) with the given realized P&L."""
    realized = D(0)
    for pnl in pnls:
        await publish_event(nc, position("1", realized))
        realized += D(pnl)
        await publish_event(nc, position("0", realized))


def position(qty: str, realized: Decimal) -> ev.PositionChanged:
    return ev.PositionChanged(
        venue="paper", symbol="BTC/USDT", strategy="demo", quantity=D(qty),
        avg_price=D("100"), realized_pnl=realized,
    )  # fmt: skip


async def test_mode_gate_refuses_on_failed_criteria_then_passes_on_met_ones(gate, nc):
    await gate.start("risk-gate")
    modes = await collect(nc, "trading.risk.mode")
    warnings = await collect(nc, "trading.alert.warning.>")
    await publish_raw(nc, "trading.control.mode", {"target": "live-minimal", "operator": "ops"})
    [refused] = await modes.wait_for(lambda e: isinstance(e, ev.ModeChangeRefused))
    assert refused.current is ev.TradingMode.PAPER
    assert [f.split()[0] for f in refused.failed] == ["trades", "win", "sharpe"]
    await warnings.wait_for(lambda e: e.code is ev.AlertCode.MODE_REFUSED)

    await trades(nc, ["10"] * 6 + ["-2"] * 4)  # 60% wins, Sharpe 0.84, no drawdown
    # The monitor consumer books exits on its own: retry until the record is in.
    for attempt in range(50):
        await publish_raw(
            nc, "trading.control.mode",
            {"target": "live-minimal", "operator": "ops", "id": f"try-{attempt}"},
        )  # fmt: skip
        [answer] = await modes.wait_for(
            lambda e, a=attempt: e.causation_id == f"try-{a}", timeout=10
        )
        if isinstance(answer, ev.ModeChanged):
            break
    assert isinstance(answer, ev.ModeChanged), answer
    assert answer.previous is ev.TradingMode.PAPER and answer.mode is ev.TradingMode.LIVE_MINIMAL
    assert answer.criteria["trades"] == "10" and answer.criteria["win_rate_pct"] == "60.00"
    kv = await nc.jetstream().key_value("control")
    assert b'"live-minimal"' in (await kv.get("mode")).value


async def test_mode_moves_that_are_never_allowed_or_lack_an_operator(gate, nc):
    await gate.start("risk-gate")
    modes = await collect(nc, "trading.risk.mode")
    dead = await collect(nc, "trading.deadletter.>")
    await publish_raw(nc, "trading.control.mode", {"target": "live-scaled", "operator": "ops"})
    [refused] = await modes.wait_for(lambda e: isinstance(e, ev.ModeChangeRefused))
    assert refused.failed == ["paper -> live-scaled is not allowed"]
    await publish_raw(nc, "trading.control.mode", {"target": "live-minimal"})
    await publish_raw(nc, "trading.control.mode", {"target": "moon", "operator": "ops"})
    found = await dead.wait_for(lambda e: isinstance(e, ev.MessageDeadLettered), count=2)
    assert [d.reason for d in found] == [ErrorCode.OPERATOR_REQUIRED, ErrorCode.INVALID_COMMAND]


async def test_emergency_stop_mode_halts_and_flattens_without_an_operator(gate, nc):
    await gate.start("risk-gate")
    states = await collect(nc, "trading.risk.state")
    cancel = await collect(nc, "trading.control.cancel-all")
    critical = await collect(nc, "trading.alert.critical.>")
    await publish_raw(nc, "trading.control.mode", {"target": "emergency-stop", "reason": "venue"})
    [halted] = await states.wait_for(lambda e: e.state is ev.TradingState.HALTED)
    assert halted.scope == "global" and "emergency stop" in halted.reason
    [cmd] = await cancel.wait_for(lambda e: isinstance(e, ev.ControlCommand))
    assert cmd.flatten
    await critical.wait_for(lambda e: e.code is ev.AlertCode.MODE_CHANGED)


async def test_stage_steps_up_after_profitable_days_and_a_breaker_steps_it_down(
    gate, gate_config, nc
):
    cfg = with_risk(
        gate_config,
        stages=StageConfig(profitable_days_to_step_up=2),
        breakers=BreakerConfig(max_drawdown_pct=D("50")),
    )
    await gate.start("risk-gate", config=cfg)
    answers = Collector()  # stage changes and refusals (dead letters) in one place
    await nc.subscribe("trading.risk.stage", cb=answers.on_msg)
    await nc.subscribe("trading.deadletter.>", cb=answers.on_msg)

    async def step_up(cmd_id: str) -> Any:
        body = {"target": "up", "operator": "ops", "id": cmd_id}
        await publish_raw(nc, "trading.control.stage", body, {"Nats-Msg-Id": cmd_id})
        [got] = await answers.wait_for(lambda e: _answers(e, cmd_id))
        return got

    refused = await step_up("up-first")
    assert isinstance(refused, ev.MessageDeadLettered) and "profitable days" in refused.error

    for day, pnl in (("2099-01-01", "5"), ("2099-01-02", "7"), ("2099-01-03", "1")):
        await publish_event(nc, ev.LedgerSnapshot(trading_day=day, daily_pnl=D(pnl)))
    for attempt in range(50):  # until the monitor consumer has booked the days
        got = await step_up(f"up-{attempt}")
        if isinstance(got, ev.RiskStageChanged):
            break
    assert isinstance(got, ev.RiskStageChanged)
    assert (got.stage, got.previous) == (1, 0)
    assert got.risk_per_trade_pct == D("0.25") and got.max_exposure_pct == D("4")

    await publish_event(nc, ev.LedgerSnapshot(drawdown_pct=D("60")))
    [down] = await answers.wait_for(lambda e: getattr(e, "operator", "") == "breaker:drawdown")
    assert (down.stage, down.previous) == (0, 1)


def _answers(e: Any, cmd_id: str) -> bool:
    if isinstance(e, ev.MessageDeadLettered):
        return e.headers.get("Nats-Msg-Id") == cmd_id
    return isinstance(e, ev.RiskStageChanged) and e.causation_id == cmd_id
