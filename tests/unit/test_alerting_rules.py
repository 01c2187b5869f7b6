"""Alerting's pure rules at their boundaries: routing, throttle window, escalation timing,
backoff, percentiles, and the heartbeat / lag / latency monitors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tradebus_alerting.delivery import backoff_delays
from tradebus_alerting.model import AlertRecord, DedupState
from tradebus_alerting.monitors.heartbeat import HeartbeatMonitor
from tradebus_alerting.monitors.lag import LagMonitor
from tradebus_alerting.monitors.latency import LatencyMonitor, percentile
from tradebus_alerting.routing import escalation_due, in_window, route, summary_due
from tradebus_alerting.sinks.http import where
from tradebus_common.config import AlertingConfig
from tradebus_common.events import (
    Alert,
    AlertCode,
    Heartbeat,
    Severity,
    VenueLatencyObserved,
)

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
CFG = AlertingConfig()


def alert(severity: Severity = Severity.CRITICAL) -> Alert:
    return Alert(severity=severity, source="s", code=AlertCode.TRADING_HALTED, message="m")


def test_default_routes_follow_the_seed_design() -> None:
    assert route(CFG, Severity.INFO) == ["log"]
    assert route(CFG, Severity.WARNING) == ["log", "webhook"]
    assert route(CFG, Severity.ERROR) == ["log", "webhook"]
    assert route(CFG, Severity.CRITICAL) == ["log", "webhook", "email", "pagerduty"]


def test_log_is_always_routed_even_if_the_config_forgets_it() -> None:
    cfg = AlertingConfig(routes={"critical": ["pagerduty"]})
    assert route(cfg, Severity.CRITICAL) == ["log", "pagerduty"]
    assert route(cfg, Severity.INFO) == ["log"]


def test_dedup_window_is_half_open() -> None:
    state = DedupState(key="k", window_start=T0, alert_id="a")
    assert in_window(state, T0 + timedelta(seconds=299.9), 300)
    assert not in_window(state, T0 + timedelta(seconds=300), 300)
    assert not in_window(None, T0, 300)


def test_summary_only_when_something_was_suppressed_and_the_window_closed() -> None:
    state = DedupState(key="k", window_start=T0, alert_id="a", suppressed=0)
    assert not summary_due(state, T0 + timedelta(hours=1), 300)
    state.suppressed = 3
    assert not summary_due(state, T0 + timedelta(seconds=10), 300)
    assert summary_due(state, T0 + timedelta(seconds=300), 300)


def test_escalation_timing_cap_ack_and_severity() -> None:
    rec = AlertRecord(alert=alert(), sent_at=T0)
    assert not escalation_due(rec, T0 + timedelta(seconds=899), CFG)
    assert escalation_due(rec, T0 + timedelta(seconds=900), CFG)
    rec.escalations = 1
    assert not escalation_due(rec, T0 + timedelta(seconds=1799), CFG)
    assert escalation_due(rec, T0 + timedelta(seconds=1800), CFG)
    rec.escalations = CFG.escalation_max
    assert not escalation_due(rec, T0 + timedelta(days=1), CFG)
    acked = AlertRecord(alert=alert(), sent_at=T0, acked_by="bob")
    assert not escalation_due(acked, T0 + timedelta(days=1), CFG)
    warning = AlertRecord(alert=alert(Severity.WARNING), sent_at=T0)
    assert not escalation_due(warning, T0 + timedelta(days=1), CFG)


def test_backoff_doubles_and_caps() -> None:
    assert backoff_delays(0.5, 3.0, 6) == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert backoff_delays(1.0, 10.0, 1) == []


def test_nearest_rank_percentiles() -> None:
    values = list(range(1, 101))
    assert (percentile(values, 50), percentile(values, 99), percentile(values, 100)) == (
        50,
        99,
        100,
    )
    assert percentile([7], 99) == 7


def test_error_text_never_carries_the_webhook_token() -> None:
    assert where("https://hooks.slack.com/services/T000/B000/XXXXSECRET") == (
        "https://hooks.slack.com:"
    )


def beat(service: str, ts: datetime, instance: str = "i1") -> Heartbeat:
    return Heartbeat(
        service=service, instance=instance, version="1", started_at=T0, uptime_s=1.0, ts=ts
    )


def test_heartbeat_missing_once_then_recovered_under_the_same_dedup_key() -> None:
    mon = HeartbeatMonitor(timeout_s=15)
    mon.observe([beat("signal", T0)])
    assert mon.evaluate(T0 + timedelta(seconds=15)) == []
    [lost] = mon.evaluate(T0 + timedelta(seconds=16))
    assert (lost.code, lost.severity, lost.dedup_key) == (
        AlertCode.HEARTBEAT_MISSING,
        Severity.CRITICAL,
        "heartbeat:signal",
    )
    assert mon.evaluate(T0 + timedelta(seconds=30)) == []  # one alert per loss
    mon.observe([])  # the bucket's TTL removed the key: the last beat is remembered
    mon.observe([beat("signal", T0 + timedelta(seconds=40), "i2")])
    [back] = mon.evaluate(T0 + timedelta(seconds=41))
    assert (back.code, back.resolved, back.dedup_key, back.causation_id) == (
        AlertCode.HEARTBEAT_RECOVERED,
        True,
        "heartbeat:signal",
        lost.id,
    )


def test_heartbeat_missing_id_is_stable_across_monitors() -> None:
    a, b = HeartbeatMonitor(15), HeartbeatMonitor(15)
    for mon in (a, b):
        mon.observe([beat("ledger", T0)])
    later = T0 + timedelta(seconds=60)
    assert a.evaluate(later)[0].id == b.evaluate(later)[0].id


def test_newest_instance_decides_a_service_is_alive() -> None:
    mon = HeartbeatMonitor(timeout_s=15)
    mon.observe([beat("signal", T0, "old"), beat("signal", T0 + timedelta(seconds=20), "new")])
    assert mon.evaluate(T0 + timedelta(seconds=25)) == []


def test_lag_alerts_on_crossing_repeats_per_window_and_resolves_with_hysteresis() -> None:
    mon = LagMonitor(threshold_msgs=100, repeat_after_s=300)
    assert mon.evaluate({"risk-gate": 99}, T0) == []
    [over] = mon.evaluate({"risk-gate": 100}, T0)
    assert (over.code, over.dedup_key) == (AlertCode.CONSUMER_LAG, "lag:risk-gate")
    assert mon.evaluate({"risk-gate": 500}, T0 + timedelta(seconds=10)) == []
    [again] = mon.evaluate({"risk-gate": 500}, T0 + timedelta(seconds=300))
    assert again.code is AlertCode.CONSUMER_LAG
    assert mon.evaluate({"risk-gate": 60}, T0 + timedelta(seconds=301)) == []
    [ok] = mon.evaluate({"risk-gate": 49}, T0 + timedelta(seconds=302))
    assert (ok.code, ok.resolved) == (AlertCode.CONSUMER_LAG_RECOVERED, True)


def test_latency_window_drops_old_samples_and_needs_enough_of_them() -> None:
    mon = LatencyMonitor(window_s=60, min_samples=3, p99_threshold_ms=1000)
    for i, ms in enumerate([5000, 5000]):
        mon.observe(
            VenueLatencyObserved(
                venue="v", operation="create_order", latency_ms=ms, ts=T0 + timedelta(seconds=i)
            )
        )
    assert mon.evaluate(T0 + timedelta(seconds=2)) == []  # 2 samples: not enough
    mon.observe(VenueLatencyObserved(venue="v", operation="x", latency_ms=10, ts=T0))
    [slow] = mon.evaluate(T0 + timedelta(seconds=2))
    assert (slow.code, slow.context["p99_ms"], slow.context["p50_ms"]) == (
        AlertCode.VENUE_LATENCY,
        5000,
        5000,
    )
    for i in range(5):
        mon.observe(
            VenueLatencyObserved(
                venue="v", operation="x", latency_ms=10, ts=T0 + timedelta(seconds=100 + i)
            )
        )
    [fine] = mon.evaluate(T0 + timedelta(seconds=105))
    assert (fine.code, fine.resolved, fine.context["samples"]) == (
        AlertCode.VENUE_LATENCY_RECOVERED,
        True,
        5,
    )


def test_the_config_example_in_docs_alerting_md_loads_and_matches_the_defaults(tmp_path) -> None:
    import re
    from pathlib import Path

    from tradebus_common.config import load_config

    doc = (Path(__file__).parents[2] / "docs" / "alerting.md").read_text()
    [toml] = re.findall(r"```toml\n(.*?)```", doc, re.S)
    path = tmp_path / "t.toml"
    path.write_text(toml)
    assert load_config(path, environ={}).alerting == AlertingConfig()
