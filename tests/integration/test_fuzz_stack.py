"""Q1 at the stack: a storm of hostile messages on every input subject, against all services
in-process on real NATS + PostgreSQL. Afterwards:

* no service crashed (every service task alive, no HEARTBEAT_MISSING) or lost its connection;
* every message ended in a dead letter (MessageDeadLettered, with its reason code) or with a
  reason event (OrderDenied, TradingStateChanged, ...), or was acked with nothing to do
  (cancel-all with nothing open); every consumer is drained: nothing stuck, nothing lost;
* the ledger is unchanged: no hostile fill booked, no position moved;
* a valid signal still flows to a position.

Default size keeps `make test` fast. For the full table:
    TRADEBUS_FUZZ_N=5000 pytest tests/integration/test_fuzz_stack.py -s
(TRADEBUS_FUZZ_SEED picks another storm). docs/reliability.md records a run.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import msgspec
import nats
import pytest

from tradebus_common import subjects
from tradebus_common.control import parse_control
from tradebus_common.events import (
    AlertCode,
    DenyReason,
    Fill,
    OrderApproved,
    OrderIntent,
    StrategyCommand,
)

from ..support.bus import collect, publish_raw, set_price
from ..support.hostile import body_of, broken, garbage

SERVICES = (
    "alerting",
    "signal",
    "risk-gate",
    "execution-gateway",
    "position-ledger",
    "reconciler",
)
N = int(os.environ.get("TRADEBUS_FUZZ_N", "240"))
SEED = int(os.environ.get("TRADEBUS_FUZZ_SEED", "20261121"))

# kind -> (share of the storm, subjects it is published on)
SUBJECTS: dict[str, tuple[int, list[str]]] = {
    "signal": (5, ["trading.signal.demo", "trading.signal.off", "trading.signal.\u202e\x00"]),
    "intent": (3, ["trading.intent.demo", "trading.intent.d\u0435mo"]),
    "approval": (3, [subjects.approved("paper")]),
    "fill": (4, ["trading.fill.paper.BTC-USDT", "trading.fill.\u0412\u0422\u0421.x"]),
    "tick": (2, ["md.paper.BTC-USDT"]),
    "command": (
        1,
        [subjects.strategy_command("demo"), "trading.strategy.\u0412\u0422\u0421.command"],
    ),
    "halt": (1, [subjects.CONTROL_HALT]),
    "resume": (1, [subjects.CONTROL_RESUME]),
    "reduce": (1, [subjects.CONTROL_REDUCE]),
    "mode": (1, [subjects.CONTROL_MODE]),
    "stage": (1, [subjects.CONTROL_STAGE]),
    "cancel-all": (1, [subjects.CONTROL_CANCEL_ALL]),
    "reconcile": (1, [subjects.CONTROL_RECONCILE]),
    "unknown": (1, ["trading.control.\u202ehalt", "trading.nonsense.x", "trading.control.HALT"]),
}
CONTROL_KINDS = {"halt", "resume", "reduce", "mode", "stage", "cancel-all", "reconcile"}
# Kinds whose valid-but-harmless bodies may be acked with nothing to publish.
NO_OP_OK = {"cancel-all", "reconcile"}
TEMPLATES: dict[str, dict[str, Any]] = {
    "signal": {
        "id": "",
        "strategy": "demo",
        "venue": "paper",
        "symbol": "BTC/USDT",
        "side": "buy",
        "quantity": "0.1",
    },
    "intent": {**body_of(OrderIntent), "strategy": "demo", "venue": "paper", "symbol": "ETH/USDT"},
    "approval": {**body_of(OrderApproved), "venue": "paper", "symbol": "BTC/USDT"},
    "fill": {**body_of(Fill), "venue": "paper", "symbol": "BTC/USDT", "strategy": "demo"},
    "tick": {"type": "md.tick", "venue": "paper", "symbol": "BTC/USDT", "price": "20000"},
    # only ever `status` (or broken): a storm that stopped the demo strategy would be valid
    "command": {**body_of(StrategyCommand), "strategy": "demo", "action": "status"},
}
CONTROL_BODIES = [
    b"",
    b"fuzz",
    b'{"operator": "fuzz", "scope": "\\u202e*"}',
    b'{"operator": "\\u0000", "reason": "x"}',
    b'{"operator": "fuzz", "target": "\\u0000"}',
    b'{"operator": "fuzz", "target": ">"}',
    b'{"operator": "' + b"o" * 5000 + b'"}',
    b'{"scope": "' + b"s" * 500 + b'"}',
]


@dataclass
class Sent:
    kind: str
    subject: str
    msg_id: str
    seq: int
    ids: set[str]  # ids an outcome event may name as its cause
    body: bytes = field(repr=False, default=b"")
    repeat_of: str = ""  # a command id its body gave, also given by another message


@dataclass
class Outcomes:
    """Everything the stack published, indexed as it arrives (core subscription)."""

    dead: dict[tuple[str, int], list[str]] = field(default_factory=lambda: defaultdict(list))
    caused: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    alerts: Counter[str] = field(default_factory=Counter)
    retried: Counter[str] = field(default_factory=Counter)  # MAX_DELIVERIES: what failed
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def on_msg(self, msg: Any) -> None:
        try:
            head = _head.decode(msg.data)
        except (msgspec.DecodeError, RecursionError):  # the storm itself passes by here too
            return
        if head.type == "deadletter":
            self.dead[(head.subject, head.stream_seq)].append(f"{head.service}:{head.reason}")
            if head.reason == "MAX_DELIVERIES":
                self.retried[f"{head.service}: {head.error[:120]}"] += 1
        elif head.type == "alert":
            self.alerts[head.code] += 1
        if head.causation_id:
            self.caused[head.causation_id].append(head.type)
        self.changed.set()

    def of(self, sent: Sent) -> str:
        if not sent.seq:
            return "refused at publish (max_payload)"
        dead = self.dead.get((sent.subject, sent.seq))
        if dead:
            return "dead-lettered " + "/".join(sorted({d.split(":")[1] for d in dead}))
        for i in sent.ids:
            if self.caused.get(i):
                return "reason " + "/".join(sorted(set(self.caused[i]) - {"alert"}) or ["alert"])
        if sent.repeat_of and self.caused.get(sent.repeat_of):
            return "repeat of an earlier message's id"
        return ""


class _Head(msgspec.Struct):
    type: str = ""
    causation_id: str = ""
    subject: str = ""
    stream_seq: int = 0
    service: str = ""
    reason: str = ""
    code: str = ""
    error: str = ""


_head = msgspec.json.Decoder(_Head)


def storm_body(kind: str, i: int, rng: random.Random) -> bytes:
    if kind in CONTROL_KINDS:
        return rng.choice([*CONTROL_BODIES, garbage(rng)]) if rng.random() < 0.8 else garbage(rng)
    if kind == "unknown" or kind not in TEMPLATES or rng.random() < 0.35:
        return garbage(rng)
    template = {**TEMPLATES[kind], "id": f"fz-{kind}-{i}"}
    return broken(kind, template, rng)


async def publish_storm(nc: nats.NATS, rng: random.Random) -> list[Sent]:
    js = nc.jetstream()
    kinds = [k for k, (share, _) in SUBJECTS.items() for _ in range(share)]
    sent: list[Sent] = []
    for i in range(N):
        kind = kinds[i % len(kinds)]
        subject = rng.choice(SUBJECTS[kind][1])
        body, msg_id = storm_body(kind, i, rng), f"fz-msg-{i}"
        try:
            seq = (await js.publish(subject, body, headers={"Nats-Msg-Id": msg_id})).seq
        except nats.errors.MaxPayloadError:
            seq = 0  # over the server's max_payload (1 MB): refused, no service sees it
        sent.append(Sent(kind, subject, msg_id, seq, {msg_id, f"fz-{kind}-{i}"}, body))
    _add_own_ids(sent)
    return sent


def _add_own_ids(sent: list[Sent]) -> None:
    """A body may carry its own `id` (a control command's, or a hostile string the storm put
    there), which then names the events it causes. An id given by one message identifies it;
    one given by several (the same fixed body sent twice) is a repeat, deduplicated."""
    ids = {s.msg_id: _own_id(s) for s in sent}
    given = Counter(ids.values())
    for s in sent:
        own = ids[s.msg_id]
        if own and given[own] == 1:
            s.ids.add(own)
        elif own:
            s.repeat_of = own


def _own_id(sent: Sent) -> str:
    if sent.kind == "unknown":  # no consumer: nothing it causes
        return ""
    if sent.kind in CONTROL_KINDS:
        return _command_id(sent.body, sent.subject, sent.msg_id)
    try:
        return _id_only.decode(sent.body).id
    except (msgspec.DecodeError, RecursionError):
        return ""


class _IdOnly(msgspec.Struct):
    id: str = ""


_id_only = msgspec.json.Decoder(_IdOnly)


def _command_id(body: bytes, subject: str, msg_id: str) -> str:
    """The id the risk-gate gives the command (its events name it as their cause)."""
    try:
        return parse_control(body, subject, msg_id).id
    except Exception:
        return msg_id


async def wait_until(cond: Any, outcomes: Outcomes, timeout: float) -> None:
    """Re-check `cond` each time an event arrives, until it holds or the time is up."""
    deadline = time.monotonic() + timeout
    while not cond():
        left = deadline - time.monotonic()
        if left <= 0:
            return
        outcomes.changed.clear()
        try:
            await asyncio.wait_for(outcomes.changed.wait(), min(left, 1.0))
        except TimeoutError:
            pass


async def drained(js: Any, consumers: list[tuple[str, str]], timeout: float) -> dict[str, Any]:
    """Poll each durable until nothing is pending or unacked (a condition, with a deadline)."""
    deadline = time.monotonic() + timeout
    while True:
        infos = {d: await js.consumer_info(s, d) for s, d in consumers}
        busy = {d: (i.num_pending, i.num_ack_pending) for d, i in infos.items()}
        if all(v == (0, 0) for v in busy.values()) or time.monotonic() > deadline:
            return busy
        await asyncio.sleep(0.1)  # ok-sleep: no event announces a drained consumer; polled


async def ledger_rows(dsn: str) -> tuple[int, int, Any]:
    conn = await asyncpg.connect(dsn)
    try:
        fills = await conn.fetchval("SELECT count(*) FROM fills")
        positions = await conn.fetchval("SELECT count(*) FROM positions")
        total = await conn.fetchval("SELECT coalesce(sum(abs(quantity)), 0) FROM positions")
        return fills, positions, total
    finally:
        await conn.close()


def table(sent: list[Sent], outcomes: Outcomes) -> tuple[str, dict[str, Counter[str]]]:
    per: dict[str, Counter[str]] = defaultdict(Counter)
    for s in sent:
        idle = "kept in the stream, no consumer" if s.kind == "unknown" else "acked, nothing to do"
        per[s.kind][outcomes.of(s) or idle] += 1
    lines = ["| input | subject(s) | tried | outcomes |", "|---|---|---|---|"]
    for kind, (_, subs) in SUBJECTS.items():
        got = per.get(kind, Counter())
        shown = ", ".join(f"{k}: {v}" for k, v in got.most_common())
        names = ", ".join(f"`{ascii(x)[1:-1]}`" for x in subs)
        lines.append(f"| {kind} | {names} | {sum(got.values())} | {shown} |")
    return "\n".join(lines), per


@pytest.mark.timeout(600)
async def test_hostile_storm_on_every_input_subject(stack, nc, config):
    await stack.start(*SERVICES)
    await set_price(nc, "paper", "BTC/USDT", "20000")
    outcomes = Outcomes()
    await nc.subscribe("trading.>", cb=outcomes.on_msg)
    await nc.flush()
    before = await ledger_rows(config.database.dsn)
    started = time.monotonic()

    sent = await publish_storm(nc, random.Random(SEED))
    must_end = [s for s in sent if s.kind not in NO_OP_OK and s.kind != "unknown"]
    await wait_until(lambda: all(outcomes.of(s) for s in must_end), outcomes, 60 + N / 20)
    consumers = [
        (lp.sub.stream, lp.sub.durable) for name in SERVICES for lp in stack.runner(name).loops
    ]
    busy = await drained(nc.jetstream(), consumers, 60)
    elapsed = time.monotonic() - started

    text, per = table(sent, outcomes)
    print(f"\n{len(sent)} hostile messages (seed {SEED}) handled in {elapsed:.1f} s\n{text}")
    print("dead-lettered after retries:", dict(outcomes.retried))
    # No service died, none stopped heartbeating, no consumer holds anything back.
    for name in SERVICES:
        assert not stack.running[name][1].done(), f"{name} stopped"
        assert stack.runner(name).ctx.bus.reconnects() == 0, f"{name} lost its connection"
    assert outcomes.alerts[AlertCode.HEARTBEAT_MISSING] == 0
    assert all(v == (0, 0) for v in busy.values()), busy
    # Every message that has a consumer ended somewhere with a reason.
    silent = [(s.kind, s.subject, s.seq, s.body[:300]) for s in must_end if not outcomes.of(s)]
    assert not silent, silent[:10]
    # Not one hostile fill booked, not one position moved.
    assert await ledger_rows(config.database.dsn) == before
    assert per["fill"] and all(k.startswith(("dead-lettered", "refused")) for k in per["fill"])
    await _healthy_after_the_storm(nc)


async def _healthy_after_the_storm(nc: nats.NATS) -> None:
    """Whatever the storm latched (halts, reducing), an operator's resume clears it and a
    valid signal trades again."""
    states = await collect(nc, subjects.RISK_STATE)
    await publish_raw(nc, subjects.CONTROL_RESUME, {"operator": "fuzz-test", "reason": "after"})
    await states.wait_for(lambda e: getattr(e, "state", None) == "ACTIVE", timeout=20)
    await set_price(nc, "paper", "BTC/USDT", "20000")
    positions = await collect(nc, "trading.position.>")
    good = {**TEMPLATES["signal"], "id": "after-the-storm"}
    await publish_raw(nc, subjects.signal("demo"), good)
    await positions.wait_for(lambda e: e.correlation_id == "after-the-storm", timeout=30)


async def test_an_outsiders_fill_is_booked_flagged_and_announced(stack, nc, config):
    """Without auth anyone may publish a well-formed Fill (with auth on, only the gateway and
    the reconciler may). The ledger books it, as it would a venue's fill it never ordered,
    flags it unknown_order/unknown_strategy and raises UNKNOWN_FILL. Hostile names in it
    make safe subject tokens: a CR/LF in `account` once made its PositionChanged unsendable."""
    await stack.start("position-ledger")
    alerts = await collect(nc, "trading.alert.>")
    positions = await collect(nc, "trading.position.>")
    fill = {
        **TEMPLATES["fill"],
        "id": "outsider-1",
        "strategy": "\u202eomed",
        "account": "acct\r\nPUB trading.control.halt 0\r\n",
        "client_order_id": "never-approved",
        "trade_id": "outsider-1",
    }
    await publish_raw(nc, "trading.fill.paper.BTC-USDT", fill)
    await positions.wait_for(lambda e: e.causation_id == "outsider-1" or e.fill_id)
    subject = positions.raw[-1][0]
    assert subject == "trading.position.acct__PUB_trading_control_halt_0__"
    [alert] = await alerts.wait_for(lambda e: e.code is AlertCode.UNKNOWN_FILL)
    assert set(alert.context["flags"].split(",")) == {"unknown_strategy", "unknown_order"}
    conn = await asyncpg.connect(config.database.dsn)
    try:
        flags = await conn.fetchval("SELECT flags FROM fills WHERE trade_id = 'outsider-1'")
    finally:
        await conn.close()
    assert set(flags.split(",")) == {"unknown_strategy", "unknown_order"}


async def test_hostile_names_never_break_a_services_connection(stack, nc, config):
    """A 5,000-character account made the ledger publish on a subject past the server's 4 KB
    protocol line: the server closed the ledger's connection, on every redelivery. A
    homoglyph symbol in an intent made the risk-gate's protection lock key invalid for KV
    (InvalidKeyError: retried, then dead-lettered instead of denied), and the signal service's
    exit-set key for that denial too. Both names now become short, safe tokens."""
    await stack.start("position-ledger", "risk-gate", "signal")
    positions = await collect(nc, "trading.position.>")
    denied = await collect(nc, "trading.order.denied.>")
    dead = await collect(nc, "trading.deadletter.>")
    fill = {**TEMPLATES["fill"], "id": "long-1", "account": "a" * 5000, "trade_id": "long-1"}
    await publish_raw(nc, "trading.fill.paper.BTC-USDT", fill)
    [changed] = await positions.wait_for(lambda e: e.fill_id)
    assert len(positions.raw[-1][0]) < 200 and changed.account == "a" * 5000
    intent = {**TEMPLATES["intent"], "id": "homoglyph-1", "symbol": "\u0412\u0422\u0421/USDT"}
    intent.pop("algo")
    await publish_raw(nc, "trading.intent.demo", intent)
    [denial] = await denied.wait_for(lambda e: e.intent_id == "homoglyph-1")
    assert denial.reason is DenyReason.NO_MARKET_PRICE
    consumers = [
        (lp.sub.stream, lp.sub.durable) for n in stack.running for lp in stack.runner(n).loops
    ]
    assert all(v == (0, 0) for v in (await drained(nc.jetstream(), consumers, 20)).values())
    assert not dead.events
    for name in ("position-ledger", "risk-gate", "signal"):
        assert stack.runner(name).ctx.bus.reconnects() == 0, f"{name} lost its connection"
