"""Consumer lag (A4): pending messages per durable, from JetStream consumer info.

Over the threshold: WARNING (dedup key `lag:<durable>`), repeated once per dedup window while
it stays over. Back under half the threshold (hysteresis, so it doesn't flap): INFO resolve.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from tradebus_common.events import Alert, AlertCode, Severity
from tradebus_common.ids import new_id

SOURCE = "alerting"


class LagMonitor:
    def __init__(self, threshold_msgs: int, repeat_after_s: float) -> None:
        self.threshold = threshold_msgs
        self.repeat_after = timedelta(seconds=repeat_after_s)
        self.open: dict[str, datetime] = {}  # durable -> when it was last alerted

    def evaluate(self, pending: dict[str, int], now: datetime) -> list[Alert]:
        alerts = []
        for durable, n in sorted(pending.items()):
            last = self.open.get(durable)
            if n >= self.threshold and (last is None or now - last >= self.repeat_after):
                self.open[durable] = now
                alerts.append(self._alert(durable, n, Severity.WARNING, AlertCode.CONSUMER_LAG))
            elif last is not None and n < self.threshold / 2:
                del self.open[durable]
                alerts.append(
                    self._alert(durable, n, Severity.INFO, AlertCode.CONSUMER_LAG_RECOVERED)
                )
        return alerts

    def _alert(self, durable: str, n: int, severity: Severity, code: AlertCode) -> Alert:
        over = code is AlertCode.CONSUMER_LAG
        return Alert(
            id=new_id(),
            severity=severity,
            source=SOURCE,
            code=code,
            message=f"consumer {durable} has {n} pending message(s)"
            + (f" (threshold {self.threshold})" if over else ", back under the threshold"),
            context={"durable": durable, "pending": n, "threshold": self.threshold},
            dedup_key=f"lag:{durable}",
            resolved=not over,
        )
