"""Alerting against real sinks on loopback (aiohttp, aiosmtpd) and a real nats-server KV.

The engine is driven directly with an injected clock where time matters (dedup windows,
escalation); nothing sleeps to synchronize.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from tradebus_alerting.delivery import Dispatcher
from tradebus_alerting.engine import AlertEngine
from tradebus_alerting.model import Notice, NoticeKind
from tradebus_alerting.sinks import build_sinks
from tradebus_alerting.store import AlertStore, open_bucket
from tradebus_common.config import (
    AlertingConfig,
    EmailSinkConfig,
    PagerDutySinkConfig,
    WebhookSinkConfig,
)
from tradebus_common.events import Alert, AlertAcknowledged, AlertCode, Severity
from tradebus_common.stack.servers import free_port

from ..support.sinks import HttpReceiver, SmtpReceiver

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
ROUTING_KEY = "R0UT1NGKEY0000000000000000000000"


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


@pytest.fixture
async def http():
    r = await HttpReceiver().start()
    yield r
    await r.stop()


@pytest.fixture
async def smtp():
    r = SmtpReceiver(asyncio.get_running_loop(), auth={"ops": "s3cret"}).start()
    yield r
    r.stop()


def alerting_config(http: HttpReceiver, smtp_port: int, **over) -> AlertingConfig:
    base = dict(
        dedup_window_s=300.0,
        escalation_delay_s=600.0,
        retry_initial_s=0.05,
        retry_max_s=0.2,
        retry_attempts=3,
        webhook=WebhookSinkConfig(url=http.url("webhook"), format="generic", timeout_s=2),
        email=EmailSinkConfig(
            host="127.0.0.1",
            port=smtp_port,
            starttls=False,
            username="ops",
            password_env="TEST_SMTP_PASSWORD",
            sender="tradebus@test",
            recipients=["oncall@test"],
            timeout_s=5,
        ),
        pagerduty=PagerDutySinkConfig(
            events_url=http.url("pagerduty"), routing_key_env="TEST_PD_KEY", timeout_s=2
        ),
    )
    base.update(over)
    return AlertingConfig(**base)


@pytest.fixture
def secrets(monkeypatch):
    monkeypatch.setenv("TEST_SMTP_PASSWORD", "s3cret")
    monkeypatch.setenv("TEST_PD_KEY", ROUTING_KEY)


class Harness:
    def __init__(self, engine: AlertEngine, clock: Clock, published: list) -> None:
        self.engine = engine
        self.clock = clock
        self.published = published

    async def send(self, alert: Alert) -> None:
        await self.engine.handle(alert)

    async def idle(self) -> None:
        await self.engine.dispatcher.idle()


async def make_engine(nc, cfg: AlertingConfig, clock: Clock) -> Harness:
    store = AlertStore(await open_bucket(nc.jetstream(), 1))
    dispatcher = Dispatcher(build_sinks(cfg), store, cfg, clock)
    published: list = []

    async def publish(event) -> None:
        published.append(event)

    engine = AlertEngine(cfg, store, dispatcher, publish, clock)
    await engine.load()
    return Harness(engine, clock, published)


@pytest.fixture
async def engines(nc):
    """make(cfg, clock) -> Harness; every engine's sinks are closed after the test."""
    made: list[Harness] = []

    async def make(cfg: AlertingConfig, clock: Clock) -> Harness:
        made.append(await make_engine(nc, cfg, clock))
        return made[-1]

    yield make
    for h in made:
        await h.engine.dispatcher.close()


def critical(**kw) -> Alert:
    fields = dict(
        id="0190a000-0000-7000-8000-000000000001",
        ts=T0,
        severity=Severity.CRITICAL,
        source="risk-gate",
        code=AlertCode.TRADING_HALTED,
        message="trading halted: drill",
        context={"operator": "alice"},
        dedup_key="risk-gate:TRADING_HALTED",
        correlation_id="sig-1",
    )
    fields.update(kw)
    return Alert(**fields)


