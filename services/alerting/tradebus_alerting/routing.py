"""Pure rules: which sinks get an alert, whether the throttle lets it through, what escalates."""

from __future__ import annotations

from datetime import datetime, timedelta

from tradebus_common.config import AlertingConfig
from tradebus_common.events import Severity

from .model import AlertRecord, DedupState


def route(cfg: AlertingConfig, severity: Severity) -> list[str]:
    """Configured sinks for a severity; the log is always one of them."""
    sinks = cfg.routes.get(severity.value, [])
    return ["log", *[s for s in sinks if s != "log"]]


def in_window(state: DedupState | None, now: datetime, window_s: float) -> bool:
    """True: an alert with this dedup key was sent (or summarised) within the window."""
    return state is not None and now - state.window_start < timedelta(seconds=window_s)


def summary_due(state: DedupState, now: datetime, window_s: float) -> bool:
    return state.suppressed > 0 and not in_window(state, now, window_s)


def escalation_due(record: AlertRecord, now: datetime, cfg: AlertingConfig) -> bool:
    """An unacknowledged, unresolved CRITICAL escalates every escalation_delay_s, up to a cap."""
    if record.alert.severity is not Severity.CRITICAL or record.acked_by or record.resolved:
        return False
    if record.escalations >= cfg.escalation_max:
        return False
    due_at = record.sent_at + timedelta(seconds=cfg.escalation_delay_s * (record.escalations + 1))
    return now >= due_at
