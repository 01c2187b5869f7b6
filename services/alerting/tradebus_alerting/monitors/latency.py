"""Venue API latency (A4): p50/p99 per venue over a sliding window of VenueLatencyObserved.

p99 over the threshold (with enough samples to mean something): ERROR, dedup key
`latency:<venue>`; back under: INFO resolve. Windows use the events' own timestamps.
"""

from __future__ import annotations

import math
from collections import deque
from datetime import datetime, timedelta

from tradebus_common.events import Alert, AlertCode, Severity, VenueLatencyObserved
from tradebus_common.ids import new_id

SOURCE = "alerting"


def percentile(values: list[int], q: float) -> int:
    """Nearest-rank percentile of a non-empty list (q in 0..100)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


class LatencyMonitor:
    def __init__(self, window_s: float, min_samples: int, p99_threshold_ms: int) -> None:
        self.window = timedelta(seconds=window_s)
        self.min_samples = min_samples
        self.threshold = p99_threshold_ms
        self.samples: dict[str, deque[tuple[datetime, int]]] = {}
        self.open: set[str] = set()

    def observe(self, event: VenueLatencyObserved) -> None:
        self.samples.setdefault(event.venue, deque()).append((event.ts, event.latency_ms))

    def stats(self, venue: str, now: datetime) -> dict[str, int]:
        window = self.samples.get(venue, deque())
        while window and now - window[0][0] > self.window:
            window.popleft()
        values = [ms for _, ms in window]
        if not values:
            return {"samples": 0}
        return {
            "samples": len(values),
            "p50_ms": percentile(values, 50),
            "p99_ms": percentile(values, 99),
        }

    def evaluate(self, now: datetime) -> list[Alert]:
        alerts = []
        for venue in sorted(self.samples):
            s = self.stats(venue, now)
            if s["samples"] < self.min_samples:
                continue
            over = s["p99_ms"] > self.threshold
            if over and venue not in self.open:
                self.open.add(venue)
                alerts.append(self._alert(venue, s, over=True))
            elif not over and venue in self.open:
                self.open.discard(venue)
                alerts.append(self._alert(venue, s, over=False))
        return alerts

    def _alert(self, venue: str, s: dict[str, int], over: bool) -> Alert:
        return Alert(
            id=new_id(),
            severity=Severity.ERROR if over else Severity.INFO,
            source=SOURCE,
            code=AlertCode.VENUE_LATENCY if over else AlertCode.VENUE_LATENCY_RECOVERED,
            message=f"{venue} API latency p99 {s['p99_ms']} ms, p50 {s['p50_ms']} ms "
            f"over {s['samples']} calls (threshold {self.threshold} ms)",
            context={"venue": venue, **s, "threshold_ms": self.threshold},
            dedup_key=f"latency:{venue}",
            resolved=not over,
        )
