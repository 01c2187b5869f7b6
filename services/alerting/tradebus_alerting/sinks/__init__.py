"""Alert sinks: log (always), webhook, email, PagerDuty."""

from __future__ import annotations

from tradebus_common.config import AlertingConfig

from .base import Sink, SinkError
from .email import EmailSink
from .http import PagerDutySink, WebhookSink
from .log import LogSink

__all__ = ["Sink", "SinkError", "LogSink", "WebhookSink", "EmailSink", "PagerDutySink"]


def build_sinks(cfg: AlertingConfig) -> dict[str, Sink]:
    sinks: list[Sink] = [
        LogSink(),
        WebhookSink(cfg.webhook),
        EmailSink(cfg.email),
        PagerDutySink(cfg.pagerduty),
    ]
    return {s.name: s for s in sinks}
