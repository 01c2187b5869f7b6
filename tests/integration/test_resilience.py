"""The runtime rides out NATS outages: a late server, and a server restart mid-run."""

from __future__ import annotations

import asyncio

import nats

from tradebus_common import events as ev
from tradebus_common.cli.services import load_spec
from tradebus_common.runtime import ServiceRunner

from ..support.bus import collect, publish_raw

SIG = {"strategy": "demo", "venue": "paper", "symbol": "BTC/USDT", "side": "buy", "quantity": "0.1"}


async def test_service_started_before_nats_connects_when_it_comes_up(nats_server, config):
    nats_server.stop()
    runner = ServiceRunner(load_spec("signal"), config, instance="early")
    task = asyncio.create_task(runner.run())
    try:
        assert not runner.ready.is_set()
        nats_server.start()
        await asyncio.wait_for(runner.ready.wait(), 30)
        nc = await nats.connect(nats_server.url)
        intents = await collect(nc, "trading.intent.>")
        await publish_raw(nc, "trading.signal.demo", {**SIG, "id": "late"})
        await intents.wait_for(lambda e: e.correlation_id == "late")
        await nc.close()
    finally:
        runner.stop()
        await asyncio.wait_for(task, 20)


async def test_consumers_resume_after_nats_server_restart(stack, nats_server):
    await stack.start("signal")
    nats_server.stop()
    nats_server.start()  # same port and store: streams and durables survive
    nc = await nats.connect(nats_server.url)
    try:
        intents = await collect(nc, "trading.intent.>")
        await publish_raw(nc, "trading.signal.demo", {**SIG, "id": "after-restart"})
        [intent] = await intents.wait_for(lambda e: e.correlation_id == "after-restart", timeout=30)
        assert isinstance(intent, ev.OrderIntent)
    finally:
        await nc.close()
