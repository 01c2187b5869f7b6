"""The log sink: always on, the last resort when every other sink is down."""

from __future__ import annotations

import logging

from tradebus_common.events import Severity

from ..model import Notice
from .payloads import headline

log = logging.getLogger("tradebus.alert")

_LEVELS = {
    Severity.INFO: logging.INFO,
    Severity.WARNING: logging.WARNING,
    Severity.ERROR: logging.ERROR,
    Severity.CRITICAL: logging.CRITICAL,
}


class LogSink:
    name = "log"
    configured = True

    async def send(self, notice: Notice) -> None:
        alert = notice.alert
        log.log(
            _LEVELS[alert.severity],
            headline(notice),
            extra={
                "alert_id": alert.id,
                "notice": notice.kind.value,
                "severity": alert.severity.value,
                "source": alert.source,
                "code": alert.code.value,
                "dedup_key": alert.dedup_key,
                "repeat_count": notice.repeat_count,
                "context": alert.context,
            },
        )

    async def close(self) -> None:
        return None
