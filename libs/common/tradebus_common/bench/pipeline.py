"""Pipeline measurements through real service processes: latency, throughput, halt, ingest."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import msgspec
import nats
from nats.aio.client import Client as NATS

from .. import events as ev
from ..codec import decode, encode
from ..errors import PermanentError
from .figures import Figure, percentile

HOPS = [
    ("signal", "trading.signal.>"),
    ("intent", "trading.intent.>"),
    ("decision", "trading.order.approved.>"),
    ("fill", "trading.fill.>"),
    ("ledger", "trading.position.>"),
]


class Arrivals:
    """When each stage's event for a correlation id was seen (core NATS subscriptions)."""

    def __init__(self) -> None:
        self.seen: dict[str, dict[str, float]] = {}
        self.changed = asyncio.Event()

    def handler(self, stage: str) -> Callable[[Any], Any]:
        async def on_msg(msg: Any) -> None:
            now = time.perf_counter()
            try:
                event = decode(msg.data)
            except PermanentError:
                return
            key = getattr(event, "correlation_id", "") or event.id
            self.seen.setdefault(key, {}).setdefault(stage, now)
            if stage == "ledger":
                self.changed.set()

        return on_msg

    def completed(self, ids: list[str]) -> int:
        return sum(1 for i in ids if "ledger" in self.seen.get(i, {}))

    async def wait_all(self, ids: list[str], timeout_s: float) -> bool:
        deadline = time.perf_counter() + timeout_s
        while self.completed(ids) < len(ids):
            left = deadline - time.perf_counter()
            if left <= 0:
                return False
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), left)
            except TimeoutError:
                return False
        return True


async def watch(nc: NATS) -> Arrivals:
    arrivals = Arrivals()
    for stage, subject in HOPS[1:]:
        await nc.subscribe(subject, cb=arrivals.handler(stage))
    await nc.flush()
    return arrivals


_SIGNAL = msgspec.json.Encoder()


def signal_bytes(sid: str, side: str) -> bytes:
    return _SIGNAL.encode(
        {
            "id": sid,
            "strategy": "bench",
            "venue": "paper",
            "symbol": "BTC/USDT",
            "side": side,
            "quantity": "0.001",
        }
    )


async def publish_paced(
    nc: NATS, prefix: str, rate: float, seconds: float, sent_at: dict[str, float]
) -> list[str]:
    """Publish `rate` signals a second for `seconds`, on a schedule (no coordinated omission:
    latency is measured from the scheduled send time)."""
    js = nc.jetstream()
    n = int(rate * seconds)
    ids = [f"{prefix}-{i}" for i in range(n)]
    start = time.perf_counter()
    for i, sid in enumerate(ids):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        sent_at[sid] = due
        await js.publish_async(
            "trading.signal.bench",
            signal_bytes(sid, "buy" if i % 2 else "sell"),
            headers={"Nats-Msg-Id": sid},
        )
    await js.publish_async_completed()
    return ids


async def set_price(nc: NATS) -> None:
    tick = ev.MarketTick(venue="paper", symbol="BTC/USDT", price=Decimal("50000"))
    await nc.jetstream().publish("md.paper.BTC-USDT", encode(tick))


async def end_to_end(url: str, rate: float, seconds: float) -> dict[str, Figure]:
    nc = await nats.connect(url)
    try:
        await set_price(nc)
        arrivals = await watch(nc)
        sent: dict[str, float] = {}
        ids = await publish_paced(nc, "e2e", rate, seconds, sent)
        ok = await arrivals.wait_all(ids, 60)
        lat = [
            (arrivals.seen[i]["ledger"] - sent[i]) * 1000
            for i in ids
            if "ledger" in arrivals.seen.get(i, {})
        ]
        figs = {
            "e2e_p50": Figure("signal -> ledger commit p50", percentile(lat, 50), "ms", target=3),
            "e2e_p99": Figure("signal -> ledger commit p99", percentile(lat, 99), "ms", target=15),
            "e2e_p999": Figure("signal -> ledger commit p99.9", percentile(lat, 99.9), "ms"),
        }
        figs.update(hop_costs(arrivals, sent, ids))
        if not ok:
            figs["e2e_p50"].note = f"only {len(lat)}/{len(ids)} completed"
        return figs
    finally:
        await nc.close()


