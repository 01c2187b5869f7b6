"""What alerting stores (KV bucket `alerts`) and hands to sinks."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import msgspec

from tradebus_common.events import Alert


class NoticeKind(StrEnum):
    ALERT = "alert"  # the first send of an alert
    REPEAT = "repeat"  # a summary of alerts suppressed in a dedup window
    ESCALATION = "escalation"  # an unacknowledged CRITICAL, sent again
    RESOLVE = "resolve"  # the condition is over


class Notice(msgspec.Struct, kw_only=True):
    """One message to the sinks. Its id + the sink name is the delivery's durable key."""

    id: str
    kind: NoticeKind
    alert: Alert
    repeat_count: int = 0  # alerts with this dedup key suppressed since the last send
    escalation: int = 0
    sinks: list[str] = []


class AlertRecord(msgspec.Struct, kw_only=True):
    """An alert that was sent (suppressed repeats only count in DedupState)."""

    alert: Alert
    sent_at: datetime
    acked_by: str = ""
    acked_at: datetime | None = None
    escalations: int = 0
    resolved: bool = False
    deliveries: dict[str, str] = {}  # sink -> delivered | failed | pending


class DedupState(msgspec.Struct, kw_only=True):
    """The throttle window of one dedup key."""

    key: str
    window_start: datetime
    alert_id: str  # the alert sent when the window opened
    suppressed: int = 0
    last_alert_id: str = ""
    last: Alert | None = None  # the newest suppressed alert, for the summary


class SinkHealth(msgspec.Struct, kw_only=True):
    sink: str
    healthy: bool = True
    consecutive_failures: int = 0
    last_error: str = ""
    last_success: datetime | None = None
    last_failure: datetime | None = None
