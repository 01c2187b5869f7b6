"""The gateway's timer: due algo slices, and order/parent timeouts.

It runs as a service task. Timeouts become CancelOrder commands on the bus (carried out by
the main consumer, in order with everything else); algo evaluations run under the order lock.
It wakes every timer_interval_ms, or at once when a child fills. Tests drive it through
events (an injected clock for the pure parts), never by sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from tradebus_common.bus import Bus, raise_if_cancelling
from tradebus_common.config import ExecutionConfig
from tradebus_common.errors import TransientError

from .algos.engine import AlgoEngine
from .tracking import OrderTracker

log = logging.getLogger("tradebus.execution_gateway.scheduler")
RETRY_S = 1.0  # a failed evaluation of one parent is retried after this


class Scheduler:
    def __init__(
        self,
        config: ExecutionConfig,
        engine: AlgoEngine,
        tracker: OrderTracker,
        bus: Bus,
        lock: asyncio.Lock,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.engine = engine
        self.tracker = tracker
        self.bus = bus
        self.lock = lock
        self.clock = clock

    async def run(self) -> None:
        while True:
            try:
                await self.iterate()
            except Exception as e:  # one failed round is retried on the next
                raise_if_cancelling()
                log.warning(
                    "scheduler round failed",
                    extra={"error": repr(e)},
                    exc_info=not isinstance(e, TransientError),
                )
            await self._wait()

    async def iterate(self) -> None:
        now = self.clock()
        for cmd in [*self.tracker.expired(now), *self.engine.expired(now)]:
            log.info(
                "order timed out",
                extra={"client_order_id": cmd.client_order_id, "reason": cmd.reason.value},
            )
            await self.bus.publish(cmd)
            # Asked once (its id is derived, so a repeat after a restart is deduplicated).
            self.tracker.requested.add(cmd.client_order_id)
            self.engine.requested.add(cmd.client_order_id)
        for pcid in self.engine.due(now):
            await self._evaluate(pcid, now)

    async def _evaluate(self, pcid: str, now: float) -> None:
        try:
            async with self.lock:
                await self.engine.evaluate(pcid)
        except Exception as e:  # this parent again a little later; the others go on
            raise_if_cancelling()
            self.engine.due_at[pcid] = now + RETRY_S
            log.warning(
                "algo evaluation failed; will retry",
                extra={"client_order_id": pcid, "error": repr(e)},
                exc_info=not isinstance(e, TransientError),
            )

    async def _wait(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.engine.wake.wait(), self.config.timer_interval_ms / 1000)
        self.engine.wake.clear()
