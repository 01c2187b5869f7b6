"""Market-data replay (E8) onto real NATS: the demo feed with [feed] source = "replay", and
`tradebus feed replay`, publish the bundled ticks in order with their recorded prices."""

from __future__ import annotations

import asyncio
import sys

import msgspec

from tradebus_common import events as ev
from tradebus_common.bus import ensure_stream, market_stream_config
from tradebus_common.config import BusConfig, FeedConfig
from tradebus_common.sample_data import load_ticks

from ..support.bus import collect


def recorded(symbol: str, n: int | None = None) -> list:
    prices = [t.price for t in load_ticks("paper", symbol)]
    return prices[:n] if n else prices


async def test_the_demo_feed_replays_every_sample_tick_in_order(stack, nc, config):
    feed = FeedConfig(enabled=True, source="replay", speed=0, replay_loop=False)
    md = await collect(nc, "md.paper.>")
    await stack.start("demo-feed", config=msgspec.structs.replace(config, feed=feed))
    expected = {s: recorded(s) for s in ("BTC/USDT", "ETH/USDT")}
    total = sum(len(p) for p in expected.values())
    await md.wait_for(lambda e: isinstance(e, ev.MarketTick), count=total, timeout=120)
    for symbol, prices in expected.items():
        got = [t.price for t in md.events if t.symbol == symbol]
        assert got == prices
    subjects = {subject for subject, _ in md.raw}
    assert subjects == {"md.paper.BTC-USDT", "md.paper.ETH-USDT"}


async def test_the_cli_replays_at_a_speed_factor(nats_server, nc):
    await ensure_stream(nc.jetstream(), market_stream_config(BusConfig()))  # as `tradebus up`
    md = await collect(nc, "md.paper.BTC-USDT")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from tradebus_common.cli.main import main; raise SystemExit(main())",
        "feed",
        "replay",
        "--speed",
        "50",
        "--symbol",
        "BTC/USDT",
        "--limit",
        "20",
        "--nats",
        nats_server.url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    assert b"replayed 20 ticks" in out
    await md.wait_for(lambda e: isinstance(e, ev.MarketTick), count=20)
    assert [t.price for t in md.events] == recorded("BTC/USDT", 20)
