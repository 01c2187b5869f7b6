"""B7 audit trail against real NATS and PostgreSQL: the hash chain verifies on the honest
stream and fails at the right sequence on a restored copy with one message altered or
missing; export writes exactly the window's messages; trace follows one signal."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import nats
import pytest

from tradebus_common import events as ev
from tradebus_common import subjects
from tradebus_common.bus import MSG_ID, Bus, ensure_topology
from tradebus_common.config import BusConfig, ReconcilerConfig
from tradebus_common.stack.servers import NatsServer, free_port
from tradebus_reconciler import export
from tradebus_reconciler.audit import CheckpointStore, read_stream, verify
from tradebus_reconciler.auditor import Chainer
from tradebus_reconciler.store import migrate

from ..support.bus import collect, publish_event, publish_raw, set_price

N = 12


def trading_sample(i: int) -> ev.Event:
    return ev.Alert(
        severity=ev.Severity.INFO, source="test", code=ev.AlertCode.RECON_MISMATCH, message=f"m{i}"
    )


@pytest.fixture
async def pool(database: str):
    p = await asyncpg.create_pool(database, min_size=1, max_size=2)
    await migrate(p)
    yield p
    await p.close()


@pytest.fixture
async def js(nc):
    await ensure_topology(nc.jetstream(), BusConfig(), 30)
    return nc.jetstream()


@pytest.fixture
def other_server(tmp_path: Path):
    server = NatsServer(tmp_path / "copy", free_port()).start()
    yield server
    server.stop()


async def fill_stream(nc, n: int = N) -> None:
    for i in range(n):
        await publish_event(nc, trading_sample(i))


async def chain_all(js, pool, every: int) -> None:
    cfg = ReconcilerConfig(audit_checkpoint_every_msgs=every, audit_checkpoint_interval_s=0)
    chainer = Chainer(js, CheckpointStore(pool), cfg)  # stores, does not publish
    await chainer.load()
    await chainer.catch_up()


async def restored_copy(src, server: NatsServer, alter: int = 0, drop: int = 0):
    """Copy TRADING to another server in order, changing or leaving out one message."""
    nc = await nats.connect(server.url)
    await ensure_topology(nc.jetstream(), BusConfig(), 30)
    async for msg in read_stream(src, subjects.STREAM_TRADING):
        if msg.seq == drop:
            continue
        payload = msg.payload.replace(b'"m', b'"M') if msg.seq == alter else msg.payload
        await nc.jetstream().publish(msg.subject, payload, headers={MSG_ID: msg.msg_id})
    return nc


async def test_verify_passes_on_the_honest_stream(nc, js, pool):
    await fill_stream(nc)
    await chain_all(js, pool, every=4)
    result = await verify(js, CheckpointStore(pool))
    assert result.ok, result
    assert (result.checked, result.checkpoints, result.last_good_seq) == (N, 3, N)


async def test_verify_from_a_sequence_starts_at_the_checkpoint_before_it(nc, js, pool):
    await fill_stream(nc)
    await chain_all(js, pool, every=4)
    result = await verify(js, CheckpointStore(pool), from_seq=6)
    assert result.ok and result.checked == N - 4  # from the checkpoint at 4


@pytest.mark.parametrize(
    ("alter", "drop", "every", "first_bad", "last_good"),
    [
        (6, 0, 1, 6, 5),  # one message altered: fails exactly there
        (0, 4, 1, 4, 3),  # one message missing: everything after moved up one sequence
        (5, 0, 3, 6, 3),  # checkpoints every 3: the first checkpoint after the change
    ],
)
async def test_verify_fails_at_the_first_checkpoint_after_the_tamper(
    nc, js, pool, other_server, alter, drop, every, first_bad, last_good
):
    await fill_stream(nc)
    await chain_all(js, pool, every=every)
    copy = await restored_copy(js, other_server, alter=alter, drop=drop)
    try:
        result = await verify(copy.jetstream(), CheckpointStore(pool))
    finally:
        await copy.close()
    assert not result.ok
    assert (result.first_bad_seq, result.last_good_seq) == (first_bad, last_good), result


async def test_a_message_appended_later_extends_the_chain_from_its_checkpoint(nc, js, pool):
    await fill_stream(nc, 3)
    await chain_all(js, pool, every=1)
    await fill_stream(nc, 2)
    await chain_all(js, pool, every=1)  # resumes from the stored checkpoint at 3
    result = await verify(js, CheckpointStore(pool))
    assert result.ok and result.last_good_seq == 5 and result.checkpoints == 5


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
    return proc.returncode or 0, out.decode(), err.decode()


async def test_audit_verify_command_exit_codes(nc, js, pool, database, nats_server, other_server):
    await fill_stream(nc)
    await chain_all(js, pool, every=2)
    code, out, err = await _cli("audit", "verify", "--nats", nats_server.url, "--dsn", database)
    assert code == 0, err
    assert "audit chain OK" in out
    copy = await restored_copy(js, other_server, alter=7)
    await copy.close()
    code, out, err = await _cli(
        "audit", "verify", "--nats", other_server.url, "--dsn", database, "--json"
    )
    assert code == 3
    assert json.loads(out)["first_bad_seq"] == 8


async def test_the_reconciler_publishes_checkpoints_that_verify(stack, nc, config, database):
    import msgspec

    cfg = msgspec.structs.replace(
        config, reconciler=ReconcilerConfig(audit_checkpoint_every_msgs=3)
    )
    checkpoints = await collect(nc, subjects.AUDIT_CHECKPOINT)
    await stack.start("reconciler", config=cfg)
    await fill_stream(nc, 7)
    [cp, *_] = await checkpoints.wait_for(lambda e: isinstance(e, ev.AuditCheckpoint), count=2)
    assert cp.stream == "TRADING" and len(cp.chain_hash) == 64
    p = await asyncpg.create_pool(database, min_size=1, max_size=1)
    try:
        result = await verify(nc.jetstream(), CheckpointStore(p))
    finally:
        await p.close()
    assert result.ok and result.checkpoints >= 2


# --- export -----------------------------------------------------------------------------


async def test_export_round_trip_counts_the_window(nc, js):
    await fill_stream(nc, 3)  # before the window
    await fill_stream(nc, 5)
    await publish_event(nc, ev.ControlCommand(action=ev.ControlAction.RECONCILE))
    await fill_stream(nc, 2)  # after the window
    stored = [m async for m in read_stream(js, subjects.STREAM_TRADING)]
    since, until = stored[3].time, stored[8].time  # the window: the stream's own timestamps
    assert since is not None and until is not None

    in_window = [
        m
        async for m in read_stream(js, subjects.STREAM_TRADING)
        if m.time is not None and since <= m.time <= until
    ]
    assert len(in_window) >= 6  # messages 4..9 (more only if two shared a nanosecond)
    out = io.StringIO()
    progress: list[int] = []
    n = await export.export(
        js, out, "json", since=since, until=until, progress=lambda done, seq: progress.append(done)
    )
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert n == len(lines) == len(in_window)
    assert [r["seq"] for r in lines] == [m.seq for m in in_window]
    assert lines[-1]["event"]["type"] == "control.command" and progress

    out = io.StringIO()
    n = await export.export(js, out, "csv", subject="trading.alert.>", since=since, until=until)
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    alerts = [m for m in in_window if m.subject.startswith("trading.alert.")]
    assert rows[0] == export.CSV_COLUMNS and n == len(rows) - 1 == len(alerts) >= 5
    assert all(r[4] == "alert" for r in rows[1:])


async def test_audit_export_command_writes_a_file(nc, js, nats_server, tmp_path):
    await fill_stream(nc, 4)
    target = tmp_path / "audit.csv"
    code, _, err = await _cli(
        "audit",
        "export",
        "--nats",
        nats_server.url,
        "--format",
        "csv",
        "--out",
        str(target),
        "--since",
        (datetime.now(UTC) - timedelta(minutes=5)).isoformat(),
    )
    assert code == 0, err
    assert "exported 4 message(s)" in err
    assert len(target.read_text().splitlines()) == 5


# --- trace ------------------------------------------------------------------------------


async def test_trace_prints_the_causal_chain_of_one_signal_in_order(stack, nc):
    await stack.start("signal", "risk-gate", "execution-gateway", "position-ledger")
    await set_price(nc, "paper", "BTC/USDT", "20000")
    positions = await collect(nc, "trading.position.>")
    body = {
        "id": "trace-me",
        "strategy": "demo",
        "venue": "paper",
        "symbol": "BTC/USDT",
        "side": "buy",
        "quantity": "0.1",
    }
    await publish_raw(nc, "trading.signal.demo", body, headers={MSG_ID: "trace-me"})
    other = {**body, "id": "not-me"}
    await publish_raw(nc, "trading.signal.demo", other, headers={MSG_ID: "not-me"})
    await positions.wait_for(lambda e: isinstance(e, ev.PositionChanged), count=2)

    chain = await export.trace(nc.jetstream(), "trace-me")
    types = [r["event"].get("type") for r in chain]
    for expected in (
        "order.intent",
        "order.approved",
        "order.submitted",
        "order.filled",
        "position.changed",
    ):
        assert expected in types, types
    assert chain[0]["event"]["id"] == "trace-me"  # the signal itself first
    assert (
        types.index("order.intent")
        < types.index("order.approved")
        < types.index("order.filled")
        < types.index("position.changed")
    )
    assert [r["seq"] for r in chain] == sorted(r["seq"] for r in chain)
    assert all("not-me" not in json.dumps(r["event"]) for r in chain)
    assert "order.filled" in export.trace_line(chain[types.index("order.filled")])


async def test_a_stream_shorter_than_its_checkpoints_raises_a_critical_alert(
    nc, js, pool, other_server
):
    await fill_stream(nc, 5)
    await chain_all(js, pool, every=1)
    restored = await nats.connect(other_server.url)  # an empty TRADING: the trail is gone
    try:
        cfg = BusConfig(url=other_server.url)
        await ensure_topology(restored.jetstream(), cfg, 30)
        alerts = await collect(restored, "trading.alert.>")
        chainer = Chainer(
            restored.jetstream(),
            CheckpointStore(pool),
            ReconcilerConfig(),
            Bus(restored, cfg, "reconciler"),
        )
        await chainer.load()
        await chainer.catch_up()
        [alert] = await alerts.wait_for(lambda a: a.code is ev.AlertCode.AUDIT_CHAIN_BROKEN)
        assert alert.severity is ev.Severity.CRITICAL and "checkpoints reach 5" in alert.message
    finally:
        await restored.close()
