"""Chaos harness (Q2): the six services as real processes on a real nats-server and a real
PostgreSQL of their own (so both can be restarted), a steady signal load, faults, and the
invariants checked from the durable record afterwards.

The verdict is read from the TRADING stream, the ledger's tables and the paper venue's own
record, never from what a subscriber happened to see: a restart of nats-server loses core
subscriptions, and the point is to prove the durable record is whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import nats
from nats.js import api

from tradebus_common import events as ev
from tradebus_common.cli.services import SERVICE_NAMES
from tradebus_common.cli.up import wait_healthy
from tradebus_common.codec import decode
from tradebus_common.errors import PermanentError
from tradebus_common.mirror import StreamMirror
from tradebus_common.stack.servers import NatsServer, Postgres, free_port

from ..support.emulator import CREDENTIALS_ENV, BinanceEmulator, venue_toml
from ..support.procs import ServiceProcess, service_env, write_config

CHAOS_CONFIG = """
[reconciler]
startup_gate = true  # a restarted gateway closes the gate until the reconciler reruns

[risk]
max_orders_per_window = 100000
max_orders_per_window_per_strategy = 100000
stale_market_data_s = 86400
"""
PRICE = Decimal("50000")
QTY = Decimal("0.001")
_ENC = msgspec.json.Encoder()
TERMINAL = (
    ev.OrderDenied,
    ev.OrderRejected,
    ev.OrderCanceled,
    ev.OrderExpired,
)


@dataclass
class ChaosStack:
    root: Path
    nats: NatsServer | None = None
    pg: Postgres | None = None
    procs: dict[str, ServiceProcess] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    emulator: BinanceEmulator | None = None

    async def start(self) -> None:
        self.emulator = await BinanceEmulator(
            balances={"USDT": Decimal("10000000"), "BTC": Decimal("0")}
        ).start()
        self.emulator.set_price("BTC/USDT", str(PRICE))
        self.nats = NatsServer(self.root / "nats", free_port()).start()
        self.pg = Postgres(Path(os.environ.get("TMPDIR", "/tmp")) / f"tbchaos-{free_port()}")
        self.pg.start()
        # the real ccxt client against the local Binance emulator, as venue "binance"
        venue = venue_toml(
            self.emulator, "binance", symbols=["BTC/USDT"], order_poll_interval_ms=200
        )
        extra = venue + CHAOS_CONFIG
        config = write_config(self.root / "tradebus.toml", extra)
        self.env = {**service_env(self.nats.url, self.pg.dsn, config), **CREDENTIALS_ENV}
        for name in SERVICE_NAMES:
            self.procs[name] = ServiceProcess(name, self.env, self.root).start()
        await self.healthy(list(SERVICE_NAMES))
        await self.gate_clean()

    async def gate_clean(self, timeout_s: float = 60) -> None:
        """An operator starts trading once the startup reconciliation is clean: wait on the
        gate key's own updates (a KV watch), with a deadline."""
        nc = await nats.connect(self.url)
        try:
            kv = await nc.jetstream().key_value("control")
            watcher = await kv.watch("reconcile.gate")

            async def opened() -> None:
                async for entry in watcher:
                    if entry is None or not entry.value:
                        continue  # the end of the initial values, or a delete
                    state = msgspec.json.decode(entry.value).get("state")
                    if state in ("CLEAN", "ACCEPTED"):
                        return

            try:
                await asyncio.wait_for(opened(), timeout_s)
            except TimeoutError as e:
                raise AssertionError("the startup gate never opened") from e
            finally:
                await watcher.stop()
        finally:
            await nc.close()

    async def healthy(self, names: list[str], timeout_s: float = 90) -> None:
        assert self.nats is not None
        missing = await wait_healthy(self.nats.url, tuple(names), timeout_s)
        if missing:
            tails = "\n".join(f"--- {n}\n{self.procs[n].log_tail(15)}" for n in missing)
            raise AssertionError(f"not healthy: {missing}\n{tails}")

    @property
    def url(self) -> str:
        assert self.nats is not None
        return self.nats.url

    async def kill9_and_restart(self, name: str) -> None:
        self.procs[name].kill9()
        self.procs[name] = ServiceProcess(name, self.env, self.root).start()

    def restart_nats(self) -> None:
        assert self.nats is not None
        self.nats.stop()
        self.nats.start()  # same port and store: streams, KV and durables survive

    def restart_postgres(self) -> None:
        assert self.pg is not None
        self.pg.stop()
        self.pg.start()

    async def pause(self, name: str, seconds: float) -> None:
        """SIGSTOP past ack_wait, then SIGCONT: its in-flight messages are redelivered to it
        (or to a peer) while it still holds them."""
        proc = self.procs[name].proc
        assert proc is not None
        os.kill(proc.pid, signal.SIGSTOP)
        try:
            await asyncio.sleep(seconds)  # ok-sleep: the fault itself lasts this long
        finally:
            os.kill(proc.pid, signal.SIGCONT)

    async def stop(self) -> None:
        for p in self.procs.values():
            p.terminate()
        if self.pg:
            self.pg.stop()
        if self.nats:
            self.nats.stop()
        if self.emulator:
            await self.emulator.stop()


