"""The trace crosses real process boundaries: four `tradebus run` processes, each exporting its
spans to a file of its own (telemetry.traces_exporter = "file"). Put together, the files hold one
trace from the signal to the ledger, each hop the child of the one before."""

from __future__ import annotations

import asyncio
import json
import time
from decimal import Decimal
from pathlib import Path

import nats
import pytest

from tradebus_common import events as ev

from ..support.bus import collect, publish_event, publish_raw
from ..support.procs import ServiceProcess, service_env, write_config
from .test_processes import _wait_beats, _watch_heartbeats

pytestmark = pytest.mark.e2e
HOPS = ["signal", "risk-gate", "execution-gateway", "position-ledger"]


def spans_of(tmp_path: Path) -> list[dict]:
    out = []
    for name in HOPS:
        path = tmp_path / f"spans-{name}.jsonl"
        if path.exists():
            out += [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    return out


def chain_to(spans: list[dict], leaf: dict) -> list[dict]:
    by_id = {s["span_id"]: s for s in spans}
    out = [leaf]
    while out[-1]["parent_span_id"] in by_id:
        out.append(by_id[out[-1]["parent_span_id"]])
    return out[::-1]


def full_chain(tmp_path: Path, signal_id: str) -> list[dict] | None:
    spans = spans_of(tmp_path)
    for s in spans:
        a = s["attributes"]
        if a.get("tradebus.event_type") == "Fill" and a.get("tradebus.correlation_id") == signal_id:
            hops = chain_to(spans, s)
            if s["service"] == "position-ledger" and len(hops) == 4:
                return hops
    return None


async def test_one_trace_across_four_processes(nats_server, database, tmp_path: Path):
    config = write_config(tmp_path / "tradebus.toml")
    base = service_env(nats_server.url, database, config)
    procs: dict[str, ServiceProcess] = {}
    nc = await nats.connect(nats_server.url)
    try:
        beats = await _watch_heartbeats(nc)
        for name in HOPS:
            env = {
                **base,
                "TRADEBUS__TELEMETRY__TRACES_EXPORTER": "file",
                "TRADEBUS__TELEMETRY__TRACES_FILE": str(tmp_path / f"spans-{name}.jsonl"),
            }
            procs[name] = ServiceProcess(name, env, tmp_path).start()
        await _wait_beats(beats, HOPS, procs)
        await publish_event(
            nc, ev.MarketTick(venue="paper", symbol="BTC/USDT", price=Decimal(20000))
        )
        positions = await collect(nc, "trading.position.>")
        await publish_raw(
            nc,
            "trading.signal.demo",
            {"id": "xproc-1", "strategy": "demo", "venue": "paper", "symbol": "BTC/USDT",
             "side": "buy", "quantity": "0.1"},
        )  # fmt: skip
        await positions.wait_for(lambda e: isinstance(e, ev.PositionChanged), timeout=30)
        deadline = time.monotonic() + 10  # the ledger's span is written just after its publish
        while (hops := full_chain(tmp_path, "xproc-1")) is None:
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
    finally:
        await nc.close()
        for p in procs.values():
            p.terminate()

    assert hops is not None, "no complete chain in " + str(spans_of(tmp_path))[:2000]
    assert [h["service"] for h in hops] == HOPS  # each from its own process's resource
    assert len({h["trace_id"] for h in hops}) == 1
    assert hops[0]["parent_span_id"] == ""
    for name in HOPS:  # each process's JSON lines name the service and its instance
        lines = [json.loads(x) for x in procs[name].log_path.read_text().splitlines()
                 if x.startswith("{")]  # fmt: skip
        [started] = [x for x in lines if x["msg"] == "service started"]
        assert started["service"] == name and started["instance"]
