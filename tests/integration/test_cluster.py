"""The compose `cluster` profile, proven without Docker: three nats-server processes on
loopback with the same generated config (auth on), R3 streams, the stream leader killed
with -9 under load, and not one acknowledged message lost or doubled."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import nats
import pytest

from tradebus_common import subjects
from tradebus_common.auth.generate import AuthLayout, init_auth
from tradebus_common.auth.topology import bootstrap_topology
from tradebus_common.bus import MSG_ID
from tradebus_common.config import BusConfig, Config
from tradebus_common.stack.servers import NatsServer, free_port

N_MESSAGES = 1500
KILL_AFTER = 400


def cluster_args(name: str, cluster_port: int, routes: list[int]) -> tuple[str, ...]:
    """What the compose file passes each node (tests/unit/test_compose.py checks it does)."""
    route_urls = ",".join(f"nats://127.0.0.1:{p}" for p in routes)
    return (
        "--name", name,
        "--cluster_name", "tradebus",
        "--cluster", f"nats://127.0.0.1:{cluster_port}",
        "--routes", route_urls,
    )  # fmt: skip


@pytest.fixture
def auth(tmp_path: Path) -> AuthLayout:
    return init_auth(tmp_path / "auth", [])


@pytest.fixture
def cluster(tmp_path: Path, auth: AuthLayout) -> Iterator[list[NatsServer]]:
    routes = [free_port() for _ in range(3)]
    nodes = [
        NatsServer(
            tmp_path / f"nats-{i + 1}",
            free_port(),
            monitor_port=free_port(),
            config_file=auth.server_conf,
            extra_args=cluster_args(f"nats-{i + 1}", routes[i], routes),
        )
        for i in range(3)
    ]
    for node in nodes:
        node.start()
    yield nodes
    for node in nodes:
        node.stop()


async def wait_healthy(nodes: list[NatsServer], timeout_s: float = 60) -> None:
    """/healthz answers 200 once JetStream is up with a meta leader (compose checks it too)."""

    async def one(session: aiohttp.ClientSession, node: NatsServer) -> None:
        url = f"http://127.0.0.1:{node.monitor_port}/healthz"
        while True:
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(url) as resp:
                    if resp.status == 200:
                        return
            await asyncio.sleep(0.2)  # ok-sleep: polling /healthz, which announces nothing

    async with aiohttp.ClientSession() as session:
        await asyncio.wait_for(asyncio.gather(*(one(session, n) for n in nodes)), timeout_s)


async def publish_until_acked(js, subject: str, data: bytes, msg_id: str) -> int:  # noqa: ANN001
    """At-least-once: retry the same Nats-Msg-Id until stored; the stream drops copies."""
    while True:
        try:
            ack = await js.publish(subject, data, headers={MSG_ID: msg_id}, timeout=2)
            return ack.seq
        except (nats.errors.Error, TimeoutError):  # no leader yet, or reconnecting
            await asyncio.sleep(0.1)  # ok-sleep: retry backoff while a leader is elected


async def test_r3_streams_survive_the_leader_killed_under_load(
    cluster: list[NatsServer], auth: AuthLayout
):
    await wait_healthy(cluster)
    urls = [n.url for n in cluster]
    admin = await nats.connect(servers=urls, user_credentials=str(auth.creds("admin")))
    config = Config(bus=BusConfig(replicas=3))
    await bootstrap_topology(admin.jetstream(), config)
    info = await admin.jetstream().stream_info(subjects.STREAM_TRADING)
    assert info.config.num_replicas == 3 and len(info.cluster.replicas) == 2
    leader = next(n for n in cluster if f"nats-{cluster.index(n) + 1}" == info.cluster.leader)
    await admin.close()

    # The load: the execution-gateway's identity publishing fills, failing over between nodes.
    gw = await nats.connect(
        servers=urls,
        user_credentials=str(auth.creds("execution-gateway")),
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.2,
    )
    js = gw.jetstream()
    for i in range(N_MESSAGES):
        if i == KILL_AFTER:
            leader.kill()  # kill -9 the stream leader mid-stream
        await publish_until_acked(js, "trading.fill.paper.BTC-USDT", b"{}", f"fill-{i}")
    await gw.close()

    survivors = [n.url for n in cluster if n is not leader]
    reader = await nats.connect(servers=survivors, user_credentials=str(auth.creds("admin")))
    try:
        info = await reader.jetstream().stream_info(subjects.STREAM_TRADING)
        assert info.cluster.leader != f"nats-{cluster.index(leader) + 1}"  # a new leader
        assert info.state.messages == N_MESSAGES  # none lost, none doubled
        ids = await read_msg_ids(reader, N_MESSAGES)
        assert ids == {f"fill-{i}" for i in range(N_MESSAGES)}
    finally:
        await reader.close()


async def read_msg_ids(nc, count: int) -> set[str]:  # noqa: ANN001
    """Every stored message's id, read by sequence from the new leader (a direct read: an
    ephemeral consumer placed just after a failover can stall for its own election)."""
    js = nc.jetstream()
    info = await js.stream_info(subjects.STREAM_TRADING)
    ids = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        for attempt in range(20):
            try:
                msg = await js.get_msg(subjects.STREAM_TRADING, seq)
                break
            except (nats.errors.Error, TimeoutError):
                if attempt == 19:
                    raise
                await asyncio.sleep(0.25)  # ok-sleep: retry backoff while the leader settles
        ids.append(msg.headers[MSG_ID])
    assert len(ids) == count and len(ids) == len(set(ids))
    return set(ids)