class Load:
    """A steady stream of market-order signals; each is retried with its own id until the
    stream has acked it (a real client does the same), so every id sent is in the stream."""

    def __init__(self, url: str, prefix: str, rate: float, venue: str = "paper") -> None:
        self.url = url
        self.venue = venue
        self.prefix = prefix
        self.rate = rate
        self.sent: dict[str, float] = {}  # signal id -> wall time first sent
        self._acked = asyncio.Event()
        self._stop = asyncio.Event()
        self.fault_at = float("inf")
        self._recovered = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Load:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._task is not None
        await self._task

    def mark_fault(self) -> float:
        self.fault_at = time.time()
        self._recovered.clear()
        return self.fault_at

    async def recovered(self, timeout_s: float = 90) -> None:
        """Wait until a signal sent after the fault has been filled: the pipeline is back
        (a denial while the startup gate is shut does not count)."""
        await asyncio.wait_for(self._recovered.wait(), timeout_s)

    async def _on_fill(self, msg: Any) -> None:
        with contextlib.suppress(Exception):
            cid = decode(msg.data).correlation_id
            if self.sent.get(cid, 0.0) >= self.fault_at:
                self._recovered.set()

    async def reached(self, n: int, timeout_s: float = 60) -> None:
        """Wait until `n` more signals are in the stream than now."""
        target = len(self.sent) + n

        async def wait() -> None:
            while len(self.sent) < target:
                self._acked.clear()
                await self._acked.wait()

        await asyncio.wait_for(wait(), timeout_s)

    async def _run(self) -> None:
        nc = await nats.connect(self.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
        await nc.subscribe("trading.fill.>", cb=self._on_fill)  # re-made after a reconnect
        js = nc.jetstream(timeout=2)
        try:
            i = 0
            while not self._stop.is_set():
                sid = f"{self.prefix}-{i}"
                body = {
                    "id": sid, "strategy": "demo", "venue": self.venue, "symbol": "BTC/USDT",
                    "side": "buy" if i % 2 == 0 else "sell", "quantity": str(QTY),
                }  # fmt: skip
                self.sent.setdefault(sid, time.time())
                await _publish_until_acked(js, sid, _ENC.encode(body))
                self._acked.set()
                i += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), 1 / self.rate)
        finally:
            await nc.close()


async def _publish_until_acked(js: Any, sid: str, data: bytes) -> None:
    for _ in range(600):
        try:
            await js.publish("trading.signal.demo", data, headers={"Nats-Msg-Id": sid})
            return
        except Exception:  # server restarting: same id again, the stream dedups
            await asyncio.sleep(0.1)  # ok-sleep: a client's retry backoff
    raise AssertionError(f"signal {sid} never reached the stream")


async def set_price(url: str) -> None:
    nc = await nats.connect(url)
    try:
        for venue in ("paper", "binance"):
            tick = ev.MarketTick(venue=venue, symbol="BTC/USDT", price=PRICE)
            await nc.jetstream().publish(f"md.{venue}.BTC-USDT", msgspec.json.encode(tick))
    finally:
        await nc.close()


# --- reading the durable record ----------------------------------------------------------


@dataclass
class Record:
    events: list[tuple[float, Any]]  # (stream timestamp, event), in stream order
    signal_ids: set[str]  # ids of the signals in the stream (plain JSON, no event tag)
    first_seq: int
    last_seq: int
    messages: int


async def read_trading(url: str) -> Record:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        info = await js.stream_info("TRADING")
        sub = await js.pull_subscribe(
            "trading.>", stream="TRADING", config=api.ConsumerConfig(
                ack_policy=api.AckPolicy.NONE, deliver_policy=api.DeliverPolicy.ALL
            ),
        )  # fmt: skip
        events: list[tuple[float, Any]] = []
        signal_ids: set[str] = set()
        read = 0
        while read < info.state.messages:
            try:
                batch = await sub.fetch(500, timeout=2)
            except nats.errors.TimeoutError:
                break
            for msg in batch:
                read += 1
                if msg.subject.startswith("trading.signal."):
                    with contextlib.suppress(Exception):
                        signal_ids.add(msgspec.json.decode(msg.data)["id"])
                    continue
                with contextlib.suppress(PermanentError):
                    events.append((msg.metadata.timestamp.timestamp(), decode(msg.data)))
        await sub.unsubscribe()
        return Record(
            events, signal_ids, info.state.first_seq, info.state.last_seq, info.state.messages
        )
    finally:
        await nc.close()


