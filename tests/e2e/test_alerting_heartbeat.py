"""Heartbeat loss and recovery with real processes: kill -9 a service, the CRITICAL (and the
PagerDuty trigger) arrives; restart it, the INFO resolve (and the PagerDuty resolve) arrives."""

from __future__ import annotations

from pathlib import Path

import pytest

from tradebus_common import subjects
from tradebus_common.events import Alert, AlertCode, Severity

from ..support.bus import collect
from ..support.procs import ServiceProcess, service_env, write_config
from ..support.sinks import HttpReceiver
from .test_processes import _wait_beats, _watch_heartbeats

pytestmark = pytest.mark.e2e


def _is(code: AlertCode):
    return lambda e: isinstance(e, Alert) and e.code is code


async def test_kill9_raises_heartbeat_missing_and_restart_resolves_it(
    nats_server, database, nc, tmp_path: Path
):
    http = await HttpReceiver().start()
    extra = f"""
[alerting]
heartbeat_timeout_s = 3.0
tick_interval_s = 0.5

[alerting.pagerduty]
events_url = "{http.url("pagerduty")}"
routing_key_env = "TRADEBUS_TEST_PD_KEY"
"""
    env = service_env(nats_server.url, database, write_config(tmp_path / "t.toml", extra))
    env["TRADEBUS_TEST_PD_KEY"] = "pd-key"
    procs = {n: ServiceProcess(n, env, tmp_path) for n in ("alerting", "signal")}
    alerts = await collect(nc, subjects.ALERT_ALL)
    try:
        beats = await _watch_heartbeats(nc)
        for p in procs.values():
            p.start()
        await _wait_beats(beats, list(procs), procs)

        procs["signal"].kill9()
        [lost] = await alerts.wait_for(_is(AlertCode.HEARTBEAT_MISSING), timeout=20)
        assert lost.severity is Severity.CRITICAL
        assert (lost.context["service"], lost.dedup_key) == ("signal", "heartbeat:signal")
        [trigger] = await http.wait_for("pagerduty", timeout=10)
        assert (trigger["event_action"], trigger["dedup_key"]) == ("trigger", "heartbeat:signal")

        procs["signal"] = ServiceProcess("signal", env, tmp_path).start()
        [back] = await alerts.wait_for(_is(AlertCode.HEARTBEAT_RECOVERED), timeout=30)
        assert (back.severity, back.resolved, back.causation_id) == (
            Severity.INFO,
            True,
            lost.id,
        )
        resolve = (await http.wait_for("pagerduty", count=2, timeout=10))[1]
        assert resolve == {
            "routing_key": "pd-key",
            "event_action": "resolve",
            "dedup_key": "heartbeat:signal",
        }
    finally:
        for p in procs.values():
            p.terminate()
        await http.stop()
