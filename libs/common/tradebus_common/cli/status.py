"""`tradebus status`: each service healthy or not, the trading state and consumer lag.

More sections (alerts, locks, ...) come in `sections`: name -> JSON-able data, shown as they
are by --json and by a printer from SECTION_PRINTERS (a section without one prints as JSON)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from ..events import Heartbeat, TradingStateChanged


def build_status(
    names: tuple[str, ...],
    beats: list[Heartbeat],
    state: TradingStateChanged | None,
    consumers: dict[str, dict[str, int]],
    stale_after_s: float,
    sections: dict[str, Any] | None = None,
) -> dict[str, Any]:
    now = datetime.now(UTC)
    services: dict[str, Any] = {}
    for name in names:
        mine = [b for b in beats if b.service == name]
        newest = max(mine, key=lambda b: b.ts, default=None)
        age = (now - newest.ts).total_seconds() if newest else None
        services[name] = {
            "healthy": age is not None and age <= stale_after_s,
            "instances": sorted(b.instance for b in mine),
            "instance": newest.instance if newest else None,
            "version": newest.version if newest else None,
            "last_heartbeat_age_s": round(age, 1) if age is not None else None,
            "uptime_s": newest.uptime_s if newest else None,
            "consumer": consumers.get(name),
        }
    return {
        "healthy": all(s["healthy"] for s in services.values()),
        "trading_state": state.state.value if state else "UNKNOWN",
        "state_reason": state.reason if state else "",
        "state_operator": state.operator if state else "",
        "services": services,
        **(sections or {}),
    }


def print_status(status: dict[str, Any]) -> None:
    print(
        f"trading state: {status['trading_state']}"
        + (
            f" ({status['state_reason']}, by {status['state_operator']})"
            if status["state_reason"]
            else ""
        )
    )
    print(
        f"{'service':<20}{'health':<10}{'last beat':<12}{'pending':<9}{'unacked':<8}"
        f"{'version':<10}instance"
    )
    for name, s in status["services"].items():
        beat = (
            f"{s['last_heartbeat_age_s']}s ago"
            if s["last_heartbeat_age_s"] is not None
            else "never"
        )
        c = s["consumer"] or {}
        print(
            f"{name:<20}{'ok' if s['healthy'] else 'DOWN':<10}{beat:<12}"
            f"{c.get('pending', '-')!s:<9}{c.get('ack_pending', '-')!s:<8}"
            f"{s.get('version') or '-':<10}{s.get('instance') or '-'}"
        )
    for name, printer in SECTION_PRINTERS.items():
        if name in status:
            printer(status[name])
    for name in status.keys() - _CORE_KEYS - SECTION_PRINTERS.keys():
        print(f"{name}: {json.dumps(status[name], default=str)}")


_CORE_KEYS = {"healthy", "trading_state", "state_reason", "state_operator", "services"}


def print_alerts(section: dict[str, Any]) -> None:
    """The alerting service's answer: recent unacked alerts and the health of each sink."""
    if "error" in section:
        print(f"alerts: {section['error']}")
        return
    sinks = section.get("sinks", {})
    parts = []
    for name, h in sorted(sinks.items()):
        state = "off" if not h.get("configured") else ("ok" if h.get("healthy") else "FAILING")
        parts.append(f"{name} {state}")
    print("sinks: " + ", ".join(parts))
    unacked = section.get("unacked", [])
    print(f"unacked alerts: {len(unacked)}")
    for a in unacked:
        print(
            f"  {a['ts'][:19]} {a['severity'].upper():<8} {a['code']:<20} {a['id']} {a['message']}"
        )


def print_locks(section: dict[str, Any]) -> None:
    """risk-gate: protection locks, latched breakers and scoped halts/reductions."""
    rows = section.get("active", [])
    print(f"locks: {len(rows)}")
    for r in rows:
        until = r["until_s"]
        left = f"{max(until - datetime.now(UTC).timestamp(), 0):.0f}s left" if until else "latched"
        print(f"  {r['kind']:<28} {r['target']:<22} {left:<12} {r['reason']}")


SECTION_PRINTERS: dict[str, Callable[[dict[str, Any]], None]] = {
    "alerts": print_alerts,
    "locks": print_locks,
}
