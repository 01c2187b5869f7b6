"""A throwaway stack for a benchmark run: embedded servers plus real service processes."""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..cli.services import SERVICE_NAMES
from ..cli.up import Supervisor, wait_healthy
from ..stack.servers import NatsServer, Postgres, child_env, free_port

BENCH_CONFIG = """
[venues.paper]
kind = "paper"
symbols = ["BTC/USDT", "ETH/USDT"]
taker_fee_rate = "0.001"

[strategies.bench]
enabled = true

# The bench measures the pipeline's capacity, so the gate's own throttles must not be the
# limit: rates and open orders are lifted; every check still runs on every intent.
[risk]
max_notional_per_order = "1000000000"
max_orders_per_window = 100000000
max_orders_per_window_per_strategy = 100000000
max_open_orders = 100000000
stale_market_data_s = 86400

[feed]
enabled = false

[alerting.webhook]
url = "{webhook_url}"
format = "generic"

[telemetry]
log_format = "json"
log_level = "WARNING"
"""


@dataclass
class BenchStack:
    root: Path
    nats: NatsServer | None = None
    postgres: Postgres | None = None
    supervisor: Supervisor | None = None
    _watchers: list[asyncio.Task[None]] | None = None

    @classmethod
    def temporary(cls) -> BenchStack:
        return cls(Path(tempfile.mkdtemp(prefix="tradebus-bench-")))

    @property
    def url(self) -> str:
        assert self.nats is not None
        return self.nats.url

    webhook_url: str = ""

    async def start(self) -> None:
        self.nats = NatsServer(self.root / "nats", free_port()).start()
        self.postgres = Postgres(self.root / "pg").start()
        config = self.root / "tradebus.toml"
        config.write_text(BENCH_CONFIG.replace("{webhook_url}", self.webhook_url))
        env = child_env(self.nats.url, self.postgres.dsn, str(config))
        (self.root / "logs").mkdir(exist_ok=True)
        self.supervisor = Supervisor(list(SERVICE_NAMES), env, self.root / "logs")
        self._watchers = [
            asyncio.create_task(self.supervisor.watch(c)) for c in self.supervisor.children
        ]
        missing = await wait_healthy(self.nats.url, SERVICE_NAMES, 90)
        if missing:
            raise RuntimeError(f"bench stack: not healthy: {missing} (logs: {self.root}/logs)")

    def pids(self) -> dict[str, int]:
        assert self.supervisor is not None
        return {c.name: c.proc.pid for c in self.supervisor.children if c.proc}

    async def stop(self) -> None:
        if self.supervisor:
            await self.supervisor.stop()
        for w in self._watchers or []:
            w.cancel()
        if self.postgres:
            self.postgres.stop()
        if self.nats:
            self.nats.stop()


def peak_rss_mb(pid: int) -> float | None:
    """VmHWM: the peak resident set of a live process, in MB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None
