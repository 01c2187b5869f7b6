"""Bad input never crashes a service and never vanishes: reason code, dead letter, alert."""

from __future__ import annotations

import pytest

from tradebus_common import events as ev
from tradebus_common.errors import ErrorCode

from ..support.bus import collect, publish_raw, set_price

GOOD = {
    "id": "ok",
    "strategy": "demo",
    "venue": "paper",
    "symbol": "BTC/USDT",
    "side": "buy",
    "quantity": "0.1",
}

CASES = [
    ("malformed", b'{"id": "x", "strategy": ', ErrorCode.MALFORMED_JSON),
    ("wrong-type", {**GOOD, "id": "wt", "quantity": True}, ErrorCode.SCHEMA_VIOLATION),
    ("negative", {**GOOD, "id": "neg", "quantity": "-1"}, ErrorCode.INVALID_QUANTITY),
    ("unknown-symbol", {**GOOD, "id": "sym", "symbol": "DOGE/USDT"}, ErrorCode.UNKNOWN_SYMBOL),
    ("missing-field", {"id": "mf", "strategy": "demo"}, ErrorCode.SCHEMA_VIOLATION),
    ("limit-no-price", {**GOOD, "id": "lp", "order_type": "limit"}, ErrorCode.INCONSISTENT_ORDER),
    ("disabled", {**GOOD, "id": "off", "strategy": "off"}, ErrorCode.STRATEGY_DISABLED),
    ("hostile-bytes", b"\xff\xfe\x00<script>" * 50, ErrorCode.MALFORMED_JSON),
]


@pytest.mark.parametrize(("name", "body", "reason"), CASES, ids=[c[0] for c in CASES])
async def test_bad_signal_is_dead_lettered_with_reason_and_alert(stack, nc, name, body, reason):
    await stack.start("signal")
    dead = await collect(nc, "trading.deadletter.>")
    alerts = await collect(nc, "trading.alert.>")
    await publish_raw(nc, "trading.signal.demo", body)
    [d] = await dead.wait_for(lambda e: isinstance(e, ev.MessageDeadLettered))
    assert d.reason is reason
    assert d.service == "signal" and d.subject == "trading.signal.demo" and d.stream_seq > 0
    [a] = await alerts.wait_for(lambda e: isinstance(e, ev.Alert))
    assert a.code is ev.AlertCode.DEAD_LETTER and a.context["reason"] == reason.value
    # ... and the service is still alive: a good signal right after still becomes an intent.
    intents = await collect(nc, "trading.intent.>")
    await publish_raw(nc, "trading.signal.demo", {**GOOD, "id": f"after-{name}"})
    await intents.wait_for(lambda e: e.correlation_id == f"after-{name}")


async def test_handler_failing_every_time_is_dead_lettered_after_max_deliver(stack, nc, config):
    """A fill the ledger can never store (a CHECK constraint violation) is retried, then
    dead-lettered with MAX_DELIVERIES; nothing is acked silently."""
    await stack.start("position-ledger")
    dead = await collect(nc, "trading.deadletter.>")
    bad = {
        "type": "order.filled",
        "id": "f-zero",
        "venue": "paper",
        "symbol": "BTC/USDT",
        "strategy": "demo",
        "client_order_id": "c",
        "trade_id": "t0",
        "side": "buy",
        "quantity": "1",
        "price": "0",
    }  # price 0 passes the schema, fails the table
    await publish_raw(nc, "trading.fill.paper.BTC-USDT", bad)
    [d] = await dead.wait_for(lambda e: isinstance(e, ev.MessageDeadLettered), timeout=20)
    assert d.reason is ErrorCode.MAX_DELIVERIES
    assert d.deliveries == config.bus.max_deliver


async def test_halt_body_json_resume_without_operator_is_refused(stack, nc):
    await stack.start("risk-gate")
    dead = await collect(nc, "trading.deadletter.>")
    await publish_raw(nc, "trading.control.resume", b"")
    [d] = await dead.wait_for(lambda e: isinstance(e, ev.MessageDeadLettered))
    assert d.reason is ErrorCode.OPERATOR_REQUIRED


async def test_unreadable_market_tick_does_not_break_the_gate(stack, nc):
    await stack.start("signal", "risk-gate")
    await publish_raw(nc, "md.paper.BTC-USDT", b"not json")
    denied = await collect(nc, "trading.order.denied.>")
    await publish_raw(nc, "trading.signal.demo", {**GOOD, "id": "after-bad-tick"})
    [d] = await denied.wait_for(lambda e: isinstance(e, ev.OrderDenied))
    assert d.reason is ev.DenyReason.NO_MARKET_PRICE
    await set_price(nc, "paper", "BTC/USDT", "100")
    approved = await collect(nc, "trading.order.approved.>")
    await publish_raw(nc, "trading.signal.demo", {**GOOD, "id": "after-good-tick"})
    await approved.wait_for(lambda e: e.correlation_id == "after-good-tick")
