"""risk-gate against a real nats-server: scoped halt/reduce/resume, bad control input, fail
closed, one outcome per intent, the rate limit under a flood, open orders and the breakers."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec
import pytest

from tradebus_common import events as ev
from tradebus_common.codec import encode
from tradebus_common.config import BreakerConfig, Config, RiskConfig
from tradebus_common.errors import ErrorCode
from tradebus_common.ids import client_order_id

from ..conftest import make_config
from ..support.bus import collect, publish_event, publish_raw, set_price
from ..support.stack import InProcessStack

D = Decimal


def with_risk(cfg: Config, **risk: Any) -> Config:
    return msgspec.structs.replace(cfg, risk=RiskConfig(**risk))


@pytest.fixture
def gate_config(nats_server) -> Config:
    return make_config(nats_server.url)


@pytest.fixture
async def gate(gate_config):
    s = InProcessStack(gate_config)
    yield s
    await s.stop()


def intent(iid: str, qty: str = "0.1", side: str = "buy", **kw: Any) -> ev.OrderIntent:
    fields: dict[str, Any] = {
        "strategy": "demo",
        "venue": "paper",
        "symbol": "BTC/USDT",
        "order_type": ev.OrderType.MARKET,
    }
    fields.update(kw)
    return ev.OrderIntent(id=iid, side=ev.Side(side), quantity=D(qty), **fields)


async def outcome_of(col, iid: str) -> Any:
    [out] = await col.wait_for(lambda e: getattr(e, "intent_id", None) == iid)
    return out


async def test_json_halt_with_scope_halts_only_that_scope_and_asks_to_cancel_all(gate, nc):
    await gate.start("risk-gate")
    await set_price(nc, "paper", "BTC/USDT", "100")
    await set_price(nc, "paper", "ETH/USDT", "10")
    states = await collect(nc, "trading.risk.state")
    cancel = await collect(nc, "trading.control.cancel-all")
    critical = await collect(nc, "trading.alert.critical.>")
    outcomes = await collect(nc, "trading.order.>")
    body = {"reason": "bad fills", "operator": "ann", "scope": "symbol:BTC/USDT", "flatten": True}
    await publish_raw(nc, "trading.control.halt", body)
    [halted] = await states.wait_for(lambda e: e.state is ev.TradingState.HALTED)
    assert (halted.scope, halted.operator, halted.reason) == ("symbol:BTC/USDT", "ann", "bad fills")
    [cmd] = await cancel.wait_for(lambda e: isinstance(e, ev.ControlCommand))
    assert cmd.action is ev.ControlAction.CANCEL_ALL and cmd.flatten and cmd.scope == halted.scope
    await critical.wait_for(lambda e: e.code is ev.AlertCode.TRADING_HALTED)

    await publish_event(nc, intent("btc-1"))
    await publish_event(nc, intent("eth-1", symbol="ETH/USDT"))
    assert (await outcome_of(outcomes, "btc-1")).reason is ev.DenyReason.HALTED
    assert isinstance(await outcome_of(outcomes, "eth-1"), ev.OrderApproved)

    # Resuming that scope needs an operator too, and then BTC trades again.
    await publish_raw(nc, "trading.control.resume", {"operator": "ann", "scope": "symbol:BTC/USDT"})
    await states.wait_for(lambda e: e.state is ev.TradingState.ACTIVE and e.scope == halted.scope)
    await publish_event(nc, intent("btc-2"))
    assert isinstance(await outcome_of(outcomes, "btc-2"), ev.OrderApproved)


async def test_malformed_json_halt_still_halts_globally(gate, nc):
    await gate.start("risk-gate")
    states = await collect(nc, "trading.risk.state")
    await publish_raw(nc, "trading.control.halt", b'{"reason": "oops", scope:')
    [halted] = await states.wait_for(lambda e: e.state is ev.TradingState.HALTED)
    assert halted.scope == "global" and "unparsed halt body" in halted.reason


@pytest.mark.parametrize(
    ("subject", "body", "code"),
    [
        ("trading.control.resume", b"{not json", ErrorCode.INVALID_COMMAND),
        ("trading.control.reduce", b"{not json", ErrorCode.INVALID_COMMAND),
        ("trading.control.reduce", b"", ErrorCode.OPERATOR_REQUIRED),
        ("trading.control.resume", {"operator": "x" * 5000}, ErrorCode.INVALID_COMMAND),
        ("trading.control.resume", {"operator": "bob", "scope": "planet:mars"}, None),
        ("trading.control.reduce", {"operator": "bob", "scope": "strategy:nope"}, None),
        ("trading.control.halt", {"reason": "r", "scope": "symbol:" + "A" * 100000}, None),
        ("trading.control.halt", {"reason": "r", "scope": "venue:nowhere"}, None),
    ],
)
async def test_bad_control_input_alerts_and_changes_nothing(gate, nc, subject, body, code):
    await gate.start("risk-gate")
    dead = await collect(nc, "trading.deadletter.>")
    alerts = await collect(nc, "trading.alert.>")
    states = await collect(nc, "trading.risk.state")
    kv = await nc.jetstream().key_value("control")
    before = (await kv.get("state.global")).value
    await publish_raw(nc, subject, body)
    [d] = await dead.wait_for(lambda e: isinstance(e, ev.MessageDeadLettered))
    assert d.reason is (code or ErrorCode.INVALID_COMMAND)
    await alerts.wait_for(lambda e: e.code is ev.AlertCode.DEAD_LETTER)
    # The consumer handles in order: once this is settled, nothing else came of the bad one.
    await publish_raw(nc, "trading.control.reduce", {"operator": "probe", "scope": "venue:paper"})
    await states.wait_for(lambda e: e.operator == "probe")
    assert [e.operator for e in states.events] == ["probe"]
    assert (await kv.get("state.global")).value == before


async def test_reduce_approves_only_shrinking_orders(gate, nc):
    await gate.start("risk-gate")
    await set_price(nc, "paper", "BTC/USDT", "100")
    states = await collect(nc, "trading.risk.state")
    warnings = await collect(nc, "trading.alert.warning.>")
    outcomes = await collect(nc, "trading.order.>")
    position = ev.PositionView(venue="paper", symbol="BTC/USDT", strategy="demo", quantity=D("2"))
    await publish_event(nc, ev.LedgerSnapshot(equity=D("1000"), positions=[position]))
    await publish_raw(nc, "trading.control.reduce", {"operator": "ops", "reason": "wind down"})
    [reducing] = await states.wait_for(lambda e: e.state is ev.TradingState.REDUCING)
    assert reducing.previous is ev.TradingState.ACTIVE
    await warnings.wait_for(lambda e: e.code is ev.AlertCode.TRADING_REDUCING)

    await publish_event(nc, intent("grow", "0.1", "buy"))
    await publish_event(nc, intent("flip", "2.5", "sell"))
    await publish_event(nc, intent("shrink", "1.5", "sell"))
    await publish_event(nc, intent("flip-with-pending", "1", "sell"))  # 2 - 1.5 open = 0.5 left
    assert (await outcome_of(outcomes, "grow")).reason is ev.DenyReason.REDUCING_ONLY
    assert (await outcome_of(outcomes, "flip")).reason is ev.DenyReason.REDUCING_ONLY
    assert isinstance(await outcome_of(outcomes, "shrink"), ev.OrderApproved)
    assert (await outcome_of(outcomes, "flip-with-pending")).reason is ev.DenyReason.REDUCING_ONLY


async def test_nothing_is_approved_before_the_latched_state_is_read(gate, nc):
    """Intents queued before the gate starts, with HALTED already latched: all denied."""
    js = nc.jetstream()
    await gate.start("risk-gate")  # creates the topology and latches ACTIVE
    await gate.stop("risk-gate")
    kv = await js.key_value("control")
    halted = ev.TradingStateChanged(state=ev.TradingState.HALTED, reason="night", operator="ops")
    await kv.put("state.global", encode(halted))
    await set_price(nc, "paper", "BTC/USDT", "100")
    outcomes = await collect(nc, "trading.order.>")
    for i in range(5):
        await publish_event(nc, intent(f"queued-{i}"))
    await gate.start("risk-gate")
    found = await outcomes.wait_for(lambda e: isinstance(e, ev.OrderDenied), count=5)
    assert {e.reason for e in found} == {ev.DenyReason.HALTED}
    assert not outcomes.matching(lambda e: isinstance(e, ev.OrderApproved))


async def test_a_backlog_is_judged_in_order_with_a_halt_in_the_middle(gate, gate_config, nc):
    """Queued before the gate starts, so it fetches them as one batch: intents before the
    halt are approved, those after it denied; a duplicate id inside the batch gets one
    outcome; the open-order limit counts the approvals made earlier in the same batch."""
    await gate.start("risk-gate")
    await gate.stop("risk-gate")
    await set_price(nc, "paper", "BTC/USDT", "100")
    outcomes = await collect(nc, "trading.order.>")
    for i in range(4):
        await publish_event(nc, intent(f"pre-{i}"))
    await publish_raw(nc, "trading.intent.demo", encode(intent("pre-0")), {"Nats-Msg-Id": "again"})
    await publish_raw(nc, "trading.control.halt", b"mid-batch halt")
    for i in range(3):
        await publish_event(nc, intent(f"post-{i}"))
    await gate.start("risk-gate", config=with_risk(gate_config, max_open_orders=3))
    found = await outcomes.wait_for(lambda e: hasattr(e, "intent_id"), count=7)
    by_id = {e.intent_id: e for e in found}
    assert [type(by_id[f"pre-{i}"]) for i in range(4)] == [ev.OrderApproved] * 3 + [ev.OrderDenied]
    assert by_id["pre-3"].reason is ev.DenyReason.MAX_OPEN_ORDERS
    assert {by_id[f"post-{i}"].reason for i in range(3)} == {ev.DenyReason.HALTED}
    assert len([e for e in found if e.intent_id == "pre-0"]) == 1
    book = await nc.jetstream().key_value("risk_orders")
    assert len(await book.keys()) == 3  # the approvals are durable in the book


async def test_unreadable_state_fails_closed(gate, nc):
    await gate.start("risk-gate")
    await set_price(nc, "paper", "BTC/USDT", "100")
    kv = await nc.jetstream().key_value("control")
    await kv.put("state.symbol.BTC-USDT", b"garbage")
    outcomes = await collect(nc, "trading.order.>")
    await publish_event(nc, intent("unreadable"))
    assert (await outcome_of(outcomes, "unreadable")).reason is ev.DenyReason.STATE_UNKNOWN


async def test_duplicate_intent_gets_one_outcome_across_restarts(gate, nc):
    await gate.start("risk-gate")
    await set_price(nc, "paper", "BTC/USDT", "100")
    outcomes = await collect(nc, "trading.order.>")
    same = intent("dup-1")
    # Different Nats-Msg-Ids, so the stream keeps both copies: the gate must dedup.
    await publish_event(nc, same)
    await outcome_of(outcomes, "dup-1")
    await gate.stop("risk-gate")
    await publish_raw(nc, "trading.intent.demo", encode(same), {"Nats-Msg-Id": "copy-2"})
    await publish_event(nc, intent("marker"))
    await gate.start("risk-gate")
    await outcome_of(outcomes, "marker")  # processed after the copy (in order)
    assert len(outcomes.matching(lambda e: getattr(e, "intent_id", "") == "dup-1")) == 1


async def test_flood_over_the_rate_limit_is_denied_never_queued(gate, gate_config, nc):
    cfg = with_risk(gate_config, max_orders_per_window_per_strategy=5, rate_window_s=600.0)
    await gate.start("risk-gate", config=cfg)
    await set_price(nc, "paper", "BTC/USDT", "100")
    outcomes = await collect(nc, "trading.order.>")
    for i in range(30):
        await publish_event(nc, intent(f"flood-{i}"))
    found = await outcomes.wait_for(lambda e: "flood" in getattr(e, "intent_id", ""), count=30)
    approved = [e.intent_id for e in found if isinstance(e, ev.OrderApproved)]
    assert approved == [f"flood-{i}" for i in range(5)]
    denials = [e for e in found if isinstance(e, ev.OrderDenied)]
    assert len(denials) == 25
    assert all(d.reason is ev.DenyReason.RATE_LIMIT_STRATEGY for d in denials)
    assert denials[0].check == "rate_limit_strategy" and denials[0].limit == 5


async def test_open_orders_are_counted_until_terminal_and_survive_a_restart(gate, gate_config, nc):
    await gate.start("risk-gate", config=with_risk(gate_config, max_open_orders=2))
    await set_price(nc, "paper", "BTC/USDT", "100")
    outcomes = await collect(nc, "trading.order.>")
    for i in range(3):
        await publish_event(nc, intent(f"oo-{i}"))
    d = await outcome_of(outcomes, "oo-2")
    assert d.reason is ev.DenyReason.MAX_OPEN_ORDERS and (d.limit, d.current) == (2, 3)
    assert d.breach_pct == D("50.00")

    await gate.stop("risk-gate")
    await gate.start("risk-gate", config=with_risk(gate_config, max_open_orders=2))
    await publish_event(nc, intent("oo-3"))
    assert (await outcome_of(outcomes, "oo-3")).reason is ev.DenyReason.MAX_OPEN_ORDERS

    cid = client_order_id("oo-0", 0)
    await publish_event(nc, ev.OrderCanceled(client_order_id=cid, venue="paper", symbol="BTC/USDT"))
    fill = ev.Fill(
        venue="paper", symbol="BTC/USDT", strategy="demo", client_order_id=client_order_id("oo-1"),
        trade_id="t1", side=ev.Side.BUY, quantity=D("0.1"), price=D("100"),
    )  # fmt: skip
    await publish_event(nc, fill)
    await publish_event(nc, fill)  # a redelivered fill counts once

    async def approved_after_terminal() -> None:
        for n in range(100):
            await publish_event(nc, intent(f"retry-{n}"))
            if isinstance(await outcome_of(outcomes, f"retry-{n}"), ev.OrderApproved):
                return
        raise AssertionError("open-order slots were never freed")

    await approved_after_terminal()


# --- breakers ---------------------------------------------------------------------------


def breaker_config(base: Config, **kw: Any) -> Config:
    return with_risk(base, breakers=BreakerConfig(**kw))


async def _tripped(nc, name: str, scenario) -> ev.TradingStateChanged:
    states = await collect(nc, "trading.risk.state")
    alerts = await collect(nc, "trading.alert.critical.>")
    await scenario()
    [halted] = await states.wait_for(lambda e: e.state is ev.TradingState.HALTED)
    assert halted.operator == f"breaker:{name}" and halted.scope == "global"
    await alerts.wait_for(lambda e: e.code is ev.AlertCode.BREAKER_TRIPPED)
    kv = await nc.jetstream().key_value("control")
    assert (await kv.get(f"breaker.{name}")).value
    return halted


async def test_daily_loss_breaker_trips_from_a_snapshot(gate, gate_config, nc):
    await gate.start("risk-gate", config=breaker_config(gate_config, daily_loss_limit=D("100")))

    async def scenario() -> None:
        await publish_event(nc, ev.LedgerSnapshot(daily_pnl=D("-100")))  # at the limit: fine
        await publish_event(nc, ev.LedgerSnapshot(daily_pnl=D("-100.01")))

    halted = await _tripped(nc, "daily_loss", scenario)
    assert "100.01" in halted.reason


async def test_drawdown_breaker_trips_from_a_snapshot(gate, gate_config, nc):
    await gate.start("risk-gate", config=breaker_config(gate_config, max_drawdown_pct=D("10")))

    async def scenario() -> None:
        await publish_event(nc, ev.LedgerSnapshot(drawdown_pct=D("10.5")))

    await _tripped(nc, "drawdown", scenario)


async def test_consecutive_rejects_breaker_resets_on_acceptance(gate, gate_config, nc):
    await gate.start("risk-gate", config=breaker_config(gate_config, consecutive_rejects=3))

    def rejected(n: int) -> ev.OrderRejected:
        return ev.OrderRejected(client_order_id=f"c{n}", venue="paper", symbol="BTC/USDT")

    async def scenario() -> None:
        for n in range(2):
            await publish_event(nc, rejected(n))
        await publish_event(nc, ev.OrderAccepted(client_order_id="ok", venue="paper", symbol="X"))
        for n in range(2, 5):
            await publish_event(nc, rejected(n))

    halted = await _tripped(nc, "consecutive_rejects", scenario)
    assert "3 consecutive" in halted.reason


async def test_reconciliation_drift_breaker(gate, gate_config, nc):
    await gate.start("risk-gate", config=breaker_config(gate_config, recon_drift_mismatches=1))
    mismatch = ev.ReconMismatch(
        venue="paper", symbol="BTC/USDT", ledger_quantity=D("1"), venue_quantity=D("0")
    )

    async def scenario() -> None:
        await publish_event(nc, ev.ReconReport(venue="paper", clean=True))
        await publish_event(nc, ev.ReconReport(venue="paper", clean=False, mismatches=[mismatch]))

    await _tripped(nc, "recon_drift", scenario)


async def test_lost_heartbeat_breaker_then_auto_resume_after_cooldown(gate, gate_config, nc):
    cfg = breaker_config(
        gate_config,
        heartbeat_services=["position-ledger"],
        heartbeat_timeout_s=1.0,
        heartbeat_check_interval_s=0.2,
        cooldown_s=0.5,
        auto_resume=True,
    )
    states = await collect(nc, "trading.risk.state")

    async def scenario() -> None:
        await gate.start("risk-gate", config=cfg)  # no position-ledger ever heartbeats

    await _tripped(nc, "heartbeat_position-ledger", scenario)
    # Still silent: no auto-resume. Once it beats again, the cooldown lets the gate resume.
    health = await nc.jetstream().key_value("health")
    beat = ev.Heartbeat(
        service="position-ledger", instance="back", version="t",
        started_at=ev.utcnow(), uptime_s=1.0,
    )  # fmt: skip
    assert not states.matching(lambda e: e.operator == "auto-resume")
    await health.put("position-ledger.back", encode(beat))
    [resumed] = await states.wait_for(lambda e: e.operator == "auto-resume")
    assert resumed.state is ev.TradingState.ACTIVE and resumed.previous is ev.TradingState.HALTED


async def test_correlation_breaker_trips_on_open_positions_moving_together(gate, gate_config, nc):
    from datetime import timedelta

    cfg = breaker_config(
        gate_config,
        correlation_window=5,
        correlation_sample_s=1.0,
        heartbeat_check_interval_s=0.05,
    )
    await gate.start("risk-gate", config=cfg)
    path = ["100", "101", "100.5", "102", "101", "103"]
    t0 = ev.utcnow() - timedelta(seconds=60)

    async def scenario() -> None:
        long_both = [
            ev.PositionView(venue="paper", symbol="BTC/USDT", quantity=D("1")),
            ev.PositionView(venue="paper", symbol="ETH/USDT", quantity=D("3")),
        ]
        await publish_event(nc, ev.LedgerSnapshot(positions=long_both))
        for i, price in enumerate(path):  # ETH moves exactly like BTC, one bucket per second
            ts = t0 + timedelta(seconds=i)
            for symbol, scale in (("BTC/USDT", 1), ("ETH/USDT", 30)):
                tick = ev.MarketTick(venue="paper", symbol=symbol, price=D(price) * scale, ts=ts)
                await publish_event(nc, tick)

    halted = await _tripped(nc, "correlation", scenario)
    assert "paper/BTC/USDT and paper/ETH/USDT" in halted.reason and "over 0.7" in halted.reason


async def test_venue_errors_breaker_trips_when_a_venue_breaker_opens(gate, gate_config, nc):
    await gate.start("risk-gate", config=breaker_config(gate_config, venue_errors=True))

    async def scenario() -> None:
        half = ev.VenueBreakerChanged(
            venue="binance", state=ev.VenueBreakerState.HALF_OPEN,
            previous=ev.VenueBreakerState.OPEN,
        )  # fmt: skip
        await publish_event(nc, half)  # not an opening: nothing
        opened = ev.VenueBreakerChanged(
            venue="binance", state=ev.VenueBreakerState.OPEN,
            previous=ev.VenueBreakerState.CLOSED, failures=5, reason="503 x5",
        )  # fmt: skip
        await publish_event(nc, opened)

    halted = await _tripped(nc, "venue_errors", scenario)
    assert "binance: 5 consecutive errors (503 x5)" in halted.reason


async def test_breaker_replayed_from_old_history_does_not_trip(gate, gate_config, nc):
    from datetime import timedelta

    old = ev.LedgerSnapshot(daily_pnl=D("-1000"))
    old.ts = old.ts - timedelta(hours=1)
    await gate.start("risk-gate", config=breaker_config(gate_config, daily_loss_limit=D("1")))
    states = await collect(nc, "trading.risk.state")
    await publish_event(nc, old)
    await publish_raw(nc, "trading.control.reduce", {"operator": "probe", "scope": "venue:paper"})
    await states.wait_for(lambda e: e.operator == "probe")
    kv = await nc.jetstream().key_value("control")
    state = (await kv.get("state.global")).value
    assert b'"ACTIVE"' in state


async def test_manual_resume_unlatches_breakers(gate, gate_config, nc):
    await gate.start("risk-gate", config=breaker_config(gate_config, max_drawdown_pct=D("1")))

    async def scenario() -> None:
        await publish_event(nc, ev.LedgerSnapshot(drawdown_pct=D("2")))

    await _tripped(nc, "drawdown", scenario)
    states = await collect(nc, "trading.risk.state")
    await publish_raw(nc, "trading.control.resume", {"operator": "carol"})
    await states.wait_for(lambda e: e.state is ev.TradingState.ACTIVE)
    kv = await nc.jetstream().key_value("control")
    from nats.js.errors import KeyNotFoundError

    with pytest.raises(KeyNotFoundError):
        await kv.get("breaker.drawdown")


async def test_venue_latency_breaker_trips_from_order_events(gate, gate_config, nc):
    from datetime import timedelta

    cfg = breaker_config(gate_config, venue_latency_ms=2000, venue_latency_consecutive=2)
    await gate.start("risk-gate", config=cfg)

    async def scenario() -> None:
        for n in range(2):
            sent = ev.OrderSubmitted(
                client_order_id=f"slow{n}", venue="paper", symbol="BTC/USDT",
                side=ev.Side.BUY, quantity=D("1"), order_type=ev.OrderType.MARKET,
            )  # fmt: skip
            sent.ts = sent.ts - timedelta(seconds=3)
            await publish_event(nc, sent)
            await publish_event(
                nc, ev.OrderAccepted(client_order_id=f"slow{n}", venue="paper", symbol="BTC/USDT")
            )

    await _tripped(nc, "venue_latency", scenario)


# --- protections ------------------------------------------------------------------------


def position(qty: str, realized: str, symbol: str = "BTC/USDT") -> ev.PositionChanged:
    return ev.PositionChanged(
        venue="paper", symbol=symbol, strategy="demo", quantity=D(qty),
        avg_price=D("100"), realized_pnl=D(realized),
    )  # fmt: skip


def with_protections(base: Config, **kw: Any) -> Config:
    from tradebus_common.config import ProtectionConfig

    return with_risk(base, protections=ProtectionConfig(**kw))


async def test_cooldown_after_a_losing_exit_locks_that_symbol_and_status_lists_it(
    gate, gate_config, nc
):
    from tradebus_common.cli.client import _locks_section

    await gate.start("risk-gate", config=with_protections(gate_config, cooldown_after_loss_s=600))
    await set_price(nc, "paper", "BTC/USDT", "100")
    await set_price(nc, "paper", "ETH/USDT", "10")
    warnings = await collect(nc, "trading.alert.warning.>")
    outcomes = await collect(nc, "trading.order.>")
    await publish_event(nc, position("2", "-0.2"))  # entry (fees only): no lock
    await publish_event(nc, position("1", "5"))  # a winning exit: no lock
    await publish_event(nc, position("0", "-3"))  # a losing exit: lock BTC
    [alert] = await warnings.wait_for(lambda e: e.code is ev.AlertCode.PROTECTION_LOCKED)
    assert "cooldown" in alert.message and "BTC/USDT" in alert.message
    await publish_event(nc, intent("btc-entry"))
    await publish_event(nc, intent("eth-entry", symbol="ETH/USDT"))
    assert (await outcome_of(outcomes, "btc-entry")).reason is ev.DenyReason.SYMBOL_COOLDOWN
    assert isinstance(await outcome_of(outcomes, "eth-entry"), ev.OrderApproved)
    assert len(warnings.matching(lambda e: e.code is ev.AlertCode.PROTECTION_LOCKED)) == 1

    locks = (await _locks_section(nc))["active"]
    assert [(r["kind"], r["target"]) for r in locks] == [("cooldown", "BTC/USDT")]

    # Locks are in KV: a restarted gate still denies the entry.
    await gate.stop("risk-gate")
    await gate.start("risk-gate", config=with_protections(gate_config, cooldown_after_loss_s=600))
    await publish_event(nc, intent("btc-after-restart"))
    d = await outcome_of(outcomes, "btc-after-restart")
    assert d.reason is ev.DenyReason.SYMBOL_COOLDOWN


async def test_stoploss_guard_locks_all_entries_after_n_losing_exits(gate, gate_config, nc):
    cfg = with_protections(gate_config, stoploss_guard_trades=2, stoploss_guard_lock_s=600)
    await gate.start("risk-gate", config=cfg)
    await set_price(nc, "paper", "ETH/USDT", "10")
    warnings = await collect(nc, "trading.alert.warning.>")
    outcomes = await collect(nc, "trading.order.>")
    await publish_event(nc, position("1", "0"))
    await publish_event(nc, position("0", "-1"))
    await publish_event(nc, position("1", "0", symbol="ETH/USDT"))
    await publish_event(nc, position("0", "-1", symbol="ETH/USDT"))
    await warnings.wait_for(lambda e: "stoploss_guard" in e.message)
    await publish_event(nc, intent("any-entry", symbol="ETH/USDT"))
    assert (await outcome_of(outcomes, "any-entry")).reason is ev.DenyReason.STOPLOSS_GUARD


async def test_low_profit_lock(gate, gate_config, nc):
    cfg = with_protections(gate_config, low_profit_threshold=D("10"))
    await gate.start("risk-gate", config=cfg)
    await set_price(nc, "paper", "BTC/USDT", "100")
    outcomes = await collect(nc, "trading.order.>")
    warnings = await collect(nc, "trading.alert.warning.>")
    await publish_event(nc, position("2", "0"))
    await publish_event(nc, position("1", "4"))  # +4 realized over the window: under 10
    await warnings.wait_for(lambda e: "low_profit" in e.message)
    await publish_event(nc, intent("low-profit-entry"))
    assert (await outcome_of(outcomes, "low-profit-entry")).reason is ev.DenyReason.LOW_PROFIT_LOCK


async def test_status_locks_list_breakers_and_scoped_states(gate, gate_config, nc):
    from tradebus_common.cli.client import _locks_section

    await gate.start("risk-gate", config=breaker_config(gate_config, max_drawdown_pct=D("1")))
    states = await collect(nc, "trading.risk.state")
    await publish_raw(nc, "trading.control.reduce", {"operator": "o", "scope": "strategy:demo"})
    await publish_event(nc, ev.LedgerSnapshot(drawdown_pct=D("5")))
    await states.wait_for(lambda e: e.operator == "breaker:drawdown")
    await states.wait_for(lambda e: e.scope == "strategy:demo")
    kinds = {(r["kind"], r["target"]) for r in (await _locks_section(nc))["active"]}
    assert kinds == {("breaker:drawdown", "global"), ("state:REDUCING", "strategy:demo")}


async def test_crash_after_recording_an_outcome_republishes_that_outcome_not_a_new_one(gate, nc):
    """The outcome is written to KV before it is published. If the gate died in between, the
    redelivered intent publishes the recorded outcome, even if a re-evaluation would differ."""
    from tradebus_common.ids import derive_id
    from tradebus_risk_gate.handlers import OutcomeRecord, outcome_key

    await gate.start("risk-gate")
    states = await collect(nc, "trading.risk.state")
    outcomes = await collect(nc, "trading.order.>")
    await publish_raw(nc, "trading.control.halt", b"after the crash")
    await states.wait_for(lambda e: e.state is ev.TradingState.HALTED)
    recorded = ev.OrderApproved(
        id=derive_id("wal-1", "outcome"), intent_id="wal-1", strategy="demo", venue="paper",
        symbol="BTC/USDT", side=ev.Side.BUY, quantity=D("0.1"),
        order_type=ev.OrderType.MARKET, client_order_id=client_order_id("wal-1"),
    )  # fmt: skip
    dedup = await nc.jetstream().key_value("dedup")
    await dedup.put(outcome_key("wal-1"), msgspec.json.encode(OutcomeRecord(outcome=recorded)))
    await publish_event(nc, intent("wal-1"))
    out = await outcome_of(outcomes, "wal-1")
    assert isinstance(out, ev.OrderApproved) and out.id == recorded.id
    await publish_event(nc, intent("behind-wal-1"))  # in order: once it is out, wal-1 is marked
    await outcome_of(outcomes, "behind-wal-1")
    record = msgspec.json.decode((await dedup.get(outcome_key("wal-1"))).value, type=OutcomeRecord)
    assert record.published
    orders = await nc.jetstream().key_value("risk_orders")
    assert (await orders.get(recorded.client_order_id)).value


async def test_auto_resume_waits_for_cooldown_and_for_the_cause_to_clear(gate, nc):
    """Breakers over the real KV bucket with an injected clock: deterministic cooldown."""
    from tradebus_risk_gate.breakers import Breakers
    from tradebus_risk_gate.state import BreakerStore, TradingStateStore

    await gate.start("risk-gate")  # creates the buckets and latches ACTIVE
    await gate.stop("risk-gate")
    kv = await nc.jetstream().key_value("control")
    now = [1000.0]
    breakers = Breakers(
        BreakerConfig(cooldown_s=60, auto_resume=True),
        TradingStateStore(kv),
        BreakerStore(kv),
        wall=lambda: now[0],
    )
    tripped = await breakers.trip("heartbeat_x", "silent", "cause-1", replay=False)
    assert tripped[0].state is ev.TradingState.HALTED
    assert await breakers.trip("heartbeat_x", "silent", "cause-2", replay=False) == []
    now[0] += 59.999
    assert await breakers.auto_resume() == []  # cooldown not over
    now[0] += 0.001
    assert await breakers.auto_resume(frozenset({"heartbeat_x"})) == []  # cause persists
    [resumed, _alert] = await breakers.auto_resume()
    assert resumed.state is ev.TradingState.ACTIVE and resumed.operator == "auto-resume"


async def test_halt_cancels_every_resting_paper_order_in_scope(gate, nc):
    """Emergency stop (R4), end to end with the paper venue: the gateway cancels on the
    gate's TradingStateChanged."""
    await gate.start("risk-gate", "execution-gateway")
    await set_price(nc, "paper", "BTC/USDT", "100")
    orders = await collect(nc, "trading.order.event.>")
    for i in range(3):  # limit buys under the market: they rest
        await publish_event(
            nc, intent(f"rest-{i}", order_type=ev.OrderType.LIMIT, limit_price=D("95"))
        )
    await orders.wait_for(lambda e: isinstance(e, ev.OrderAccepted), count=3)
    await publish_raw(nc, "trading.control.halt", b"cancel everything")
    canceled = await orders.wait_for(lambda e: isinstance(e, ev.OrderCanceled), count=3)
    assert {c.reason for c in canceled} == {ev.CancelReason.HALT}
    assert {c.client_order_id for c in canceled} == {client_order_id(f"rest-{i}") for i in range(3)}
