"""Backoff with jitter and a per-venue circuit breaker: pure state, a clock passed in.

Breaker: CLOSED counts consecutive failures (transient or ambiguous outcomes, never a venue's
business reject); at `failures_to_open` it goes OPEN and refuses calls for `open_s`; then
HALF_OPEN lets exactly one probe through: success closes it, failure opens it again.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum


def backoff_s(
    attempt: int,
    base_s: float,
    cap_s: float,
    rng: random.Random,
    retry_after_s: float | None = None,
) -> float:
    """Delay before retry `attempt` (1-based): "full jitter" over base x 2^(attempt-1), capped;
    never shorter than the venue's Retry-After, which wins even over the cap."""
    ceiling = min(cap_s, base_s * (2 ** (attempt - 1)))
    delay = rng.uniform(ceiling / 2, ceiling)  # half-jitter: spread, but never ~0
    if retry_after_s is not None:
        delay = max(delay, retry_after_s)
    return delay


class BreakerState(StrEnum):
    CLOSED = "CLOSED"
    OPEN = "OPEN"
    HALF_OPEN = "HALF_OPEN"


@dataclass(frozen=True)
class Transition:
    previous: BreakerState
    state: BreakerState
    failures: int
    reason: str


class CircuitBreaker:
    def __init__(self, failures_to_open: int, open_s: float) -> None:
        self.failures_to_open = max(1, failures_to_open)
        self.open_s = open_s
        self.state = BreakerState.CLOSED
        self.failures = 0
        self._opened_at = 0.0
        self._probing = False

    def allow(self, now: float) -> tuple[bool, Transition | None]:
        """May a call go out now? OPEN turns HALF_OPEN once open_s has passed (one probe)."""
        if self.state is BreakerState.CLOSED:
            return True, None
        if self.state is BreakerState.OPEN:
            if now - self._opened_at < self.open_s:
                return False, None
            self._probing = True
            return True, self._move(BreakerState.HALF_OPEN, "probing after the open period")
        if self._probing:  # HALF_OPEN: one probe at a time
            return False, None
        self._probing = True
        return True, None

    def success(self) -> Transition | None:
        self.failures = 0
        self._probing = False
        if self.state is BreakerState.CLOSED:
            return None
        return self._move(BreakerState.CLOSED, "a call succeeded")

    def failure(self, now: float, reason: str) -> Transition | None:
        self.failures += 1
        self._probing = False
        if self.state is BreakerState.HALF_OPEN or (
            self.state is BreakerState.CLOSED and self.failures >= self.failures_to_open
        ):
            self._opened_at = now
            return self._move(BreakerState.OPEN, reason)
        return None

    def _move(self, state: BreakerState, reason: str) -> Transition:
        previous, self.state = self.state, state
        return Transition(previous, state, self.failures, reason)
