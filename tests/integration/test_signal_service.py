"""The signal service on a real nats-server: priority under backlog, TTL, validation reasons,
sizing from the ledger and the risk stage, strategy runs, and exits on ticks."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import msgspec
from nats.js.errors import KeyNotFoundError

from tradebus_common import events as ev
from tradebus_common import subjects
from tradebus_common.bus import ensure_topology
from tradebus_common.codec import encode
from tradebus_common.config import Config, StrategyConfig, VenueSymbolRules

from ..support.bus import collect, publish_event, publish_raw

D = Decimal


def with_strategies(config: Config, **strategies: StrategyConfig) -> Config:
    return msgspec.structs.replace(config, strategies={**config.strategies, **strategies})


def body(sid: str, **extra: object) -> dict:
    return {
        "id": sid,
        "strategy": "demo",
        "venue": "paper",
        "symbol": "BTC/USDT",
        "side": "buy",
        "quantity": "0.5",
        **extra,
    }


def is_intent(e: object) -> bool:
    return isinstance(e, ev.OrderIntent)


async def test_under_backlog_higher_priority_is_handled_first(stack, nc, config):
    await ensure_topology(nc.jetstream(), config.bus, 30)
    intents = await collect(nc, "trading.intent.>")
    for i in range(30):  # the backlog, all there before the service starts
        await publish_raw(nc, "trading.signal.demo", body(f"low-{i}", priority=0))
    for i in range(5):
        await publish_raw(nc, "trading.signal.demo", body(f"high-{i}", priority=10))
    await stack.start("signal")
    got = await intents.wait_for(is_intent, count=35)
    order = [e.signal_id for e in got]
    assert sorted(order[:5]) == [f"high-{i}" for i in range(5)]
    assert order[5:] == [f"low-{i}" for i in range(30)]  # equal priority keeps its order


async def test_expired_signal_is_dropped_with_a_reason_event(stack, nc):
    await stack.start("signal")
    rejected = await collect(nc, "trading.strategy.*.rejected")
    intents = await collect(nc, "trading.intent.>")
    old = (datetime.now(UTC) - timedelta(seconds=30)).isoformat()
    await publish_raw(nc, "trading.signal.demo", body("stale", ts=old, ttl_s=5))
    await publish_raw(nc, "trading.signal.demo", body("fresh", ttl_s=60))
    got = await rejected.wait_for(lambda e: isinstance(e, ev.SignalRejected))
    assert (got[0].signal_id, got[0].reason) == ("stale", ev.SignalRejectReason.EXPIRED)
    await intents.wait_for(lambda e: is_intent(e) and e.signal_id == "fresh")
    assert not intents.matching(lambda e: e.signal_id == "stale")


async def test_a_longs_stop_above_entry_is_dead_lettered_with_an_alert(stack, nc):
    await stack.start("signal")
    dead = await collect(nc, "trading.deadletter.signal")
    alerts = await collect(nc, "trading.alert.>")
    bad = body(
        "bad-stop",
        order_type="limit",
        limit_price="50000",
        bracket={"stop_loss": "50500", "take_profit": "52000"},
    )
    await publish_raw(nc, "trading.signal.demo", bad)
    got = await dead.wait_for(lambda e: isinstance(e, ev.MessageDeadLettered))
    assert got[0].reason.value == "INCONSISTENT_BRACKET"
    await alerts.wait_for(lambda e: isinstance(e, ev.Alert) and e.code is ev.AlertCode.DEAD_LETTER)


async def test_risk_per_trade_sizes_from_the_ledger_share_and_the_risk_stage(stack, nc, config):
    cfg = with_strategies(
        config,
        risky=StrategyConfig(
            allocation_weight=D("0.5"), risk_pct_from_stage=True, sizing_mode="risk_per_trade"
        ),
    )
    cfg = msgspec.structs.replace(
        cfg,
        risk=msgspec.structs.replace(
            cfg.risk, venue_rules={"paper": {"BTC/USDT": VenueSymbolRules(qty_step=D("0.001"))}}
        ),
    )
    await stack.start("signal", config=cfg)
    control = await nc.jetstream().key_value(subjects.BUCKET_CONTROL)
    stage = ev.RiskStageChanged(stage=1, risk_per_trade_pct=D("0.25"), max_exposure_pct=D("4"))
    await control.put("stage", encode(stage))
    await publish_event(nc, ev.LedgerSnapshot(equity=D("100000")))
    intents = await collect(nc, "trading.intent.>")
    sig = body(
        "risk-1",
        strategy="risky",
        quantity=None,
        order_type="limit",
        limit_price="50000",
        bracket={"stop_loss": "49000"},
    )
    await publish_raw(nc, "trading.signal.risky", {k: v for k, v in sig.items() if v is not None})
    got = await intents.wait_for(is_intent)
    # share 50k x 0.25% = 125 at risk, / 1000 of stop distance = 0.125
    assert got[0].quantity == D("0.125")


async def test_allocation_caps_and_target_reached_gives_no_order(stack, nc, config):
    cfg = with_strategies(config, small=StrategyConfig(allocation_weight=D("0.1")))
    await stack.start("signal", config=cfg)
    position = ev.PositionView(
        venue="paper", symbol="BTC/USDT", strategy="small", quantity=D("0.1")
    )
    await publish_event(nc, ev.LedgerSnapshot(equity=D("100000"), positions=[position]))
    intents = await collect(nc, "trading.intent.>")
    rejected = await collect(nc, "trading.strategy.small.rejected")
    limit = {"order_type": "limit", "limit_price": "50000", "strategy": "small"}
    await publish_raw(nc, "trading.signal.small", body("big", quantity="1", **limit))
    got = await intents.wait_for(is_intent)
    # share 10k; 0.1 held x avg 0 (no mark) counts 0 -> room for 0.2 at 50k
    assert got[0].quantity == D("0.2")
    target = {k: v for k, v in body("tgt", target_position="0.1", **limit).items()}
    target.pop("quantity")
    await publish_raw(nc, "trading.signal.small", target)
    reason = await rejected.wait_for(lambda e: isinstance(e, ev.SignalRejected))
    assert reason[0].reason is ev.SignalRejectReason.TARGET_REACHED


async def run_command(nc, action: str, request_id: str, **extra: object) -> list:
    runs = await collect(nc, "trading.strategy.demo.run")
    cmd = ev.StrategyCommand(
        strategy="demo", action=ev.StrategyAction(action), request_id=request_id, **extra
    )
    await publish_event(nc, cmd)
    final = {"start": "RUNNING", "stop": "STOPPED", "pause": "PAUSED", "resume": "RUNNING"}

    def done(e: object) -> bool:
        if isinstance(e, ev.StrategyCommandAnswered):
            return e.request_id == request_id
        return isinstance(e, ev.StrategyRunChanged) and e.state.value in (
            final.get(action, ""),
            "ERROR",
        )

    await runs.wait_for(done)
    return runs.events


async def test_pause_refuses_signals_and_resume_lets_them_through(stack, nc):
    await stack.start("signal")
    intents = await collect(nc, "trading.intent.>")
    rejected = await collect(nc, "trading.strategy.demo.rejected")
    changes = await run_command(nc, "pause", "req-pause", operator="ops")
    assert [(e.previous, e.state) for e in changes] == [
        (ev.StrategyRunState.RUNNING, ev.StrategyRunState.PAUSED)
    ]
    await publish_raw(nc, "trading.signal.demo", body("while-paused"))
    got = await rejected.wait_for(lambda e: isinstance(e, ev.SignalRejected))
    assert got[0].reason is ev.SignalRejectReason.STRATEGY_PAUSED
    await run_command(nc, "resume", "req-resume")
    await publish_raw(nc, "trading.signal.demo", body("after-resume"))
    await intents.wait_for(lambda e: is_intent(e) and e.signal_id == "after-resume")
    assert not intents.matching(lambda e: e.signal_id == "while-paused")
    kv = await nc.jetstream().key_value(subjects.BUCKET_STRATEGY_RUNS)
    record = msgspec.json.decode((await kv.get("demo")).value)
    assert (record["state"], record["request_id"]) == ("RUNNING", "req-resume")


async def test_start_applies_the_runs_overrides_and_a_bad_command_is_answered(stack, nc):
    await stack.start("signal")
    intents = await collect(nc, "trading.intent.>")
    changes = await run_command(nc, "start", "req-start", overrides={"quantity": "0.05"})
    states = [e.state for e in changes if isinstance(e, ev.StrategyRunChanged)]
    assert states == [ev.StrategyRunState.STARTING, ev.StrategyRunState.RUNNING]
    await publish_raw(nc, "trading.signal.demo", body("with-override", quantity="3"))
    got = await intents.wait_for(is_intent)
    assert got[0].quantity == D("0.05")
    answers = await run_command(nc, "resume", "req-bad")
    answer = [e for e in answers if isinstance(e, ev.StrategyCommandAnswered)][0]
    assert not answer.ok and "RUNNING" in answer.detail
    status = await run_command(nc, "status", "req-status")
    got_status = [e for e in status if isinstance(e, ev.StrategyCommandAnswered)][0]
    assert got_status.ok and got_status.state is ev.StrategyRunState.RUNNING
    assert got_status.overrides == {"quantity": "0.05"}


# --- exits ------------------------------------------------------------------------------


def opened(qty: str, ts: datetime | None = None) -> ev.PositionChanged:
    return ev.PositionChanged(
        venue="paper",
        symbol="BTC/USDT",
        strategy="demo",
        quantity=D(qty),
        avg_price=D("50000"),
        realized_pnl=D(0),
        ts=ts or datetime.now(UTC),
    )


async def tick(nc, price: str) -> None:
    await publish_event(nc, ev.MarketTick(venue="paper", symbol="BTC/USDT", price=D(price)))


async def exit_set(nc) -> dict | None:
    kv = await nc.jetstream().key_value(subjects.BUCKET_EXITS)
    try:
        entry = await kv.get("demo.paper.BTC-USDT")
    except KeyNotFoundError:
        return None
    return msgspec.json.decode(entry.value) if entry.value else None


async def armed_with(nc, intents, sid: str, bracket: dict, qty: str = "0.5") -> None:
    """An entry with a bracket, then the ledger's position: the exit set is armed."""
    await publish_raw(
        nc,
        "trading.signal.demo",
        body(sid, order_type="limit", limit_price="50000", bracket=bracket),
    )
    await intents.wait_for(lambda e: is_intent(e) and e.signal_id == sid)
    await publish_event(nc, opened(qty))


