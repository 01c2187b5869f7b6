"""Heartbeat watcher over the `health` KV bucket (A3).

A service is missing when its newest heartbeat (any instance) is older than the timeout:
CRITICAL, dedup key `heartbeat:<service>`. Its next heartbeat raises an INFO with
`resolved=True` under the same key, which resolves the PagerDuty incident. Ids are derived
from the last beat seen, so replicas or a restarted alerting publish the same alert once.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from tradebus_common.events import Alert, AlertCode, Heartbeat, Severity
from tradebus_common.ids import derive_id

SOURCE = "alerting"


def newest_per_service(beats: list[Heartbeat]) -> dict[str, Heartbeat]:
    out: dict[str, Heartbeat] = {}
    for b in beats:
        if b.service not in out or b.ts > out[b.service].ts:
            out[b.service] = b
    return out


class HeartbeatMonitor:
    def __init__(self, timeout_s: float) -> None:
        self.timeout = timedelta(seconds=timeout_s)
        self.last: dict[str, Heartbeat] = {}
        self.missing: dict[str, str] = {}  # service -> id of its open HEARTBEAT_MISSING alert

    def observe(self, beats: list[Heartbeat]) -> None:
        # The bucket's TTL deletes old keys: remember the last beat of a service we lost.
        for service, beat in newest_per_service(beats).items():
            if service not in self.last or beat.ts > self.last[service].ts:
                self.last[service] = beat

    def evaluate(self, now: datetime) -> list[Alert]:
        alerts = []
        for service, beat in sorted(self.last.items()):
            stale = now - beat.ts > self.timeout
            if stale and service not in self.missing:
                alert = missing_alert(beat, now)
                self.missing[service] = alert.id
                alerts.append(alert)
            elif not stale and service in self.missing:
                alerts.append(recovered_alert(beat, self.missing.pop(service)))
        return alerts


def missing_alert(beat: Heartbeat, now: datetime) -> Alert:
    age = round((now - beat.ts).total_seconds(), 1)
    return Alert(
        id=derive_id("heartbeat", beat.service, beat.ts.isoformat(), "missing"),
        severity=Severity.CRITICAL,
        source=SOURCE,
        code=AlertCode.HEARTBEAT_MISSING,
        message=f"{beat.service} has not heartbeated for {age}s",
        context={
            "service": beat.service,
            "instance": beat.instance,
            "version": beat.version,
            "last_heartbeat": beat.ts.isoformat(),
        },
        dedup_key=f"heartbeat:{beat.service}",
    )


def recovered_alert(beat: Heartbeat, missing_id: str) -> Alert:
    return Alert(
        id=derive_id(missing_id, "recovered"),
        severity=Severity.INFO,
        source=SOURCE,
        code=AlertCode.HEARTBEAT_RECOVERED,
        message=f"{beat.service} is heartbeating again (instance {beat.instance})",
        context={"service": beat.service, "instance": beat.instance, "version": beat.version},
        dedup_key=f"heartbeat:{beat.service}",
        resolved=True,
        causation_id=missing_id,
    )
