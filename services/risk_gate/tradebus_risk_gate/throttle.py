"""Order-rate throttle: a sliding window of approval times. Over the limit is a denial, never a
queue. The clock is injected, so tests are deterministic."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

Clock = Callable[[], float]


class RateWindow:
    def __init__(self, window_s: float, clock: Clock = time.monotonic) -> None:
        self.window_s = window_s
        self.clock = clock
        self._total: deque[float] = deque()
        self._per_strategy: dict[str, deque[float]] = {}

    def counts(self, strategy: str) -> tuple[int, int]:
        """Approvals in the current window: (this strategy, all strategies)."""
        now = self.clock()
        mine = self._per_strategy.get(strategy, deque())
        for q in (mine, self._total):
            while q and q[0] <= now - self.window_s:
                q.popleft()
        return len(mine), len(self._total)

    def record(self, strategy: str) -> None:
        now = self.clock()
        self._total.append(now)
        self._per_strategy.setdefault(strategy, deque()).append(now)
