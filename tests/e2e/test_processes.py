"""End to end through six `tradebus run` processes on real nats-server and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import sys
from decimal import Decimal
from pathlib import Path

import asyncpg
import nats
import pytest

from tradebus_common import events as ev
from tradebus_common.cli.services import SERVICE_NAMES

from ..support.bus import collect, publish_event
from ..support.procs import ServiceProcess, service_env, write_config

pytestmark = pytest.mark.e2e


@pytest.fixture
async def procs(nats_server, database, tmp_path: Path):
    env = service_env(nats_server.url, database, write_config(tmp_path / "tradebus.toml"))
    started: dict[str, ServiceProcess] = {}

    async def start(*names: str) -> None:
        nc = await nats.connect(nats_server.url)
        try:
            beats = await _watch_heartbeats(nc)
            for name in names:
                started[name] = ServiceProcess(name, env, tmp_path).start()
            await _wait_beats(beats, names, started)
        finally:
            await nc.close()

    yield start, started
    for p in started.values():
        p.terminate()


async def _watch_heartbeats(nc):
    seen: set[str] = set()
    changed = asyncio.Event()

    async def on_msg(msg):
        seen.add(msg.subject.split(".")[2])  # $KV.health.<service>.<instance>
        changed.set()

    await nc.subscribe("$KV.health.>", cb=on_msg)
    return seen, changed


async def _wait_beats(beats, names, started, timeout: float = 45.0) -> None:
    seen, changed = beats
    wanted = {n.replace(".", "_") for n in names}

    async def wait() -> None:
        while not wanted <= seen:
            changed.clear()
            await changed.wait()

    try:
        await asyncio.wait_for(wait(), timeout)
    except TimeoutError:
        logs = "\n".join(f"--- {n}\n{started[n].log_tail()}" for n in names if n not in seen)
        raise AssertionError(f"services did not heartbeat: {wanted - seen}\n{logs}") from None


async def test_raw_json_signal_from_plain_nats_py_becomes_fill_and_position(procs, nc, database):
    start, _ = procs
    await start(*SERVICE_NAMES)
    await publish_event(
        nc, ev.MarketTick(venue="paper", symbol="BTC/USDT", price=Decimal("42000.50"))
    )
    fills = await collect(nc, "trading.fill.>")
    positions = await collect(nc, "trading.position.>")
    # What a strategy in any language sends: hand-written JSON, a JSON number for quantity.
    raw = (
        b'{"id":"e2e-1","strategy":"demo","venue":"paper","symbol":"BTC/USDT",'
        b'"side":"buy","quantity":0.25}'
    )
    await nc.jetstream().publish("trading.signal.demo", raw)

    [fill] = await fills.wait_for(lambda e: isinstance(e, ev.Fill), timeout=20)
    assert fill.correlation_id == "e2e-1"
    assert fill.price == Decimal("42000.50") and fill.quantity == Decimal("0.25")
    assert fill.fee == Decimal("10.50012500")  # 0.25 * 42000.50 * 0.001
    await positions.wait_for(lambda e: e.fill_id == fill.id, timeout=20)
    conn = await asyncpg.connect(database)
    try:
        row = await conn.fetchrow("SELECT * FROM positions WHERE symbol='BTC/USDT'")
        fee = await conn.fetchval("SELECT fee FROM fills WHERE trade_id=$1", fill.trade_id)
    finally:
        await conn.close()
    assert row["quantity"] == Decimal("0.25")
    assert row["avg_price"] == Decimal("42000.50")
    assert row["realized_pnl"] == -fee and fee == Decimal("10.50012500")


async def test_kill9_ledger_mid_stream_loses_and_doubles_nothing(procs, nc, database):
    start, started = procs
    await start("position-ledger")
    positions = await collect(nc, "trading.position.>")
    n = 300
    for i in range(n):
        await publish_event(
            nc,
            ev.Fill(
                venue="paper",
                symbol="ETH/USDT",
                strategy="demo",
                client_order_id=f"c{i}",
                trade_id=f"k{i}",
                side=ev.Side.BUY,
                quantity=Decimal("0.01"),
                price=Decimal(3000 + i),
                fee=Decimal("0.01"),
                fee_currency="USDT",
            ),
        )
    await positions.wait_for(lambda e: isinstance(e, ev.PositionChanged), timeout=20)
    started["position-ledger"].kill9()  # mid-stream: most fills are not booked yet
    booked_before_kill = len(positions.events)
    await start("position-ledger")
    await positions.wait_for(lambda e: e.quantity == Decimal("0.01") * n, timeout=60)

    conn = await asyncpg.connect(database)
    try:
        rows = await conn.fetchval("SELECT count(*) FROM fills")
        distinct = await conn.fetchval("SELECT count(DISTINCT trade_id) FROM fills")
        pos = await conn.fetchrow("SELECT * FROM positions WHERE symbol='ETH/USDT'")
    finally:
        await conn.close()
    assert booked_before_kill < n, "the kill did not land mid-stream"
    assert rows == distinct == n
    assert pos["quantity"] == Decimal("3.00") and pos["fill_count"] == n
    expected_avg = sum(Decimal(3000 + i) for i in range(n)) / n
    assert pos["avg_price"] == expected_avg
    assert pos["fees_paid"] == Decimal("0.01") * n


async def _cli(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tradebus_common.cli.main",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode, out.decode(), err.decode()


async def test_status_and_reconcile_commands_against_running_services(procs, nats_server):
    start, _ = procs
    await start(*SERVICE_NAMES)
    code, out, err = await _cli("status", "--json", "--nats", nats_server.url)
    assert code == 0, err
    status = json.loads(out)
    assert status["trading_state"] == "ACTIVE"
    assert set(status["services"]) == set(SERVICE_NAMES)
    assert all(s["healthy"] for s in status["services"].values())

    code, out, err = await _cli("reconcile", "--json", "--nats", nats_server.url)
    assert code == 0, err
    [report] = [json.loads(line) for line in out.splitlines()]
    assert report["venue"] == "paper" and report["clean"] is True

    code, out, err = await _cli("reconcile", "--venue", "nope", "--nats", nats_server.url)
    assert code == 2
    assert "refused" in err and "nope" in err