async def test_critical_alert_reaches_webhook_email_and_pagerduty_with_exact_payloads(
    engines, http, smtp, secrets
):
    h = await engines(alerting_config(http, smtp.port), Clock())
    await h.send(critical())
    await h.idle()

    assert http.bodies["webhook"] == [
        {
            "id": "0190a000-0000-7000-8000-000000000001",
            "alert_id": "0190a000-0000-7000-8000-000000000001",
            "kind": "alert",
            "severity": "critical",
            "source": "risk-gate",
            "code": "TRADING_HALTED",
            "message": "trading halted: drill",
            "context": {"operator": "alice"},
            "dedup_key": "risk-gate:TRADING_HALTED",
            "correlation_id": "sig-1",
            "ts": "2026-01-05T12:00:00+00:00",
            "repeat_count": 0,
            "escalation": 0,
            "resolved": False,
        }
    ]
    assert http.bodies["pagerduty"] == [
        {
            "routing_key": ROUTING_KEY,
            "event_action": "trigger",
            "dedup_key": "risk-gate:TRADING_HALTED",
            "payload": {
                "summary": "[CRITICAL] risk-gate TRADING_HALTED: trading halted: drill",
                "source": "risk-gate",
                "severity": "critical",
                "timestamp": "2026-01-05T12:00:00+00:00",
                "component": "risk-gate",
                "class": "TRADING_HALTED",
                "custom_details": {
                    "operator": "alice",
                    "alert_id": "0190a000-0000-7000-8000-000000000001",
                    "repeat_count": 0,
                    "escalation": 0,
                },
            },
        }
    ]
    [(envelope, mail)] = smtp.messages
    assert envelope.mail_from == "tradebus@test"
    assert envelope.rcpt_tos == ["oncall@test"]
    assert mail["Subject"] == "tradebus: [CRITICAL] risk-gate TRADING_HALTED: trading halted: drill"
    assert mail["X-Tradebus-Alert-Id"] == "0190a000-0000-7000-8000-000000000001"
    body = mail.get_payload(decode=True).decode()
    assert "operator: alice" in body
    assert "tradebus alerts ack 0190a000-0000-7000-8000-000000000001 --operator NAME" in body
    record = h.engine.records["0190a000-0000-7000-8000-000000000001"]
    assert record.deliveries == {
        "log": "delivered",
        "webhook": "delivered",
        "email": "delivered",
        "pagerduty": "delivered",
    }


async def test_slack_format_is_slack_compatible(engines, http, secrets):
    cfg = alerting_config(http, free_port(), webhook=WebhookSinkConfig(url=http.url("webhook")))
    h = await engines(cfg, Clock())
    await h.send(critical(severity=Severity.WARNING, context={}))
    await h.idle()
    assert http.bodies["webhook"] == [
        {
            "text": "[WARNING] risk-gate TRADING_HALTED: trading halted: drill",
            "attachments": [
                {
                    "color": "#daa038",
                    "fields": [
                        {"title": "source", "value": "risk-gate", "short": True},
                        {"title": "code", "value": "TRADING_HALTED", "short": True},
                        {
                            "title": "alert id",
                            "value": "0190a000-0000-7000-8000-000000000001",
                            "short": False,
                        },
                    ],
                    "ts": int(T0.timestamp()),
                }
            ],
        }
    ]
    assert http.bodies["pagerduty"] == []  # WARNING: log and webhook only


async def test_storm_of_1000_identical_alerts_sends_once_then_one_summary(engines, http, secrets):
    clock = Clock()
    h = await engines(alerting_config(http, free_port()), clock)
    for i in range(1000):
        clock.advance(milliseconds=100)
        await h.send(critical(id=f"storm-{i}", severity=Severity.ERROR, message=f"boom {i}"))
    await h.engine.tick()
    await h.idle()
    assert [b["message"] for b in http.bodies["webhook"]] == ["boom 0"]

    clock.advance(seconds=301)
    await h.engine.tick()
    await h.idle()
    summary = http.bodies["webhook"][1]
    assert (summary["kind"], summary["repeat_count"], summary["message"]) == (
        "repeat",
        999,
        "boom 999",
    )
    await h.engine.tick()  # nothing more suppressed: no second summary
    await h.idle()
    assert len(http.bodies["webhook"]) == 2


