"""Alert to sink: from an Alert published on the bus to the webhook request on loopback."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import nats
from aiohttp import web

from .. import events as ev
from ..codec import encode
from ..stack.servers import free_port
from .figures import Figure, percentile


class WebhookReceiver:
    """A loopback HTTP endpoint standing in for Slack: records when each alert arrived."""

    def __init__(self) -> None:
        self.port = free_port()
        self.arrived: dict[str, float] = {}
        self.changed = asyncio.Event()
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()

    async def _hook(self, request: web.Request) -> web.Response:
        body: dict[str, Any] = await request.json()
        self.arrived.setdefault(str(body.get("alert_id", "")), time.perf_counter())
        self.changed.set()
        return web.json_response({"ok": True})


async def alert_to_sink(url: str, receiver: WebhookReceiver, n: int, rate: float) -> Figure:
    """WARNING alerts (routed to the webhook by default), each with its own dedup key."""
    nc = await nats.connect(url)
    sent: dict[str, float] = {}
    try:
        js = nc.jetstream()
        for i in range(n):
            alert = ev.Alert(
                severity=ev.Severity.WARNING,
                source="bench",
                code=ev.AlertCode.DEAD_LETTER,
                message=f"bench alert {i}",
                dedup_key=f"bench:{i}",
            )
            sent[alert.id] = time.perf_counter()
            await js.publish(
                "trading.alert.warning.bench", encode(alert), headers={"Nats-Msg-Id": alert.id}
            )
            await asyncio.sleep(1 / rate)  # ok: pacing the load, not synchronizing
        await _wait_all(receiver, set(sent), 30)
    finally:
        await nc.close()
    lat = [(receiver.arrived[i] - t) * 1000 for i, t in sent.items() if i in receiver.arrived]
    note = "" if len(lat) == n else f"only {len(lat)}/{n} arrived"
    return Figure(
        "alert -> webhook p99",
        percentile(lat, 99) if lat else float("inf"),
        "ms",
        target=50,
        note=note,
    )


async def _wait_all(receiver: WebhookReceiver, ids: set[str], timeout_s: float) -> None:
    deadline = time.perf_counter() + timeout_s
    while not ids <= set(receiver.arrived) and time.perf_counter() < deadline:
        receiver.changed.clear()
        try:
            await asyncio.wait_for(receiver.changed.wait(), deadline - time.perf_counter())
        except TimeoutError:
            return