class KvWatch:
    """Every write to one KV bucket, seen on its subject ($KV.<bucket>.<key>): a test waits
    on the write it expects instead of polling."""

    def __init__(self) -> None:
        self.values: list[dict | None] = []
        self._changed = asyncio.Condition()

    async def on_msg(self, msg) -> None:
        deleted = (msg.headers or {}).get("KV-Operation") in ("DEL", "PURGE")
        self.values.append(None if deleted or not msg.data else msgspec.json.decode(msg.data))
        async with self._changed:
            self._changed.notify_all()

    async def wait_for(self, pred, timeout: float = 10.0) -> None:
        async def _wait() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: any(pred(v) for v in self.values))

        try:
            await asyncio.wait_for(_wait(), timeout)
        except TimeoutError as e:
            raise AssertionError(f"no matching write; saw {self.values[-5:]}") from e


async def watch_exits(nc) -> KvWatch:
    watch = KvWatch()
    await nc.subscribe(f"$KV.{subjects.BUCKET_EXITS}.>", cb=watch.on_msg)
    await nc.flush()
    return watch


def armed_at(qty: str):
    return lambda v: v is not None and D(v["position"]) == D(qty)


def fired(v: dict | None) -> bool:
    return v is not None and v.get("fired") is not None


async def drained(nc, durable: str = "signal-md", stream: str = "MARKET") -> None:
    """Until the consumer has handled (acked) everything published to it: the server's own
    count, so an assertion that something did NOT happen is made after the fact."""
    js = nc.jetstream()
    for _ in range(500):
        info = await js.consumer_info(stream, durable)
        if info.num_pending == 0 and info.num_ack_pending == 0:
            return
        await asyncio.sleep(0.01)  # polling the server's count, bounded
    raise AssertionError(f"{durable} did not drain")


