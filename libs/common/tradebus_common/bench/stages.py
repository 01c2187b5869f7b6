"""One service at a time: the execution-gateway alone (approvals in, fills out) and the
ledger's replay (`tradebus replay`), each next to the raw JetStream rates of the same run."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from decimal import Decimal
from typing import Any

import nats

from .. import events as ev
from ..codec import decode, encode
from ..errors import PermanentError
from ..ids import client_order_id
from .figures import Figure, percentile
from .pipeline import set_price


def _approval(prefix: str, i: int) -> ev.OrderApproved:
    intent_id = f"{prefix}-{i}"
    return ev.OrderApproved(
        id=f"{intent_id}-approved",
        correlation_id=intent_id,
        intent_id=intent_id,
        strategy="bench",
        venue="paper",
        symbol="BTC/USDT",
        side=ev.Side.BUY if i % 2 else ev.Side.SELL,
        quantity=Decimal("0.001"),
        order_type=ev.OrderType.MARKET,
        client_order_id=client_order_id(intent_id),
        reference_price=Decimal("50000"),
    )


class Fills:
    def __init__(self) -> None:
        self.at: dict[str, float] = {}
        self.changed = asyncio.Event()

    async def on_msg(self, msg: Any) -> None:
        try:
            fill = decode(msg.data)
        except PermanentError:
            return
        self.at.setdefault(fill.correlation_id, time.perf_counter())
        self.changed.set()

    async def until(self, n: int, timeout_s: float) -> None:
        deadline = time.perf_counter() + timeout_s
        while len(self.at) < n:
            self.changed.clear()
            await asyncio.wait_for(self.changed.wait(), max(0.01, deadline - time.perf_counter()))


async def gateway(url: str, burst: int, paced: int, rate: float) -> dict[str, Figure]:
    """Approvals published straight to the gateway (the gate is bypassed): the rate at which
    it turns a burst into fills, and approval -> fill latency at a steady `rate`."""
    nc = await nats.connect(url)
    fills = Fills()
    try:
        await set_price(nc)
        await nc.subscribe("trading.fill.>", cb=fills.on_msg)
        await nc.flush()
        js = nc.jetstream()
        t0 = time.perf_counter()
        for i in range(burst):
            order = _approval("gw-burst", i)
            await js.publish_async(
                "trading.order.approved.paper", encode(order), headers={"Nats-Msg-Id": order.id}
            )
        await js.publish_async_completed()
        await fills.until(burst, 300)
        throughput = burst / (time.perf_counter() - t0)
        sent: dict[str, float] = {}
        start = time.perf_counter()
        for i in range(paced):
            due = start + i / rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            order = _approval("gw-paced", i)
            sent[order.correlation_id] = time.perf_counter()
            await js.publish(
                "trading.order.approved.paper", encode(order), headers={"Nats-Msg-Id": order.id}
            )
        await fills.until(burst + paced, 120)
        lat = [(fills.at[k] - t) * 1000 for k, t in sent.items()]
    finally:
        await nc.close()
    return {
        "gateway_orders": Figure(
            "gateway alone: orders -> fills", throughput, "orders/s", target=5000,
            higher_is_better=True, note=f"a burst of {burst} approvals, paper venue",
        ),
        "gateway_p99": Figure(
            "gateway alone: approval -> fill p99", percentile(lat, 99), "ms", target=0.3,
            note=f"{paced} approvals at {rate:.0f}/s, publish included",
        ),
    }  # fmt: skip


async def replay_rate(url: str, dsn: str, config: str) -> Figure:
    """`tradebus replay --json` on the run's own stream, with the stack's own config (its
    strategies decide which fills are flagged): stream events read per second while the
    ledger is rebuilt into a scratch schema and diffed."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tradebus_common.cli.main", "replay", "--json",
        "--nats", url, "--dsn", dsn, "--config", config,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 600)
    result = json.loads(out or b"{}")
    note = (
        f"{result.get('up_to_seq', 0)} events, {result.get('replayed', 0)} booked, "
        f"identical={result.get('identical')}"
    )
    return Figure(
        "ledger replay", float(result.get("events_per_s", 0)), "events/s", target=20000,
        higher_is_better=True, note=note,
    )  # fmt: skip
