"""Services as real processes (`tradebus run <service>`), for end-to-end and kill -9 tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tradebus_common.stack.servers import child_env


class ServiceProcess:
    def __init__(self, name: str, env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.env = env
        self.log_path = log_dir / f"{name}.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> ServiceProcess:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tradebus_common.cli.main", "run", self.name],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self, timeout_s: float = 15) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def log_tail(self, n: int = 30) -> str:
        lines = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(lines[-n:])


def write_config(path: Path, extra: str = "") -> Path:
    path.write_text(f"""
[venues.paper]
kind = "paper"
symbols = ["BTC/USDT", "ETH/USDT"]
taker_fee_rate = "0.001"

[strategies.demo]
enabled = true

[bus]
nak_delay_s = 0.2
fetch_timeout_s = 0.5
ack_wait_s = 5  # a killed process's in-flight messages come back in seconds, not 30

[runtime]
heartbeat_interval_s = 1.0

[feed]
enabled = false

[telemetry]
log_format = "json"
{extra}
""")
    return path


def service_env(nats_url: str, dsn: str, config_path: Path) -> dict[str, str]:
    env = child_env(nats_url, dsn, str(config_path))
    env.pop("NATS_URL", None)
    return {k: v for k, v in env.items() if k in os.environ or k.startswith("TRADEBUS")}
