"""`tradebus up` with auth on (the default), as the README walks a newcomer through it:
credentials in <data-dir>/creds, halt with the operator's creds, a strategy's spoofed resume
refused and alerted, resume by the operator; every service works inside its permissions."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import nats
import pytest

from tradebus_common import events as ev
from tradebus_common import subjects
from tradebus_common.stack.servers import free_port

from ..support.bus import collect, publish_raw
from .test_up import Up

pytestmark = pytest.mark.e2e
CLI = [sys.executable, "-m", "tradebus_common.cli.main"]


async def tradebus(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *CLI, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode()


def violations(nats_log: Path) -> list[str]:
    return [line for line in nats_log.read_text().splitlines() if "Violation" in line]


async def test_auth_on_halt_spoofed_resume_alerted_operator_resumes(tmp_path: Path):
    data_dir, port = tmp_path / "stack", free_port()
    url = f"nats://127.0.0.1:{port}"
    creds = data_dir / "creds"
    up = Up(data_dir, port)
    banner = await up.start()
    try:
        assert "auth on" in banner
        for name in ("operator", "observer", "strategy-demo"):
            assert str(creds / f"{name}.creds") in banner
        code, out = await tradebus("status", "--nats", url)
        assert code == 2 and "credentials" in out  # anonymous: refused, and told what to do
        watch = await nats.connect(url, user_credentials=str(creds / "observer.creds"))
        alerts = await collect(watch, subjects.ALERT_ALL)
        states = await collect(watch, subjects.RISK_STATE)

        # The README's halt: `nats --creds operator.creds pub trading.control.halt "reason"`
        op = await nats.connect(url, user_credentials=str(creds / "operator.creds"))
        await publish_raw(op, subjects.CONTROL_HALT, b"drill")
        await states.wait_for(lambda e: e.state is ev.TradingState.HALTED)

        # A strategy's credentials cannot resume, and trying pages someone.
        code, out = await tradebus(
            "resume", "--nats", url, "--creds", str(creds / "strategy-demo.creds"),
            "--operator", "mallory", "--timeout", "2",
        )  # fmt: skip
        assert code != 0 and "NATS refused this identity" in out
        [alert] = await alerts.wait_for(
            lambda e: (
                isinstance(e, ev.Alert)
                and e.code is ev.AlertCode.PERMISSION_VIOLATION
                and e.context["subject"] == subjects.CONTROL_RESUME
            ),
            timeout=20,
        )
        assert alert.context["identity"] == "strategy-demo"
        assert alert.severity is ev.Severity.CRITICAL
        assert not states.matching(lambda e: e.state is ev.TradingState.ACTIVE)

        code, out = await tradebus(
            "resume", "--nats", url, "--creds", str(creds / "operator.creds"), "--operator", "ana"
        )
        assert code == 0, out
        await states.wait_for(lambda e: e.state is ev.TradingState.ACTIVE)
        code, out = await tradebus(
            "status", "--nats", url, "--creds", str(creds / "observer.creds"), "--json"
        )
        assert '"healthy": true' in out, out
        # The container HEALTHCHECK, run as the service's own identity on this host.
        code, out = await tradebus(
            "healthcheck", "risk-gate", "--nats", url, "--creds", str(creds / "risk-gate.creds")
        )
        assert code == 0 and "healthy: risk-gate" in out, out
        code, out = await tradebus(
            "healthcheck", "nope", "--nats", url, "--creds", str(creds / "observer.creds")
        )
        assert code == 1 and "unhealthy" in out
        await op.close()
        await watch.close()
    finally:
        assert await up.interrupt() == 0
    # Least privilege did not get in the way: the only refusals are the spoofer's.
    refused = violations(data_dir / "nats" / "nats-server.log")
    keys = (data_dir / "nats" / "identities.json").read_text()
    spoofer = re.search(r'"strategy-demo": "(U\w+)"', keys)[1]
    assert refused and all(spoofer in line for line in refused), refused