@dataclass
class Verdict:
    scenario: str
    signals: int
    outcomes: dict[str, int]
    duplicates: int
    lost: int
    recover_s: float | None
    problems: list[str]


def outcomes_by_signal(record: Record) -> dict[str, list[tuple[float, str, Any]]]:
    """Terminal outcomes per signal id (= correlation id), deduplicated by event id."""
    seen: set[str] = set()
    filled: dict[str, Decimal] = defaultdict(Decimal)
    out: dict[str, list[tuple[float, str, Any]]] = defaultdict(list)
    for ts, e in record.events:
        if e.id in seen:
            continue
        seen.add(e.id)
        key = e.correlation_id
        if isinstance(e, ev.Fill):
            filled[key] += e.quantity
            if filled[key] >= QTY and not any(k == "filled" for _, k, _ in out[key]):
                out[key].append((ts, "filled", e))
        elif isinstance(e, TERMINAL):
            out[key].append((ts, type(e).__name__, e))
        elif type(e).__name__ == "SignalRejected":
            out[key].append((ts, "SignalRejected", e))
    return out


class Terminal:
    """Which signals have reached a terminal outcome, from every TRADING message as the
    stream delivers it (an ordered consumer from the start): the wait is on the messages."""

    def __init__(self, ids: list[str]) -> None:
        self.waiting = set(ids)
        self.done = asyncio.Event()
        if not self.waiting:
            self.done.set()

    async def on_msg(self, msg: Any) -> None:
        with contextlib.suppress(PermanentError):
            event = decode(msg.data)
            if isinstance(event, (ev.Fill, *TERMINAL)) or type(event).__name__ == "SignalRejected":
                self.waiting.discard(event.correlation_id)
                if not self.waiting:
                    self.done.set()


async def wait_all_terminal(url: str, ids: list[str], timeout_s: float) -> Record:
    """Wait until every signal has an outcome on the stream (bounded), then read the record."""
    nc = await nats.connect(url)
    try:
        terminal = Terminal(ids)
        sub = await nc.jetstream().subscribe(
            "trading.>", stream="TRADING", cb=terminal.on_msg, ordered_consumer=True,
            deliver_policy=api.DeliverPolicy.ALL,
        )  # fmt: skip
        with contextlib.suppress(TimeoutError):  # verify() names what never arrived
            await asyncio.wait_for(terminal.done.wait(), timeout_s)
        await sub.unsubscribe()
    finally:
        await nc.close()
    return await read_trading(url)


async def verify(
    stack: ChaosStack, scenario: str, load: Load, fault_at: float, timeout_s: float = 120
) -> Verdict:
    ids = list(load.sent)
    record = await wait_all_terminal(stack.url, ids, timeout_s)
    by_signal = outcomes_by_signal(record)
    problems: list[str] = []
    counts: dict[str, int] = defaultdict(int)
    duplicates = 0
    for sid in ids:
        kinds = [k for _, k, _ in by_signal.get(sid, [])]
        if not kinds:
            problems.append(f"{sid}: no terminal outcome")
            continue
        counts[kinds[0]] += 1
        if len(kinds) > 1:
            duplicates += 1
            problems.append(f"{sid}: {len(kinds)} terminal outcomes {kinds}")
    lost = len([i for i in ids if i not in record.signal_ids])
    if record.first_seq != 1 or record.messages != record.last_seq:
        problems.append(
            f"stream gap: first {record.first_seq}, {record.messages} of {record.last_seq}"
        )
    problems += await venue_vs_ledger(stack, record)
    problems += await cli_checks(stack)
    # Recovered: the first signal sent after the fault that was filled (a denial while the
    # startup gate is shut is an outcome, not a recovery).
    after = [
        ts
        for i in ids
        if load.sent[i] >= fault_at
        for ts, kind, _ in by_signal.get(i, [])
        if kind == "filled"
    ]
    recover = (min(after) - fault_at) if after else None
    return Verdict(scenario, len(ids), dict(counts), duplicates, lost, recover, problems)


async def tradebus(stack: ChaosStack, *args: str) -> tuple[int, str]:
    """A `tradebus` client command against this stack; (exit code, output)."""
    assert stack.pg is not None
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tradebus_common.cli.main", *args, "--nats", stack.url,
        env=stack.env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    return proc.returncode or 0, out.decode(errors="replace")


