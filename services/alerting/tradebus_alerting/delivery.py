"""Delivery to sinks: one task per (notice, sink), retried with capped exponential backoff.

A slow or dead sink only ever delays itself: the consumer has acked the alert once the notice
is durable, and every sink runs in its own task. A delivery is marked `sent.<notice>.<sink>`
in KV after the sink accepted it, and checked before sending, so a restart resumes only what
was not delivered. (A crash between the sink's OK and the mark re-sends that one notice once;
PagerDuty deduplicates it by dedup_key.)
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from datetime import datetime

from tradebus_common.config import AlertingConfig
from tradebus_common.events import utcnow

from .model import Notice, SinkHealth
from .sinks import Sink, SinkError
from .store import AlertStore

log = logging.getLogger("tradebus.alerting")

DELIVERED = "delivered"
FAILED = "failed"
UNCONFIGURED = "unconfigured"

OnDone = Callable[[Notice, str, str], Awaitable[None]]


async def _nothing(notice: Notice, sink: str, outcome: str) -> None:
    return None


def backoff_delays(initial_s: float, max_s: float, attempts: int) -> list[float]:
    """The pauses between attempts: initial, x2 each time, capped (no pause after the last)."""
    return [min(initial_s * 2**i, max_s) for i in range(max(attempts - 1, 0))]


class Dispatcher:
    def __init__(
        self,
        sinks: dict[str, Sink],
        store: AlertStore,
        cfg: AlertingConfig,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.sinks = sinks
        self.store = store
        self.cfg = cfg
        self.clock = clock
        self.health = {name: SinkHealth(sink=name) for name in sinks}
        self.on_done: OnDone = _nothing
        self._inflight: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._remaining: dict[str, set[str]] = {}

    def dispatch(self, notice: Notice) -> None:
        self._remaining.setdefault(notice.id, set()).update(notice.sinks)
        for name in notice.sinks:
            key = (notice.id, name)
            if key not in self._inflight:  # a resumed notice may be dispatched twice
                task = asyncio.create_task(self._deliver(notice, name))
                self._inflight[key] = task
                task.add_done_callback(lambda _t, k=key: self._inflight.pop(k, None))

    async def idle(self) -> None:
        """Wait until every delivery under way has finished (tests and shutdown)."""
        while self._inflight:
            await asyncio.gather(*list(self._inflight.values()), return_exceptions=True)

    async def close(self) -> None:
        for task in list(self._inflight.values()):
            task.cancel()
        await asyncio.gather(*list(self._inflight.values()), return_exceptions=True)
        for sink in self.sinks.values():
            await sink.close()

    async def _deliver(self, notice: Notice, name: str) -> None:
        try:
            outcome = await self._attempts(notice, name)
        except Exception:  # a bug in one sink must not kill the others' deliveries
            log.exception("alert delivery crashed", extra={"sink": name, "notice": notice.id})
            outcome = FAILED
        try:
            await self.on_done(notice, name, outcome)
            left = self._remaining.get(notice.id, set())
            left.discard(name)
            if not left:
                self._remaining.pop(notice.id, None)
                await self.store.delete_notice(notice.id)
        except Exception as e:  # KV away: the notice stays and is resumed on restart
            log.warning(
                "delivery bookkeeping failed", extra={"notice": notice.id, "error": repr(e)}
            )

    async def _attempts(self, notice: Notice, name: str) -> str:
        sink = self.sinks.get(name)
        if sink is None or not sink.configured:
            return UNCONFIGURED
        if await self.store.delivered(notice.id, name):
            return DELIVERED
        delays = backoff_delays(
            self.cfg.retry_initial_s, self.cfg.retry_max_s, self.cfg.retry_attempts
        )
        for attempt in range(len(delays) + 1):
            try:
                await sink.send(notice)
            except SinkError as e:
                await self._failed(name, str(e), notice, attempt)
                if attempt == len(delays):
                    return FAILED
                await asyncio.sleep(delays[attempt] * random.uniform(0.8, 1.2))
                continue
            await self.store.mark_delivered(notice.id, name, DELIVERED)
            await self._succeeded(name)
            return DELIVERED
        return FAILED

    async def _failed(self, name: str, error: str, notice: Notice, attempt: int) -> None:
        h = self.health[name]
        h.consecutive_failures += 1
        h.last_error = error[:300]
        h.last_failure = self.clock()
        was = h.healthy
        h.healthy = h.consecutive_failures < self.cfg.sink_unhealthy_after_failures
        log.warning(
            "alert sink failed",
            extra={
                "sink": name,
                "notice": notice.id,
                "attempt": attempt + 1,
                "error": h.last_error,
            },
        )
        if was and not h.healthy:
            log.error("alert sink unhealthy", extra={"sink": name, "error": h.last_error})
            await self.store.put_sink_health(h)

    async def _succeeded(self, name: str) -> None:
        h = self.health[name]
        recovered = h.consecutive_failures > 0
        h.consecutive_failures = 0
        h.healthy = True
        h.last_success = self.clock()
        if recovered:
            await self.store.put_sink_health(h)