def exits_of(intents) -> list:
    return intents.matching(lambda e: is_intent(e) and e.reduce_only)


async def test_stop_loss_fires_once_at_the_right_tick(stack, nc):
    await stack.start("signal")
    intents = await collect(nc, "trading.intent.>")
    exits = await watch_exits(nc)
    await armed_with(nc, intents, "entry-1", {"stop_loss": "49000", "take_profit": "52000"})
    await exits.wait_for(armed_at("0.5"))
    await tick(nc, "49500")
    await tick(nc, "49000")  # the stop
    got = await intents.wait_for(lambda e: is_intent(e) and e.reduce_only)
    assert got[0].exit_reason is ev.ExitReason.STOP_LOSS
    assert (got[0].side, got[0].quantity) == (ev.Side.SELL, D("0.5"))
    await tick(nc, "48000")  # past it: must not send a second exit
    await tick(nc, "47000")
    await drained(nc)
    found = await exit_set(nc)
    assert found is not None and found["fired"] == "STOP_LOSS"
    assert len(exits_of(intents)) == 1


async def test_trailing_stop_ratchets_and_fires_from_the_high(stack, nc):
    await stack.start("signal")
    intents = await collect(nc, "trading.intent.>")
    exits = await watch_exits(nc)
    await armed_with(nc, intents, "trail-1", {"trailing_distance": "200"})
    await exits.wait_for(armed_at("0.5"))
    for price in ("50000", "50500", "51000", "50850"):  # high 51000: stop now 50800
        await tick(nc, price)
    await drained(nc)
    assert exits_of(intents) == []  # 50850 is above the ratcheted stop
    await tick(nc, "50800")
    got = await intents.wait_for(lambda e: is_intent(e) and e.reduce_only)
    assert got[0].exit_reason is ev.ExitReason.TRAILING_STOP
    await drained(nc)
    assert len(exits_of(intents)) == 1


