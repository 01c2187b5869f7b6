"""A `tradebus run` process serves its own /metrics on the port its config gives it (what
compose sets per service): scraped after a halt, it names its service and shows the state."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import nats
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tradebus_common import events as ev
from tradebus_common.stack.servers import free_port

from ..support.bus import collect, publish_event
from ..support.procs import ServiceProcess, service_env, write_config
from .test_processes import _wait_beats, _watch_heartbeats

pytestmark = pytest.mark.e2e


async def scrape(port: int) -> dict[str, list]:
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics") as r:
        text = await r.text()
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def settled(metrics: dict[str, list]) -> bool:
    halted = any(
        s.labels["scope"] == "global" and s.value == 2
        for s in metrics.get("tradebus_trading_state", [])
    )
    return halted and "tradebus_consumer_pending" in metrics


async def test_a_service_process_serves_its_metrics(nats_server, database, tmp_path):
    port = free_port()
    config = write_config(
        tmp_path / "tradebus.toml",
        f'prometheus_port = {port}\nprometheus_host = "127.0.0.1"\nmetrics_sample_interval_s = 0.2',
    )
    env = service_env(nats_server.url, database, config)
    nc = await nats.connect(nats_server.url)
    proc = None
    try:
        beats = await _watch_heartbeats(nc)
        proc = ServiceProcess("risk-gate", env, tmp_path).start()
        await _wait_beats(beats, ["risk-gate"], {"risk-gate": proc})
        states = await collect(nc, "trading.risk.state")
        await publish_event(nc, ev.ControlCommand(action=ev.ControlAction.HALT, reason="e2e"))
        await states.wait_for(lambda e: e.state is ev.TradingState.HALTED)
        # The gauge follows the publish ack, a moment after the subscriber saw the message;
        # the lag sampler runs on its own period.
        deadline = time.monotonic() + 10
        while not settled(metrics := await scrape(port)):
            assert time.monotonic() < deadline, sorted(metrics)
            await asyncio.sleep(0.1)
    finally:
        await nc.close()
        if proc is not None:
            proc.terminate()

    [info] = metrics["target_info"]
    assert info.labels["service_name"] == "risk-gate"
    [state] = [s for s in metrics["tradebus_trading_state"] if s.labels["scope"] == "global"]
    assert state.value == 2
    durables = {s.labels["durable"] for s in metrics["tradebus_consumer_pending"]}
    assert durables >= {"risk-gate"}
