"""`tradebus up` (what `make run` runs): boots the whole stack, trades, stops cleanly on
Ctrl-C, and a second start on the same data directory keeps the state."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from pathlib import Path

import asyncpg
import nats
import pytest

from tradebus_common import events as ev
from tradebus_common.stack.servers import free_port

from ..support.bus import collect, publish_raw

pytestmark = pytest.mark.e2e
CLI = [sys.executable, "-m", "tradebus_common.cli.main"]


class Up:
    def __init__(self, data_dir: Path, port: int) -> None:
        self.args = [*CLI, "up", "--data-dir", str(data_dir), "--nats-port", str(port)]
        self.proc: asyncio.subprocess.Process | None = None
        self.output: list[str] = []

    async def start(self) -> str:
        """Start and return the banner once the stack reports it is up."""
        self.proc = await asyncio.create_subprocess_exec(
            *self.args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        await asyncio.wait_for(self._read_until("Ctrl-C stops everything"), 120)
        text = "\n".join(self.output)
        assert "not healthy" not in text, text
        return text

    async def _read_until(self, marker: str) -> None:
        assert self.proc and self.proc.stdout
        while True:
            line = await self.proc.stdout.readline()
            if not line:
                raise AssertionError("tradebus up exited:\n" + "\n".join(self.output))
            self.output.append(line.decode(errors="replace").rstrip())
            if marker in self.output[-1]:
                return

    async def interrupt(self) -> int:
        assert self.proc
        self.proc.send_signal(signal.SIGINT)
        await asyncio.wait_for(self._read_until("stopped"), 60)
        return await asyncio.wait_for(self.proc.wait(), 30)


async def test_up_trades_stops_cleanly_and_keeps_state_across_restart(tmp_path: Path):
    data_dir, port = tmp_path / "stack", free_port()
    url = f"nats://127.0.0.1:{port}"
    up = Up(data_dir, port)
    banner = await up.start()
    dsn = re.search(r"PostgreSQL\s+(postgres\S+)", banner)[1]
    creds = data_dir / "creds"  # auth is on by default: the banner names these files
    assert str(creds / "operator.creds") in banner
    try:
        nc = await nats.connect(url, user_credentials=str(creds / "operator.creds"))
        fills = await collect(nc, "trading.fill.>")
        signal_cmd = await asyncio.create_subprocess_exec(
            *CLI,
            "signal",
            "--nats",
            url,
            "--symbol",
            "BTC/USDT",
            "--side",
            "buy",
            "--qty",
            "0.01",
            "--id",
            "up-1",
            "--creds",
            str(creds / "strategy-demo.creds"),
        )
        assert await signal_cmd.wait() == 0
        [fill] = await fills.wait_for(lambda e: isinstance(e, ev.Fill), timeout=30)
        states = await collect(nc, "trading.risk.state")
        await publish_raw(nc, "trading.control.halt", b"end of day")
        await states.wait_for(lambda e: e.state is ev.TradingState.HALTED)
        await nc.close()
    finally:
        code = await up.interrupt()
    assert code == 0

    again = Up(data_dir, port)
    await again.start()
    try:
        nc = await nats.connect(url, user_credentials=str(creds / "observer.creds"))
        kv = await nc.jetstream().key_value("control")
        state = (await kv.get("state.global")).value
        await nc.close()
        conn = await asyncpg.connect(dsn)
        try:
            qty = await conn.fetchval("SELECT quantity FROM positions WHERE symbol='BTC/USDT'")
        finally:
            await conn.close()
    finally:
        assert await again.interrupt() == 0
    assert b'"HALTED"' in state  # the halt latch survived the restart of the whole stack
    assert qty == fill.quantity
