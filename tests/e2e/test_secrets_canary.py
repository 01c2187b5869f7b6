"""Secrets come from the environment (or files the config names) and go only where they are
for: the stack runs with canary secrets, uses them, and no log, stream or bucket holds one."""

from __future__ import annotations

import asyncio
from pathlib import Path

import nats
import pytest
from aiohttp import web

from tradebus_common import subjects
from tradebus_common.stack.servers import free_port

from .test_up import Up

pytestmark = pytest.mark.e2e
CANARY = "canary-7f3a9c1e5b"
SECRETS = {
    "TRADEBUS_ALERT_WEBHOOK_URL": f"webhook-{CANARY}",  # the path of the webhook URL
    "TRADEBUS_PAGERDUTY_ROUTING_KEY": f"pd-{CANARY}",
    "TRADEBUS_SMTP_PASSWORD": f"smtp-{CANARY}",
}


class Receiver:
    """Plays Slack and PagerDuty: records what arrives, so the test knows secrets were used."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, bytes]] = []
        self.arrived = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((request.path, await request.read()))
        paths = {p for p, _ in self.requests}
        if any(SECRETS["TRADEBUS_ALERT_WEBHOOK_URL"] in p for p in paths) and "/pd" in paths:
            self.arrived.set()
        return web.json_response({"ok": True})


def secrets_found(root: Path, secrets: list[str]) -> list[str]:
    found = []
    for path in root.rglob("*"):
        if not path.is_file() or "creds" in path.parts or "keys" in path.parts:
            continue
        data = path.read_bytes()
        found += [f"{path}: {s[:12]}..." for s in secrets if s.encode() in data]
    return found


async def ignore(_: Exception) -> None:
    """The spoofer's own permission error: expected, asserted elsewhere (test_auth)."""


def seeds(creds_dir: Path) -> list[str]:
    out = []
    for path in creds_dir.glob("*.creds"):
        lines = path.read_text().splitlines()
        out.append(lines[lines.index("-----BEGIN USER NKEY SEED-----") + 1])
    return out


async def test_canary_secrets_never_reach_logs_or_the_stream(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/{tail:.*}", receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    http_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", http_port).start()
    base = f"http://127.0.0.1:{http_port}"
    config = tmp_path / "tradebus.toml"
    config.write_text(
        f"""
[alerting.pagerduty]
events_url = "{base}/pd"
[alerting.email]
host = "127.0.0.1"
port = {free_port()}
username = "ops"
recipients = ["ops@example.com"]
"""
    )
    monkeypatch.setenv(
        "TRADEBUS_ALERT_WEBHOOK_URL", f"{base}/{SECRETS['TRADEBUS_ALERT_WEBHOOK_URL']}"
    )
    monkeypatch.setenv("TRADEBUS_PAGERDUTY_ROUTING_KEY", SECRETS["TRADEBUS_PAGERDUTY_ROUTING_KEY"])
    monkeypatch.setenv("TRADEBUS_SMTP_PASSWORD", SECRETS["TRADEBUS_SMTP_PASSWORD"])
    data_dir, port = tmp_path / "stack", free_port()
    up = Up(data_dir, port)
    up.args += ["--config", str(config)]
    await up.start()
    try:
        # A spoofed resume: a critical alert, routed to webhook, email and PagerDuty.
        spoofer = await nats.connect(
            f"nats://127.0.0.1:{port}",
            user_credentials=str(data_dir / "creds" / "strategy-demo.creds"),
            error_cb=ignore,
        )
        await spoofer.publish(subjects.CONTROL_RESUME, b"let me in")
        await spoofer.flush()
        await spoofer.close()
        await asyncio.wait_for(receiver.arrived.wait(), 60)
    finally:
        assert await up.interrupt() == 0
        await runner.cleanup()
    pd_body = next(body for path, body in receiver.requests if path == "/pd")
    assert SECRETS["TRADEBUS_PAGERDUTY_ROUTING_KEY"].encode() in pd_body  # it was used
    # Every log, the whole JetStream store (TRADING, MARKET, every KV bucket) and the
    # server log: no canary, and no NKey seed of any identity.
    leaks = secrets_found(data_dir, [*SECRETS.values(), CANARY, *seeds(data_dir / "creds")])
    assert not leaks, leaks
    # The scan does see stream content: the alert itself is in the store (uncompressed).
    assert any("jetstream" in hit for hit in secrets_found(data_dir, ["PERMISSION_VIOLATION"]))
    logs = list((data_dir / "logs").glob("*.log"))
    assert {p.stem for p in logs} >= {"alerting", "risk-gate", "auth-monitor"}