async def cli_checks(stack: ChaosStack) -> list[str]:
    """Reconciliation is clean and the audit hash chain verifies, as an operator sees them."""
    problems = []
    code, out = await tradebus(stack, "reconcile", "--json")
    if code != 0:
        problems.append(f"reconcile not clean (exit {code}): {_discrepancies(out)}")
    assert stack.pg is not None
    code, out = await tradebus(stack, "audit", "verify", "--dsn", stack.pg.dsn)
    if code != 0:
        problems.append(f"audit verify failed (exit {code}): {out[-400:]}")
    return problems


def _discrepancies(out: str) -> str:
    """The discrepancies of `tradebus reconcile --json` output, short."""
    found = []
    for line in out.splitlines():
        with contextlib.suppress(Exception):
            report = msgspec.json.decode(line)
            for d in report.get("discrepancies", []):
                found.append(
                    f"{report['venue']}: {d.get('kind')} {d.get('key')} -> {d.get('resolution')}"
                )
    return "; ".join(found) or out[-600:]


async def venue_vs_ledger(stack: ChaosStack, record: Record) -> list[str]:
    """No duplicate venue orders; the ledger holds exactly the venues' fills."""
    problems: list[str] = []
    approvals = {e.client_order_id for _, e in record.events if isinstance(e, ev.OrderApproved)}
    venue_fills = await paper_fills(stack.url) + emulator_fills(stack)
    by_order: dict[str, Decimal] = defaultdict(Decimal)
    for _venue, coid, _trade, qty in venue_fills:
        by_order[coid] += qty
    over = [c for c, q in by_order.items() if q > QTY]
    if over:
        problems.append(f"venue overfilled {len(over)} order(s): {over[:3]}")
    unknown = [c for c in by_order if c not in approvals]
    if unknown:
        problems.append(f"venue orders with no approval: {unknown[:3]}")
    if stack.emulator is not None:
        per_id: dict[str, int] = defaultdict(int)
        for order in stack.emulator.book.orders.values():
            per_id[order.client_order_id] += 1
        doubled = [c for c, n in per_id.items() if n > 1]
        if doubled:
            problems.append(f"duplicate orders at the exchange: {doubled[:3]}")
    assert stack.pg is not None
    conn = await asyncpg.connect(stack.pg.dsn)
    try:
        rows = await conn.fetch("SELECT venue, trade_id FROM fills")
    finally:
        await conn.close()
    ledger = {(r["venue"], r["trade_id"]) for r in rows}
    venue = {(v, t) for v, _, t, _ in venue_fills}
    announced = {(e.venue, e.trade_id) for _, e in record.events if isinstance(e, ev.Fill)}
    if announced != venue:
        problems.append(
            f"stream fills != venue fills: {len(venue - announced)} never announced, "
            f"{len(announced - venue)} not at the venue"
        )
    if ledger != venue:
        problems.append(
            f"ledger != venue fills: {len(venue - ledger)} missing, {len(ledger - venue)} extra"
        )
    return problems


def emulator_fills(stack: ChaosStack) -> list[tuple[str, str, str, Decimal]]:
    if stack.emulator is None:
        return []
    return [
        ("binance", order.client_order_id, str(t.id), t.qty)
        for order in stack.emulator.book.orders.values()
        for t in order.trades
    ]


async def paper_fills(url: str) -> list[tuple[str, str, str, Decimal]]:
    """Every fill in the paper venue's own order records (KV `paper_venue`), read through a
    complete copy of the bucket."""
    nc = await nats.connect(url)
    mirror = StreamMirror.of_bucket(nc.jetstream(), "paper_venue", lambda: 0)
    try:
        await mirror.start()
        out = []
        for found in mirror.values().values():
            raw = msgspec.json.decode(found.data or b"{}")
            if not isinstance(raw, dict) or "client_order_id" not in raw:
                continue
            for f in raw.get("fills", []):
                out.append(("paper", raw["client_order_id"], f["trade_id"], Decimal(f["quantity"])))
        return out
    finally:
        await mirror.stop()
        await nc.close()


def table(verdicts: list[Verdict]) -> str:
    rows = [
        f"{'scenario':<34}{'signals':>8}  {'outcomes':<34}{'dups':>5}{'lost':>5}  {'recover':>8}"
    ]
    for v in verdicts:
        outcomes = ", ".join(f"{k} {n}" for k, n in sorted(v.outcomes.items()))
        rec = f"{v.recover_s:.1f}s" if v.recover_s is not None else "-"
        rows.append(
            f"{v.scenario:<34}{v.signals:>8}  {outcomes:<34}{v.duplicates:>5}{v.lost:>5}  {rec:>8}"
        )
    return "\n".join(rows)
