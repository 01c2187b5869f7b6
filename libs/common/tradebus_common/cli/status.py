"""`tradebus status`: each service healthy or not, the trading state and consumer lag."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ..events import Heartbeat, TradingStateChanged


def build_status(
    names: tuple[str, ...],
    beats: list[Heartbeat],
    state: TradingStateChanged | None,
    consumers: dict[str, dict[str, int]],
    stale_after_s: float,
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
    print(f"{'service':<20}{'health':<10}{'last beat':<12}{'pending':<9}{'unacked':<8}")
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
        )