async def test_a_replaced_bracket_never_double_fires(stack, nc):
    await stack.start("signal")
    intents = await collect(nc, "trading.intent.>")
    exits = await watch_exits(nc)
    await armed_with(nc, intents, "first", {"stop_loss": "49000"})
    await exits.wait_for(armed_at("0.5"))
    # A new bracket for the same position (e.g. a scale-in) replaces the old one atomically.
    await publish_raw(
        nc,
        "trading.signal.demo",
        body("second", order_type="limit", limit_price="50000", bracket={"stop_loss": "48000"}),
    )
    await intents.wait_for(lambda e: is_intent(e) and e.signal_id == "second" and not e.reduce_only)
    found = await exit_set(nc)
    assert found is not None and found["signal_id"] == "second" and D(found["position"]) == D("0.5")
    await tick(nc, "48500")  # the old stop only: nothing
    await drained(nc)
    assert exits_of(intents) == []
    await tick(nc, "47900")  # the new stop
    got = await intents.wait_for(lambda e: is_intent(e) and e.reduce_only)
    assert got[0].signal_id == "second"
    await tick(nc, "47000")
    await drained(nc)
    assert len(exits_of(intents)) == 1


async def test_time_exit_fires_after_max_holding(stack, nc):
    await stack.start("signal")
    intents = await collect(nc, "trading.intent.>")
    exits = await watch_exits(nc)
    await armed_with(nc, intents, "timed", {"max_holding_s": 60})
    await exits.wait_for(armed_at("0.5"))
    now = datetime.now(UTC)
    early = ev.MarketTick(venue="paper", symbol="BTC/USDT", price=D("50000"), ts=now)
    late = ev.MarketTick(
        venue="paper", symbol="BTC/USDT", price=D("50000"), ts=now + timedelta(seconds=61)
    )
    await publish_event(nc, early)
    await publish_event(nc, late)
    got = await intents.wait_for(lambda e: is_intent(e) and e.reduce_only)
    assert got[0].exit_reason is ev.ExitReason.TIME_EXIT


async def test_flat_position_drops_the_exit_set(stack, nc):
    await stack.start("signal")
    intents = await collect(nc, "trading.intent.>")
    exits = await watch_exits(nc)
    await armed_with(nc, intents, "flat", {"stop_loss": "49000"})
    await exits.wait_for(armed_at("0.5"))
    await publish_event(nc, opened("0"))
    await exits.wait_for(lambda v: v is None)
    assert await exit_set(nc) is None
    await tick(nc, "40000")
    await drained(nc)
    assert exits_of(intents) == []


async def test_a_denied_exit_is_re_armed_and_the_next_tick_tries_again(stack, nc):
    await stack.start("signal")
    intents = await collect(nc, "trading.intent.>")
    exits = await watch_exits(nc)
    await armed_with(nc, intents, "denied", {"stop_loss": "49000"})
    await exits.wait_for(armed_at("0.5"))
    await tick(nc, "48900")
    [first] = await intents.wait_for(lambda e: is_intent(e) and e.reduce_only)
    await exits.wait_for(fired)
    denial = ev.OrderDenied(
        intent_id=first.id,
        strategy="demo",
        venue="paper",
        symbol="BTC/USDT",
        reason=ev.DenyReason.RATE_LIMIT_STRATEGY,
    )
    await publish_event(nc, denial)
    await exits.wait_for(lambda v: v is not None and v.get("attempt") == 1 and not v["fired"])
    await tick(nc, "48800")
    got = await intents.wait_for(lambda e: is_intent(e) and e.reduce_only, count=2)
    assert got[1].id != first.id and got[1].exit_reason is ev.ExitReason.STOP_LOSS
