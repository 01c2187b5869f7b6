"""The alerting service in-process on a real nats-server: the consumer path, the monitors
(lag, venue latency), the operator commands and `tradebus status`."""

from __future__ import annotations

import argparse
import json

import msgspec
import pytest

from tradebus_alerting import cli as alerts_cli
from tradebus_common import subjects
from tradebus_common.cli import client
from tradebus_common.config import AlertingConfig, PagerDutySinkConfig, WebhookSinkConfig
from tradebus_common.events import Alert, AlertCode, Severity, VenueLatencyObserved

from ..conftest import make_config
from ..support.bus import collect, publish_event, publish_raw
from ..support.sinks import HttpReceiver
from ..support.stack import InProcessStack


@pytest.fixture
async def http():
    r = await HttpReceiver().start()
    yield r
    await r.stop()


@pytest.fixture
async def alerting(nats_server, http, monkeypatch):
    monkeypatch.setenv("TEST_PD_KEY", "key-1")
    cfg = make_config(nats_server.url)
    cfg = msgspec.structs.replace(
        cfg,
        alerting=AlertingConfig(
            webhook=WebhookSinkConfig(url=http.url("webhook"), format="generic"),
            pagerduty=PagerDutySinkConfig(
                events_url=http.url("pagerduty"), routing_key_env="TEST_PD_KEY"
            ),
            tick_interval_s=0.2,
            lag_check_interval_s=0.2,
            lag_threshold_msgs=5,
            latency_min_samples=10,
            latency_p99_threshold_ms=2000,
        ),
    )
    stack = InProcessStack(cfg)
    await stack.start("alerting")
    yield stack
    await stack.stop()


def args(nats_server, **kw) -> argparse.Namespace:
    return argparse.Namespace(nats=nats_server.url, config=None, timeout=3.0, **kw)


async def test_published_alert_reaches_the_sinks_and_can_be_listed_and_acked(
    alerting, nats_server, nc, http, capsys
):
    alert = Alert(
        severity=Severity.CRITICAL,
        source="reconciler",
        code=AlertCode.RECON_MISMATCH,
        message="2 mismatches",
        dedup_key="reconciler:RECON_MISMATCH",
    )
    acks = await collect(nc, subjects.ALERT_ACKED)
    await publish_event(nc, alert)
    [pd] = await http.wait_for("pagerduty")
    assert pd["dedup_key"] == "reconciler:RECON_MISMATCH"
    [hook] = await http.wait_for("webhook")
    assert hook["alert_id"] == alert.id

    assert await alerts_cli.cmd_list(args(nats_server, unacked=True, limit=10, json=True)) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [a["id"] for a in listed] == [alert.id]

    assert await alerts_cli.cmd_ack(args(nats_server, alert_id=alert.id, operator="carol")) == 0
    assert "acknowledged by carol" in capsys.readouterr().out
    [acked] = await acks.wait_for(lambda e: getattr(e, "alert_id", "") == alert.id)
    assert acked.operator == "carol"

    await alerts_cli.cmd_list(args(nats_server, unacked=True, limit=10, json=True))
    assert json.loads(capsys.readouterr().out) == []

    with pytest.raises(client.ClientError, match="no alert nope"):
        await alerts_cli.cmd_ack(args(nats_server, alert_id="nope", operator="carol"))


async def test_status_shows_sink_health_unacked_alerts_instance_and_version(
    alerting, nats_server, nc, http, capsys
):
    alert = Alert(severity=Severity.WARNING, source="x", code=AlertCode.VENUE_REJECTED, message="m")
    await publish_event(nc, alert)
    await http.wait_for("webhook")
    await client.cmd_status(args(nats_server, json=True, stale_after=15.0))
    status = json.loads(capsys.readouterr().out)
    assert status["services"]["alerting"]["instance"] == "test-alerting"
    assert status["services"]["alerting"]["version"]
    assert [a["id"] for a in status["alerts"]["unacked"]] == [alert.id]
    sinks = status["alerts"]["sinks"]
    assert sinks["webhook"]["configured"] and sinks["webhook"]["healthy"]
    assert sinks["email"]["configured"] is False


async def test_consumer_lag_over_the_threshold_raises_an_alert(alerting, nats_server, nc):
    from nats.js import api

    alerts = await collect(nc, subjects.ALERT_ALL)
    # A paused consumer: a durable nobody fetches from, then a backlog behind it.
    await nc.jetstream().add_consumer(
        subjects.STREAM_TRADING,
        api.ConsumerConfig(
            durable_name="paused",
            filter_subject="trading.signal.>",
            ack_policy=api.AckPolicy.EXPLICIT,
        ),
    )
    for i in range(8):
        await publish_raw(nc, "trading.signal.demo", {"id": f"s{i}"})
    [lag] = await alerts.wait_for(
        lambda e: isinstance(e, Alert) and e.code is AlertCode.CONSUMER_LAG
    )
    assert lag.context == {"durable": "paused", "pending": 8, "threshold": 5}
    assert lag.dedup_key == "lag:paused"


async def test_venue_latency_p99_over_threshold_raises_an_alert(alerting, nc):
    alerts = await collect(nc, subjects.ALERT_ALL)
    for i in range(20):
        ms = 2500 if i % 5 == 0 else 100
        await publish_event(
            nc, VenueLatencyObserved(venue="binance", operation="create_order", latency_ms=ms)
        )
    [slow] = await alerts.wait_for(
        lambda e: isinstance(e, Alert) and e.code is AlertCode.VENUE_LATENCY
    )
    assert slow.severity is Severity.ERROR
    assert (slow.context["p50_ms"], slow.context["p99_ms"], slow.context["samples"]) == (
        100,
        2500,
        20,
    )


async def test_storm_through_the_bus_sends_once_and_one_summary(nats_server, nc, http):
    cfg = msgspec.structs.replace(
        make_config(nats_server.url),
        alerting=AlertingConfig(
            webhook=WebhookSinkConfig(url=http.url("webhook"), format="generic"),
            dedup_window_s=5.0,
            tick_interval_s=0.2,
        ),
    )
    stack = InProcessStack(cfg)
    await stack.start("alerting")
    try:
        js = nc.jetstream()
        for i in range(1000):
            storm = Alert(
                severity=Severity.ERROR,
                source="signal",
                code=AlertCode.DEAD_LETTER,
                message=f"bad signal {i}",
                dedup_key="signal:deadletter:SCHEMA_VIOLATION",
            )
            await js.publish(
                subjects.alert("error", "signal"),
                msgspec.json.encode(storm),
                headers={"Nats-Msg-Id": storm.id},
            )
        bodies = await http.wait_for("webhook", count=2, timeout=20)
        assert [(b["kind"], b["repeat_count"]) for b in bodies] == [("alert", 0), ("repeat", 999)]
        assert (bodies[0]["message"], bodies[1]["message"]) == ("bad signal 0", "bad signal 999")
    finally:
        await stack.stop()
    assert len(http.bodies["webhook"]) == 2