async def test_unacked_critical_escalates_after_the_delay_and_ack_stops_it(
    engines, http, smtp, secrets
):
    clock = Clock()
    h = await engines(alerting_config(http, smtp.port), clock)
    await h.send(critical())
    await h.idle()
    clock.advance(seconds=599)
    await h.engine.tick()
    await h.idle()
    assert len(http.bodies["pagerduty"]) == 1  # not yet

    clock.advance(seconds=2)
    await h.engine.tick()
    await h.idle()
    assert len(http.bodies["pagerduty"]) == 2
    escalated = http.bodies["webhook"][-1]
    assert (escalated["kind"], escalated["escalation"]) == ("escalation", 1)
    assert http.bodies["pagerduty"][-1]["payload"]["summary"].startswith("ESCALATION 1")

    record = await h.engine.ack(critical().id, "bob")
    assert record is not None and record.acked_by == "bob"
    assert [type(e) for e in h.published] == [AlertAcknowledged]
    clock.advance(seconds=3600)
    await h.engine.tick()
    await h.idle()
    assert len(http.bodies["pagerduty"]) == 2
    assert [r.alert.id for r in h.engine.list(unacked_only=True)] == []


async def test_resolve_goes_to_pagerduty_with_the_trigger_dedup_key(engines, http, smtp, secrets):
    h = await engines(alerting_config(http, smtp.port), Clock())
    await h.send(critical(dedup_key="heartbeat:signal", code=AlertCode.HEARTBEAT_MISSING))
    await h.send(
        critical(
            id="0190a000-0000-7000-8000-000000000002",
            severity=Severity.INFO,
            code=AlertCode.HEARTBEAT_RECOVERED,
            dedup_key="heartbeat:signal",
            resolved=True,
        )
    )
    await h.idle()
    assert [b["event_action"] for b in http.bodies["pagerduty"]] == ["trigger", "resolve"]
    assert http.bodies["pagerduty"][1] == {
        "routing_key": ROUTING_KEY,
        "event_action": "resolve",
        "dedup_key": "heartbeat:signal",
    }


async def test_broken_sink_does_not_delay_the_others(engines, http, smtp, secrets):
    dead = f"http://127.0.0.1:{free_port()}/webhook"  # nothing listens: connection refused
    cfg = alerting_config(
        http, smtp.port, webhook=WebhookSinkConfig(url=dead), retry_initial_s=0.5, retry_max_s=1
    )
    h = await engines(cfg, Clock())
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await h.send(critical())
    await http.wait_for("pagerduty", timeout=5)
    await smtp.wait_for(1, timeout=5)
    assert http.arrived["pagerduty"][0] - t0 < 0.5  # the webhook's retries took > 1.5 s
    await h.idle()
    assert loop.time() - t0 >= 1.0
    health = h.engine.dispatcher.health["webhook"]
    assert (health.healthy, health.consecutive_failures) == (False, 3)
    assert "ClientConnectorError" in health.last_error and "127.0.0.1" in health.last_error
    assert h.engine.records[critical().id].deliveries["webhook"] == "failed"
    assert h.engine.records[critical().id].deliveries["pagerduty"] == "delivered"


async def test_alert_delivered_before_a_restart_is_not_sent_again(engines, http, smtp, secrets):
    cfg = alerting_config(http, smtp.port)
    first = await engines(cfg, Clock())
    await first.send(critical())
    await first.idle()

    second = await engines(cfg, Clock())  # a restart: memory rebuilt from KV
    await second.send(critical())  # the consumer redelivers the alert
    # and a notice left in KV by a crash mid-delivery is resumed: each sink checks its mark
    second.engine.dispatcher.dispatch(
        Notice(
            id=critical().id,
            kind=NoticeKind.ALERT,
            alert=critical(),
            sinks=["webhook", "email", "pagerduty"],
        )
    )
    await second.idle()
    assert len(http.bodies["pagerduty"]) == 1
    assert len(http.bodies["webhook"]) == 1
    assert len(smtp.messages) == 1
    assert second.engine.records[critical().id].deliveries["pagerduty"] == "delivered"
