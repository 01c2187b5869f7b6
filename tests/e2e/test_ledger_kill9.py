"""kill -9 of the ledger process mid-batch: after a restart no fill is lost or doubled, and
the closed cycles and processed sequence agree with what was published."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import asyncpg
import nats
import pytest

from tradebus_common import events as ev
from tradebus_common.bus import ensure_topology
from tradebus_common.config import BusConfig

from ..support.bus import collect, publish_event
from ..support.procs import ServiceProcess, service_env, write_config
from .test_processes import _wait_beats, _watch_heartbeats

pytestmark = pytest.mark.e2e
D = Decimal


async def _start(url: str, env: dict[str, str], tmp_path: Path) -> ServiceProcess:
    nc = await nats.connect(url)
    try:
        beats = await _watch_heartbeats(nc)
        proc = ServiceProcess("position-ledger", env, tmp_path).start()
        await _wait_beats(beats, ["position-ledger"], {"position-ledger": proc})
    finally:
        await nc.close()
    return proc


async def test_kill9_mid_batch_loses_and_doubles_no_fill(nats_server, nc, database, tmp_path: Path):
    # Large fetches: each batch is one transaction; the kill lands while batches are in
    # flight (committed and not yet acked, or not yet committed).
    env = service_env(nats_server.url, database, write_config(tmp_path / "tradebus.toml"))
    env["TRADEBUS__BUS__FETCH_BATCH"] = "200"
    env["TRADEBUS__BUS__ACK_WAIT_S"] = "5"  # redeliver the killed batch soon
    await ensure_topology(nc.jetstream(), BusConfig(url=nats_server.url), 30)
    n = 1000  # round trips: buy 0.02 then sell 0.02, 500 closed cycles
    fills = [
        ev.Fill(
            venue="paper",
            symbol="BTC/USDT",
            strategy="demo",
            client_order_id=f"c{i}",
            trade_id=f"k{i}",
            side=ev.Side.BUY if i % 2 == 0 else ev.Side.SELL,
            quantity=D("0.02"),
            price=D(100 + i % 7),
            fee=D("0.01"),
            fee_currency="USDT",
        )
        for i in range(n)
    ]
    for f in fills:
        await publish_event(nc, f)
    positions = await collect(nc, "trading.position.>")
    proc = await _start(nats_server.url, env, tmp_path)
    await positions.wait_for(lambda e: isinstance(e, ev.PositionChanged), timeout=30)
    proc.kill9()
    booked_before_kill = len({e.fill_id for e in positions.events})
    proc = await _start(nats_server.url, env, tmp_path)
    conn = await asyncpg.connect(database)
    try:
        # The batch in flight at the kill comes back only after ack_wait, possibly after the
        # later fills: wait until every fill has been booked, whatever the order.
        await positions.wait_for(
            lambda _: len({e.fill_id for e in positions.events}) >= n, timeout=60
        )
        rows = await conn.fetchval("SELECT count(*) FROM fills")
        distinct = await conn.fetchval("SELECT count(DISTINCT trade_id) FROM fills")
        cycles = await conn.fetchval("SELECT count(*) FROM position_cycles")
        pos = await conn.fetchrow("SELECT * FROM positions")
        seq = await conn.fetchval("SELECT stream_seq FROM processed_sequence")
    finally:
        await conn.close()
        proc.terminate()
    assert booked_before_kill < n, "the kill did not land mid-stream"
    assert rows == distinct == n and cycles == n // 2
    assert pos["quantity"] == 0 and pos["fill_count"] == n
    assert pos["fees_paid"] == D("0.01") * n
    expected = sum((D(100 + i % 7) * (-1 if i % 2 == 0 else 1) * D("0.02") for i in range(n)), D(0))
    assert pos["realized_pnl"] == expected - D("0.01") * n
    assert seq == n
