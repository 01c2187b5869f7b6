"""A halted state survives kill -9 of a real risk-gate process: the restarted process comes
up HALTED and denies, and only an operator's resume lets orders through again."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from tradebus_common import events as ev

from ..support.bus import collect, publish_event, publish_raw, set_price
from ..support.procs import ServiceProcess, service_env, write_config

pytestmark = pytest.mark.e2e


def intent(iid: str) -> ev.OrderIntent:
    return ev.OrderIntent(
        id=iid,
        strategy="demo",
        venue="paper",
        symbol="BTC/USDT",
        side=ev.Side.BUY,
        quantity=Decimal("0.1"),
        order_type=ev.OrderType.MARKET,
    )


async def outcome(col, iid: str, timeout: float = 45.0):
    [out] = await col.wait_for(lambda e: getattr(e, "intent_id", None) == iid, timeout=timeout)
    return out


async def test_halted_state_survives_kill_minus_9_of_risk_gate(nats_server, nc, tmp_path: Path):
    env = service_env(nats_server.url, "", write_config(tmp_path / "tradebus.toml"))
    beats = await collect(nc, "$KV.health.>")
    proc = ServiceProcess("risk-gate", env, tmp_path).start()
    try:
        await beats.wait_for(lambda e: isinstance(e, ev.Heartbeat), timeout=45)
        await set_price(nc, "paper", "BTC/USDT", "100")
        outcomes = await collect(nc, "trading.order.>")
        states = await collect(nc, "trading.risk.state")
        await publish_event(nc, intent("before"))
        assert isinstance(await outcome(outcomes, "before"), ev.OrderApproved), proc.log_tail()

        await publish_raw(nc, "trading.control.halt", b"kill test")
        await states.wait_for(lambda e: e.state is ev.TradingState.HALTED)
        proc.kill9()

        await publish_event(nc, intent("while-dead"))  # waits in the stream for the restart
        proc = ServiceProcess("risk-gate", env, tmp_path).start()
        denied = await outcome(outcomes, "while-dead")
        assert isinstance(denied, ev.OrderDenied) and denied.reason is ev.DenyReason.HALTED

        await publish_raw(nc, "trading.control.resume", {"operator": "dana"})
        await states.wait_for(lambda e: e.state is ev.TradingState.ACTIVE)
        await publish_event(nc, intent("after-resume"))
        assert isinstance(await outcome(outcomes, "after-resume"), ev.OrderApproved)
    finally:
        proc.terminate()
