"""What a circuit-breaker transition publishes: a VenueBreakerChanged (the risk-gate may halt
the venue on OPEN) and an Alert, both with ids derived from the transition."""

from __future__ import annotations

from tradebus_common.events import (
    Alert,
    AlertCode,
    Event,
    Severity,
    VenueBreakerChanged,
    VenueBreakerState,
)
from tradebus_common.ids import new_id

from .resilience import BreakerState, Transition

_ALERTS = {
    BreakerState.OPEN: (AlertCode.VENUE_BREAKER_OPEN, Severity.ERROR),
    BreakerState.HALF_OPEN: (AlertCode.VENUE_BREAKER_HALF_OPEN, Severity.WARNING),
    BreakerState.CLOSED: (AlertCode.VENUE_BREAKER_CLOSED, Severity.INFO),
}


def breaker_events(venue: str, moved: Transition) -> list[Event]:
    changed = VenueBreakerChanged(
        id=new_id(),  # every transition is its own fact; nothing upstream to derive from
        venue=venue,
        state=VenueBreakerState(moved.state.value),
        previous=VenueBreakerState(moved.previous.value),
        failures=moved.failures,
        reason=moved.reason,
    )
    code, severity = _ALERTS[moved.state]
    alert = Alert(
        severity=severity,
        source="execution-gateway",
        code=code,
        message=f"{venue} circuit breaker {moved.previous} -> {moved.state}: {moved.reason}",
        context={"venue": venue, "failures": moved.failures},
        dedup_key=f"execution-gateway:breaker:{venue}",
        resolved=moved.state is BreakerState.CLOSED,
        causation_id=changed.id,
        correlation_id=changed.id,
    )
    return [changed, alert]
