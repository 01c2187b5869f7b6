"""S6 as a newcomer sees it: `tradebus up` with `[example_strategy] enabled = true` runs the
SMA-cross example on the demo feed, and its signals turn into fills within a minute."""

from __future__ import annotations

from pathlib import Path

import nats
import pytest

from tradebus_common import events as ev
from tradebus_common.stack.servers import free_port

from ..support.bus import collect
from .test_up import Up

pytestmark = pytest.mark.e2e

CONFIG = """
[feed]
enabled = true
interval_ms = 100
volatility_bps = "20"

[example_strategy]
enabled = true
fast_window = 3
slow_window = 8
"""


async def test_up_runs_the_example_strategy_to_fills(tmp_path: Path):
    config = tmp_path / "tradebus.toml"
    config.write_text(CONFIG)
    data_dir, port = tmp_path / "stack", free_port()
    up = Up(data_dir, port)
    # Auth off: this is about the strategy plugging in, not the identities.
    up.args += ["--config", str(config), "--no-auth"]
    await up.start()
    try:
        nc = await nats.connect(f"nats://127.0.0.1:{port}")
        signals = await collect(nc, "trading.signal.>")
        fills = await collect(nc, "trading.fill.>")
        got = await signals.wait_for(
            lambda e: isinstance(e, ev.Signal) and e.tags.get("source") == "example_sma",
            timeout=60,
        )
        await fills.wait_for(
            lambda e: isinstance(e, ev.Fill) and e.correlation_id == got[0].id, timeout=30
        )
        await nc.close()
    finally:
        assert await up.interrupt() == 0
