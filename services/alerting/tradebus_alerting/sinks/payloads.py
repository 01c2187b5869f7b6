"""What each sink sends, as pure functions of a Notice (tests pin these exactly)."""

from __future__ import annotations

from typing import Any

import msgspec

from tradebus_common.events import Severity

from ..model import Notice, NoticeKind

SLACK_COLORS = {
    Severity.INFO: "#2eb886",
    Severity.WARNING: "#daa038",
    Severity.ERROR: "#e01e5a",
    Severity.CRITICAL: "#a30200",
}
PD_SUMMARY_MAX = 1024


def headline(notice: Notice) -> str:
    a = notice.alert
    text = f"[{a.severity.value.upper()}] {a.source} {a.code.value}: {a.message}"
    match notice.kind:
        case NoticeKind.REPEAT:
            return f"{text} (repeated {notice.repeat_count}x in the dedup window)"
        case NoticeKind.ESCALATION:
            return f"ESCALATION {notice.escalation}, unacknowledged: {text}"
        case NoticeKind.RESOLVE:
            return f"RESOLVED: {text}"
    return text


def generic_body(notice: Notice) -> dict[str, Any]:
    a = notice.alert
    return {
        "id": notice.id,
        "alert_id": a.id,
        "kind": notice.kind.value,
        "severity": a.severity.value,
        "source": a.source,
        "code": a.code.value,
        "message": a.message,
        "context": msgspec.to_builtins(a.context),
        "dedup_key": a.dedup_key,
        "correlation_id": a.correlation_id,
        "ts": a.ts.isoformat(),
        "repeat_count": notice.repeat_count,
        "escalation": notice.escalation,
        "resolved": a.resolved,
    }


def slack_body(notice: Notice) -> dict[str, Any]:
    a = notice.alert
    fields = [
        {"title": "source", "value": a.source, "short": True},
        {"title": "code", "value": a.code.value, "short": True},
        {"title": "alert id", "value": a.id, "short": False},
    ]
    fields += [{"title": k, "value": str(v), "short": True} for k, v in sorted(a.context.items())]
    return {
        "text": headline(notice),
        "attachments": [
            {"color": SLACK_COLORS[a.severity], "fields": fields, "ts": int(a.ts.timestamp())}
        ],
    }


def pagerduty_body(notice: Notice, routing_key: str) -> dict[str, Any]:
    a = notice.alert
    if notice.kind is NoticeKind.RESOLVE:
        return {"routing_key": routing_key, "event_action": "resolve", "dedup_key": a.dedup_key}
    return {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": a.dedup_key or a.id,
        "payload": {
            "summary": headline(notice)[:PD_SUMMARY_MAX],
            "source": a.source,
            "severity": a.severity.value,
            "timestamp": a.ts.isoformat(),
            "component": a.source,
            "class": a.code.value,
            "custom_details": {
                **msgspec.to_builtins(a.context),
                "alert_id": a.id,
                "repeat_count": notice.repeat_count,
                "escalation": notice.escalation,
            },
        },
    }


def email_subject(notice: Notice) -> str:
    return f"tradebus: {headline(notice)}"[:200]


def email_text(notice: Notice) -> str:
    a = notice.alert
    lines = [
        headline(notice),
        "",
        f"alert id: {a.id}",
        f"severity: {a.severity.value}",
        f"source: {a.source}",
        f"code: {a.code.value}",
        f"time: {a.ts.isoformat()}",
        f"dedup key: {a.dedup_key}",
        f"correlation id: {a.correlation_id}",
    ]
    lines += [f"{k}: {v}" for k, v in sorted(a.context.items())]
    lines += ["", f"Acknowledge: tradebus alerts ack {a.id} --operator NAME"]
    return "\n".join(lines) + "\n"
