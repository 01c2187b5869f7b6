"""Alert sinks. The log sink is always on; webhook, email and PagerDuty come next."""

from __future__ import annotations

import logging

from tradebus_common.events import Alert, Severity

log = logging.getLogger("tradebus.alert")

_LEVELS = {
    Severity.INFO: logging.INFO,
    Severity.WARNING: logging.WARNING,
    Severity.ERROR: logging.ERROR,
    Severity.CRITICAL: logging.CRITICAL,
}


class LogSink:
    name = "log"

    async def send(self, alert: Alert) -> None:
        log.log(
            _LEVELS[alert.severity],
            alert.message,
            extra={
                "alert_id": alert.id,
                "severity": alert.severity.value,
                "source": alert.source,
                "code": alert.code.value,
                "dedup_key": alert.dedup_key,
                "context": alert.context,
            },
        )
