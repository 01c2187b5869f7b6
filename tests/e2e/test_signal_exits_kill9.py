"""The signal service as a real process: the exit set survives kill -9 and fires once after the
restart; `tradebus strategy pause|status|resume|start` drive a strategy run."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import nats
import pytest

from tradebus_common import events as ev
from tradebus_common.bus import ensure_topology
from tradebus_common.config import BusConfig

from ..conftest import make_config
from ..integration.test_signal_service import drained
from ..support.bus import collect, publish_event, publish_raw
from ..support.procs import ServiceProcess, service_env, write_config
from ..support.stack import InProcessStack
from .test_processes import _wait_beats, _watch_heartbeats

pytestmark = pytest.mark.e2e
D = Decimal
CLI = [sys.executable, "-m", "tradebus_common.cli.main"]


async def _start(url: str, env: dict[str, str], tmp_path: Path) -> ServiceProcess:
    nc = await nats.connect(url)
    try:
        beats = await _watch_heartbeats(nc)
        proc = ServiceProcess("signal", env, tmp_path).start()
        await _wait_beats(beats, ["signal"], {"signal": proc})
    finally:
        await nc.close()
    return proc


def tick(price: str) -> ev.MarketTick:
    return ev.MarketTick(venue="paper", symbol="BTC/USDT", price=D(price))


async def test_exit_set_survives_kill9_and_fires_once(nats_server, nc, database, tmp_path):
    env = service_env(nats_server.url, database, write_config(tmp_path / "tradebus.toml"))
    await ensure_topology(nc.jetstream(), BusConfig(url=nats_server.url), 30)
    intents = await collect(nc, "trading.intent.>")
    written = await collect(nc, "$KV.signal_exits.>")  # raw: every write to the exit sets
    proc = await _start(nats_server.url, env, tmp_path)
    entry = {
        "id": "k9-entry",
        "strategy": "demo",
        "venue": "paper",
        "symbol": "BTC/USDT",
        "side": "buy",
        "quantity": "0.3",
        "order_type": "limit",
        "limit_price": "50000",
        "bracket": {"stop_loss": "49000"},
    }
    await publish_raw(nc, "trading.signal.demo", entry)
    await intents.wait_for(lambda e: isinstance(e, ev.OrderIntent))
    position = ev.PositionChanged(
        venue="paper",
        symbol="BTC/USDT",
        strategy="demo",
        quantity=D("0.3"),
        avg_price=D("50000"),
        realized_pnl=D(0),
        ts=datetime.now(UTC),
    )
    await publish_event(nc, position)
    await wait_raw(written, b'"position":"0.3"')
    proc.kill9()
    # While it is down the price falls through the stop: the ticks wait in the stream.
    await publish_event(nc, tick("49500"))
    await publish_event(nc, tick("48900"))
    await publish_event(nc, tick("48000"))
    proc = await _start(nats_server.url, env, tmp_path)
    try:
        got = await intents.wait_for(lambda e: isinstance(e, ev.OrderIntent) and e.reduce_only)
        assert got[0].exit_reason is ev.ExitReason.STOP_LOSS and got[0].quantity == D("0.3")
        await wait_raw(written, b'"fired":"STOP_LOSS"')
        proc.kill9()  # and again, after firing: a restart must not fire a second time
        await publish_event(nc, tick("47000"))
        proc = await _start(nats_server.url, env, tmp_path)
        await drained(nc)
        assert len(intents.matching(lambda e: isinstance(e, ev.OrderIntent) and e.reduce_only)) == 1
    finally:
        assert proc.terminate() == 0, proc.log_tail()


async def wait_raw(col, needle: bytes, timeout: float = 15.0) -> None:
    async def _wait() -> None:
        async with col._changed:
            await col._changed.wait_for(lambda: any(needle in data for _, data in col.raw))

    await asyncio.wait_for(_wait(), timeout)


# --- the CLI ----------------------------------------------------------------------------


async def run(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *CLI, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.fixture
async def signal_service(nats_server):
    s = InProcessStack(make_config(nats_server.url))
    await s.start("signal")
    yield s
    await s.stop()


async def test_strategy_cli_pause_status_resume_start(signal_service, nats_server):
    url = ["--nats", nats_server.url]
    code, out, err = await run("strategy", "pause", "demo", "--operator", "eve", *url)
    assert code == 0, err
    assert "PAUSED" in out
    code, out, err = await run("strategy", "status", "demo", *url)
    assert code == 0 and "PAUSED" in out, err
    code, out, err = await run("strategy", "pause", "demo", *url)
    assert code == 3 and "refused" in out
    code, out, err = await run("strategy", "resume", "demo", *url)
    assert code == 0 and "RUNNING" in out, err
    code, out, err = await run("strategy", "stop", "demo", *url)
    assert code == 0 and "STOPPED" in out, err
    code, out, err = await run("strategy", "start", "demo", "--set", "quantity=0.1", *url)
    assert code == 0 and "STARTING" in out and "RUNNING" in out, err
    code, out, err = await run("strategy", "start", "demo", "--set", "nonsense=1", *url)
    assert code == 3 and "refused" in out  # already running
    await run("strategy", "stop", "demo", *url)
    code, out, err = await run("strategy", "start", "demo", "--set", "nonsense=1", *url)
    assert code == 3 and "ERROR" in out and "nonsense" in out


async def test_strategy_cli_without_a_service_says_so(nats_server, nc):
    await ensure_topology(nc.jetstream(), BusConfig(url=nats_server.url), 30)
    code, _, err = await run(
        "strategy", "status", "demo", "--timeout", "0.5", "--nats", nats_server.url
    )
    assert code == 2 and "did not answer" in err
