"""Halt from the `nats` CLI (plain text), denial with HALTED, resume, and the latch surviving
a risk-gate restart."""

from __future__ import annotations

from tradebus_common import events as ev

from ..support.bus import collect, publish_raw, set_price

SIG = {"strategy": "demo", "venue": "paper", "symbol": "BTC/USDT", "side": "buy", "quantity": "0.1"}


async def test_plain_text_halt_denies_then_resume_approves_and_latch_survives_restart(stack, nc):
    await stack.start("signal", "risk-gate")
    await set_price(nc, "paper", "BTC/USDT", "30000")
    states = await collect(nc, "trading.risk.state")
    outcomes = await collect(nc, "trading.order.>")
    alerts = await collect(nc, "trading.alert.critical.>")

    # Exactly what `nats pub trading.control.halt "fat finger"` sends: no headers, plain text.
    await publish_raw(nc, "trading.control.halt", b"fat finger")
    [halted] = await states.wait_for(lambda e: e.state is ev.TradingState.HALTED)
    assert halted.reason == "fat finger" and halted.previous is ev.TradingState.ACTIVE
    await alerts.wait_for(lambda e: e.code is ev.AlertCode.TRADING_HALTED)

    await publish_raw(nc, "trading.signal.demo", {**SIG, "id": "while-halted"})
    [denied] = await outcomes.wait_for(lambda e: e.correlation_id == "while-halted")
    assert isinstance(denied, ev.OrderDenied) and denied.reason is ev.DenyReason.HALTED

    # The latch is in KV: a restarted risk-gate is still halted.
    await stack.stop("risk-gate")
    await stack.start("risk-gate")
    await publish_raw(nc, "trading.signal.demo", {**SIG, "id": "after-restart"})
    [denied] = await outcomes.wait_for(lambda e: e.correlation_id == "after-restart")
    assert isinstance(denied, ev.OrderDenied) and denied.reason is ev.DenyReason.HALTED

    await publish_raw(nc, "trading.control.resume", {"operator": "alice", "reason": "checked"})
    [active] = await states.wait_for(
        lambda e: e.state is ev.TradingState.ACTIVE and e.operator == "alice"
    )
    assert active.previous is ev.TradingState.HALTED
    await publish_raw(nc, "trading.signal.demo", {**SIG, "id": "after-resume"})
    [ok] = await outcomes.wait_for(lambda e: e.correlation_id == "after-resume")
    assert isinstance(ok, ev.OrderApproved)


async def test_empty_halt_body_halts(stack, nc):
    await stack.start("risk-gate")
    states = await collect(nc, "trading.risk.state")
    await publish_raw(nc, "trading.control.halt", b"")
    [halted] = await states.wait_for(lambda e: e.state is ev.TradingState.HALTED)
    assert halted.reason == "halt (no reason given)"


async def test_redelivered_halt_publishes_one_state_change(stack, nc):
    """The same halt message id (a client retry) latches once: the stream deduplicates."""
    await stack.start("risk-gate")
    states = await collect(nc, "trading.risk.state")
    for _ in range(2):
        await publish_raw(
            nc,
            "trading.control.halt",
            {"reason": "r", "operator": "bob"},
            {"Nats-Msg-Id": "halt-once"},
        )
    await publish_raw(nc, "trading.control.halt", {"reason": "second", "operator": "bob"})
    await states.wait_for(lambda e: e.reason == "second")
    assert len(states.matching(lambda e: e.reason == "r")) == 1
