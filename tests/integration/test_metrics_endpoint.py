"""Scrape a service's /metrics over HTTP after real traffic through the running stack.

The in-process stack runs every service in this process, so they share one endpoint; a real
deployment has one per process (compose gives each service its own port). Counters are
cumulative per process, so the test compares a scrape before the traffic with one after."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import msgspec
from prometheus_client.parser import text_string_to_metric_families

from tradebus_common import events as ev
from tradebus_common import metrics
from tradebus_common.bus import Subscription, consumer_config, ensure_topology, typed_decoder
from tradebus_common.stack.servers import free_port

from ..support.bus import collect, publish_event, publish_raw, set_price

ALL = ("alerting", "signal", "risk-gate", "execution-gateway", "position-ledger")


async def scrape(port: int) -> dict[tuple[str, frozenset], float]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}/metrics") as resp,
    ):
        assert resp.status == 200
        text = await resp.text()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def sample(scraped: dict, name: str, **labels: str) -> float:
    return scraped.get((name, frozenset(labels.items())), 0.0)


async def eventually(pred: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Poll for what no event announces (a periodic sample)."""
    deadline = time.monotonic() + timeout
    while not (found := await pred()):
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.1)
    return found


def signal(sid: str, qty: str) -> dict:
    return {"id": sid, "strategy": "demo", "venue": "paper", "symbol": "BTC/USDT",
            "side": "buy", "quantity": qty}  # fmt: skip


async def test_scrape_shows_fills_denials_dead_letters_latency_equity_and_lag(stack, nc, config):
    port = free_port()
    telemetry = msgspec.structs.replace(
        config.telemetry,
        prometheus_port=port,
        prometheus_host="127.0.0.1",
        metrics_sample_interval_s=0.2,
    )
    stack.config = msgspec.structs.replace(config, telemetry=telemetry)
    await stack.start(*ALL)
    before = await scrape(port)
    await set_price(nc, "paper", "BTC/USDT", "20000")
    positions = await collect(nc, "trading.position.>")
    denied = await collect(nc, "trading.order.denied.>")
    dead = await collect(nc, "trading.deadletter.>")
    snapshots = await collect(nc, "trading.ledger.snapshot.>")

    await publish_raw(nc, "trading.signal.demo", signal("m-fill", "0.1"))
    await publish_raw(nc, "trading.signal.demo", signal("m-deny", "100"))  # 2M notional
    await publish_raw(nc, "trading.signal.demo", b"{not json")
    await positions.wait_for(lambda e: isinstance(e, ev.PositionChanged))
    await denied.wait_for(lambda e: e.reason is ev.DenyReason.MAX_NOTIONAL)
    await dead.wait_for(lambda e: isinstance(e, ev.MessageDeadLettered))
    await snapshots.wait_for(lambda e: any(p.quantity > 0 for p in e.positions))
    # The services count what they publish once the stream acks it, a moment after this
    # test's subscription saw it: scrape until the last of them (the snapshot) shows.
    after: dict = {}

    async def counted() -> bool:
        nonlocal after
        after = await scrape(port)
        dead = delta("tradebus_dead_letters_total", service="signal", reason="MALFORMED_JSON")
        return dead == 1 and sample(after, "tradebus_open_positions", account="default") == 1

    def delta(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    await eventually(counted)
    assert delta("tradebus_fills_total", venue="paper", symbol="BTC/USDT", side="buy") == 1
    assert delta("tradebus_denials_total", reason="MAX_NOTIONAL", strategy="demo") == 1
    assert delta("tradebus_dead_letters_total", service="signal", reason="MALFORMED_JSON") == 1
    assert delta("tradebus_order_submit_latency_seconds_count", venue="paper", ok="true") == 1
    assert sample(after, "tradebus_open_positions", account="default") == 1
    assert sample(after, "tradebus_equity", account="default") > 0
    assert ("tradebus_pnl", frozenset({("account", "default"), ("kind", "unrealized")})) in after

    async def lag_sampled() -> bool:
        scraped = await scrape(port)
        return ("tradebus_consumer_pending",
                frozenset({("stream", "TRADING"), ("durable", "risk-gate")})) in scraped  # fmt: skip

    await eventually(lag_sampled)

    # A resting limit order is a working order until it fills or is canceled.
    orders = await collect(nc, "trading.order.>")
    rest = {**signal("m-rest", "0.1"), "order_type": "limit", "limit_price": "19000"}
    await publish_raw(nc, "trading.signal.demo", rest)
    await orders.wait_for(lambda e: isinstance(e, ev.OrderAccepted))

    async def one_working() -> bool:
        return sample(await scrape(port), "tradebus_open_orders", venue="paper") == 1

    await eventually(one_working)

    # A halt cancels it (R4): the book, and so the gauge, goes back to none.
    await publish_event(nc, ev.ControlCommand(action=ev.ControlAction.HALT, reason="metrics"))
    await orders.wait_for(lambda e: isinstance(e, ev.OrderCanceled))

    async def none_working() -> bool:
        return sample(await scrape(port), "tradebus_open_orders", venue="paper") == 0

    await eventually(none_working)


async def test_the_halt_shows_as_trading_state_2(stack, nc, config):
    port = free_port()
    telemetry = msgspec.structs.replace(
        config.telemetry, prometheus_port=port, prometheus_host="127.0.0.1"
    )
    stack.config = msgspec.structs.replace(config, telemetry=telemetry)
    await stack.start("risk-gate")
    states = await collect(nc, "trading.risk.state")
    await publish_event(nc, ev.ControlCommand(action=ev.ControlAction.HALT, reason="drill"))
    await states.wait_for(lambda e: e.state is ev.TradingState.HALTED)

    async def halted() -> bool:  # set once the publish is acked, just after we saw it
        return sample(await scrape(port), "tradebus_trading_state", scope="global") == 2

    await eventually(halted)


async def test_consumer_lag_is_the_durable_backlog(nc, config):
    """The sampler reads num_pending / num_ack_pending from the server's consumer info."""
    js = nc.jetstream()
    await ensure_topology(js, config.bus, 30)
    sub = Subscription("lag-probe", ["trading.alert.>"], typed_decoder(ev.Alert), handler=None)
    await js.add_consumer("TRADING", consumer_config(sub, config.bus))
    for i in range(5):
        alert = ev.Alert(severity=ev.Severity.INFO, source="t", code=ev.AlertCode.DEAD_LETTER,
                         message=f"backlog {i}")  # fmt: skip
        await publish_event(nc, alert)
    psub = await js.pull_subscribe_bind("lag-probe", stream="TRADING")
    await psub.fetch(2, timeout=2)  # two in flight, not acked

    await metrics._sample_consumer(js, "TRADING", "lag-probe")
    labels = {"stream": "TRADING", "durable": "lag-probe"}
    assert metrics.registry.get_sample_value("tradebus_consumer_pending", labels) == 3
    assert metrics.registry.get_sample_value("tradebus_consumer_ack_pending", labels) == 2
