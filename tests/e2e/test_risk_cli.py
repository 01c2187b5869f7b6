"""`tradebus halt --scope --flatten`, `tradebus reduce`, `tradebus resume --scope` against a
running risk-gate; a refused command says why and exits non-zero."""

from __future__ import annotations

import asyncio
import sys

import pytest

from tradebus_common import events as ev

from ..conftest import make_config
from ..support.bus import collect
from ..support.stack import InProcessStack

CLI = [sys.executable, "-m", "tradebus_common.cli.main"]


async def run(*args: str) -> tuple[int, str, str]:
    # A subprocess without blocking the loop: the gate runs in this same event loop.
    proc = await asyncio.create_subprocess_exec(
        *CLI, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.fixture
async def gate(nats_server):
    s = InProcessStack(make_config(nats_server.url))
    await s.start("risk-gate")
    yield s
    await s.stop()


async def test_halt_reduce_resume_commands_with_scopes(gate, nats_server, nc):
    url = ["--nats", nats_server.url]
    cancel = await collect(nc, "trading.control.cancel-all")
    code, out, err = await run(
        "halt",
        "fat",
        "finger",
        "--scope",
        "symbol:BTC/USDT",
        "--flatten",
        "--operator",
        "eve",
        *url,
    )
    assert code == 0, err
    assert "HALTED" in out and "fat finger" in out
    [cmd] = await cancel.wait_for(lambda e: isinstance(e, ev.ControlCommand))
    assert cmd.flatten and cmd.scope == "symbol:BTC/USDT"

    code, out, err = await run("reduce", "wind", "down", "--operator", "eve", *url)
    assert code == 0, err
    assert "REDUCING" in out

    code, out, err = await run("resume", "--operator", "eve", "--scope", "symbol:BTC/USDT", *url)
    assert code == 0, err
    assert "ACTIVE" in out

    code, out, err = await run("resume", "--operator", "eve", "--scope", "planet:mars", *url)
    assert code == 2 and "refused" in err and "unknown scope" in err


async def test_mode_command_lists_failed_criteria_and_stage_refusal(gate, nats_server):
    url = ["--nats", nats_server.url]
    code, out, err = await run("mode", "live-minimal", "--operator", "eve", *url)
    assert code == 3, err
    assert "refused" in out and "trades 0 < 10" in out and "sharpe" in out

    code, out, err = await run("stage", "up", "--operator", "eve", *url)
    assert code == 2 and "profitable days" in err

    code, out, err = await run("stage", "down", "--operator", "eve", *url)
    assert code == 0, err
    assert "risk stage 0" in out and "0.1% per trade" in out
