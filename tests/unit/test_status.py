"""`tradebus status`: health from heartbeat age, and the trading state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tradebus_common.cli.status import build_status
from tradebus_common.events import Heartbeat, TradingState, TradingStateChanged

STALE_AFTER = 15.0


def beat(service: str, age_s: float, instance: str = "i1", uptime_s: float = 100.0) -> Heartbeat:
    now = datetime.now(UTC)
    return Heartbeat(
        service=service,
        instance=instance,
        version="0.1.0",
        started_at=now - timedelta(seconds=uptime_s),
        uptime_s=uptime_s,
        ts=now - timedelta(seconds=age_s),
    )


def status(
    names: tuple[str, ...],
    beats: list[Heartbeat],
    state: TradingStateChanged | None = None,
    consumers: dict[str, dict[str, int]] | None = None,
) -> dict:
    return build_status(names, beats, state, consumers or {}, STALE_AFTER)


def test_fresh_heartbeat_is_healthy() -> None:
    out = status(("signal",), [beat("signal", 1)])
    svc = out["services"]["signal"]
    assert svc["healthy"] is True
    assert svc["last_heartbeat_age_s"] is not None
    assert 0 <= svc["last_heartbeat_age_s"] < STALE_AFTER
    assert svc["instances"] == ["i1"]
    assert svc["uptime_s"] == 100.0
    assert out["healthy"] is True


def test_stale_heartbeat_is_unhealthy() -> None:
    out = status(("signal",), [beat("signal", 60)])
    svc = out["services"]["signal"]
    assert svc["healthy"] is False
    assert svc["last_heartbeat_age_s"] >= 60
    assert out["healthy"] is False


def test_missing_service_is_unhealthy_without_an_age() -> None:
    out = status(("signal", "risk-gate"), [beat("signal", 1)])
    missing = out["services"]["risk-gate"]
    assert missing["healthy"] is False
    assert missing["last_heartbeat_age_s"] is None
    assert missing["uptime_s"] is None
    assert missing["instances"] == []
    assert out["services"]["signal"]["healthy"] is True
    assert out["healthy"] is False


def test_newest_of_several_instances_decides() -> None:
    out = status(
        ("signal",),
        [beat("signal", 120, "old", uptime_s=5.0), beat("signal", 2, "new", uptime_s=7.0)],
    )
    svc = out["services"]["signal"]
    assert svc["healthy"] is True
    assert svc["instances"] == ["new", "old"]
    assert svc["uptime_s"] == 7.0


def test_heartbeats_of_unlisted_services_are_ignored() -> None:
    out = status(("signal",), [beat("signal", 1), beat("ghost", 1)])
    assert set(out["services"]) == {"signal"}


def test_consumer_lag_is_attached_per_service() -> None:
    lag = {"signal": {"pending": 3, "ack_pending": 1}}
    out = status(("signal", "risk-gate"), [beat("signal", 1)], consumers=lag)
    assert out["services"]["signal"]["consumer"] == {"pending": 3, "ack_pending": 1}
    assert out["services"]["risk-gate"]["consumer"] is None


def test_trading_state_is_unknown_without_a_state() -> None:
    out = status(("signal",), [beat("signal", 1)], state=None)
    assert out["trading_state"] == "UNKNOWN"
    assert out["state_reason"] == ""
    assert out["state_operator"] == ""


def test_trading_state_reports_state_reason_and_operator() -> None:
    state = TradingStateChanged(state=TradingState.HALTED, reason="drill", operator="alice")
    out = status(("signal",), [beat("signal", 1)], state=state)
    assert (out["trading_state"], out["state_reason"], out["state_operator"]) == (
        "HALTED",
        "drill",
        "alice",
    )


def test_instance_and_version_come_from_the_newest_heartbeat() -> None:
    out = status(("signal",), [beat("signal", 30, "old"), beat("signal", 1, "new")])
    assert (out["services"]["signal"]["instance"], out["services"]["signal"]["version"]) == (
        "new",
        "0.1.0",
    )


def test_extra_sections_are_added_at_the_top_level() -> None:
    out = build_status(("signal",), [], None, {}, STALE_AFTER, {"alerts": {"unacked": []}})
    assert out["alerts"] == {"unacked": []}
    assert out["healthy"] is False