def hop_costs(arrivals: Arrivals, sent: dict[str, float], ids: list[str]) -> dict[str, Figure]:
    figs = {}
    stages = ["signal"] + [s for s, _ in HOPS[1:]]
    for prev, stage in zip(stages, stages[1:], strict=False):
        samples = []
        for i in ids:
            seen = {"signal": sent[i], **arrivals.seen.get(i, {})}
            if prev in seen and stage in seen:
                samples.append((seen[stage] - seen[prev]) * 1000)
        if samples:
            figs[f"hop_{stage}"] = Figure(
                f"hop {prev} -> {stage} p50", percentile(samples, 50), "ms"
            )
    return figs


async def sustained(url: str, rates: list[float], seconds: float) -> Figure:
    """The highest rate at which every signal reached the ledger within a short grace."""
    nc = await nats.connect(url)
    best, tried = 0.0, []
    try:
        await set_price(nc)
        arrivals = await watch(nc)
        for step, rate in enumerate(rates):
            sent: dict[str, float] = {}
            ids = await publish_paced(nc, f"load{step}", rate, seconds, sent)
            kept_up = await arrivals.wait_all(ids, max(2.0, seconds * 0.2))
            tried.append(f"{rate:.0f}/s {'ok' if kept_up else 'fell behind'}")
            if not kept_up:
                await arrivals.wait_all(ids, 120)  # drain before reporting
                break
            best = rate
    finally:
        await nc.close()
    return Figure(
        "sustained signals (kept up)",
        best,
        "signals/s",
        target=3000,
        higher_is_better=True,
        note="; ".join(tried),
    )


async def halt_propagation(url: str, rounds: int) -> Figure:
    nc = await nats.connect(url)
    lat = []
    try:
        state: asyncio.Queue[ev.TradingStateChanged] = asyncio.Queue()

        async def on_state(msg: Any) -> None:
            await state.put(decode(msg.data, ev.TradingStateChanged))

        await nc.subscribe("trading.risk.state", cb=on_state)
        await nc.flush()
        js = nc.jetstream()
        for i in range(rounds):
            t0 = time.perf_counter()
            await js.publish("trading.control.halt", b"bench halt %d" % i)
            await _wait_state(state, ev.TradingState.HALTED)
            lat.append((time.perf_counter() - t0) * 1000)
            await js.publish("trading.control.resume", b'{"operator": "bench"}')
            await _wait_state(state, ev.TradingState.ACTIVE)
    finally:
        await nc.close()
    return Figure("halt -> risk-gate HALTED p99", percentile(lat, 99), "ms", target=50)


async def _wait_state(queue: asyncio.Queue, want: ev.TradingState) -> None:
    while (await asyncio.wait_for(queue.get(), 30)).state is not want:
        pass


async def ledger_ingest(url: str, n: int) -> Figure:
    nc = await nats.connect(url)
    done = asyncio.Event()
    count = 0

    async def on_position(msg: Any) -> None:
        nonlocal count
        count += 1
        if count >= n:
            done.set()

    try:
        await nc.subscribe("trading.position.bench-ingest", cb=on_position)
        await nc.flush()
        js = nc.jetstream()
        t0 = time.perf_counter()
        for i in range(n):
            fill = ev.Fill(
                account="bench-ingest",
                venue="paper",
                symbol="ETH/USDT",
                strategy="bench",
                client_order_id=f"c{i}",
                trade_id=f"ingest-{i}",
                side=ev.Side.BUY,
                quantity=Decimal("0.01"),
                price=Decimal("3000"),
            )
            await js.publish_async(
                "trading.fill.paper.ETH-USDT", encode(fill), headers={"Nats-Msg-Id": fill.id}
            )
        await js.publish_async_completed()
        await asyncio.wait_for(done.wait(), 300)
        return Figure(
            "ledger ingest",
            n / (time.perf_counter() - t0),
            "fills/s",
            target=10000,
            higher_is_better=True,
        )
    finally:
        await nc.close()
