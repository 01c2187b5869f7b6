"""NATS auth with the real nats-server and the generated config (`tradebus auth init`):
least privilege per identity, no anonymous access, operator-only commands, and a spoofed
resume that is refused and raises an alert."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client as NATS

from tradebus_common import events as ev
from tradebus_common import subjects
from tradebus_common.auth.generate import AuthLayout, init_auth
from tradebus_common.auth.identities import MONITOR_SOURCE, SERVICE_IDENTITIES, SERVICES
from tradebus_common.auth.monitor import follow, run_monitor
from tradebus_common.auth.topology import bootstrap_topology
from tradebus_common.bus import MSG_ID
from tradebus_common.cli.client import publish
from tradebus_common.config import Config
from tradebus_common.stack.servers import NatsServer, free_port

from ..support.bus import collect

REFUSAL_TIMEOUT_S = 5.0
OPERATOR_ONLY = [subjects.CONTROL_RESUME, subjects.CONTROL_MODE, subjects.CONTROL_STAGE]


class Client:
    """A connection as one identity that records the server's async permission errors."""

    def __init__(self) -> None:
        self.nc: NATS | None = None
        self.refusals: asyncio.Queue[str] = asyncio.Queue()

    async def connect(self, url: str, creds: Path) -> Client:
        async def on_error(e: Exception) -> None:
            if "permissions violation" in str(e).lower():
                self.refusals.put_nowait(str(e))

        self.nc = await nats.connect(
            url, user_credentials=str(creds), error_cb=on_error, allow_reconnect=False
        )
        return self

    async def refused(self, subject: str) -> str:
        """Publish to `subject` and return the server's refusal (fails if none comes)."""
        assert self.nc is not None
        await self.nc.publish(subject, b'{"reason":"spoof"}')
        await self.nc.flush()
        error = await asyncio.wait_for(self.refusals.get(), REFUSAL_TIMEOUT_S)
        assert subject.lower() in error.lower(), error
        return error


@pytest.fixture
def auth(tmp_path: Path) -> AuthLayout:
    return init_auth(tmp_path / "auth", ["demo", "momentum"])


@pytest.fixture
def server(tmp_path: Path, auth: AuthLayout) -> Iterator[NatsServer]:
    srv = NatsServer(tmp_path / "nats", free_port(), config_file=auth.server_conf).start()
    yield srv
    srv.stop()


@pytest.fixture
async def admin(server: NatsServer, auth: AuthLayout) -> AsyncIterator[NATS]:
    nc = await nats.connect(server.url, user_credentials=str(auth.creds("admin")))
    await bootstrap_topology(nc.jetstream(), Config())
    yield nc
    await nc.close()


@contextlib.asynccontextmanager
async def as_identity(server: NatsServer, auth: AuthLayout, name: str) -> AsyncIterator[Client]:
    client = await Client().connect(server.url, auth.creds(name))
    try:
        yield client
    finally:
        assert client.nc is not None
        await client.nc.close()


async def stream_last_seq(admin: NATS) -> int:
    return (await admin.jetstream().stream_info(subjects.STREAM_TRADING)).state.last_seq


async def test_unauthenticated_connection_is_refused(server: NatsServer):
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        await nats.connect(server.url, allow_reconnect=False, max_reconnect_attempts=0)


async def test_a_forged_creds_file_is_refused(server: NatsServer, tmp_path: Path):
    """Keys the operator never signed: a self-made account and user are not trusted."""
    other = init_auth(tmp_path / "other", [])
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        await nats.connect(
            server.url,
            user_credentials=str(other.creds("operator")),
            allow_reconnect=False,
            max_reconnect_attempts=0,
        )


# What each service must never publish: another service's events and operator commands.
FOREIGN = {
    "signal": ["trading.fill.paper.BTC-USDT", "trading.order.approved.paper"],
    "risk-gate": ["trading.fill.paper.BTC-USDT", "trading.intent.demo"],
    "execution-gateway": ["trading.order.approved.paper", "trading.position.default"],
    "position-ledger": ["trading.fill.paper.BTC-USDT", "trading.risk.state"],
    "reconciler": ["trading.fill.paper.BTC-USDT", "trading.order.approved.paper"],
    "alerting": ["trading.fill.paper.BTC-USDT", "trading.intent.demo"],
    "demo-feed": ["trading.fill.paper.BTC-USDT", "trading.signal.demo"],
    "example-strategy": ["trading.fill.paper.BTC-USDT", "trading.signal.momentum"],
}


@pytest.mark.parametrize("service", SERVICE_IDENTITIES)
async def test_each_service_is_refused_outside_its_subjects(
    server: NatsServer, auth: AuthLayout, admin: NATS, service: str
):
    before = await stream_last_seq(admin)
    async with as_identity(server, auth, service) as me:
        for subject in [*FOREIGN[service], *OPERATOR_ONLY]:
            await me.refused(subject)
        # No service administers streams: delete and create are refused by the server.
        await me.refused(f"$JS.API.STREAM.DELETE.{subjects.STREAM_TRADING}")
        await me.refused("$JS.API.STREAM.CREATE.ROGUE")
        # ... nor takes over another service's durable consumer.
        other = "alerting" if service != "alerting" else "signal"
        await me.refused(f"$JS.API.CONSUMER.CREATE.{subjects.STREAM_TRADING}.{other}")
        if subjects.STREAM_TRADING not in SERVICES[service].ephemeral_on:
            # the ephemeral-create subject takes a consumer name too: closed where not needed
            await me.refused(f"$JS.API.CONSUMER.CREATE.{subjects.STREAM_TRADING}")
        # Halt stays open to every identity: stopping must always be easy.
        assert me.nc is not None
        ack = await me.nc.jetstream().publish(subjects.CONTROL_HALT, b"drill")
        assert me.refusals.empty()
    assert ack.seq == before + 1  # only the halt reached the stream
    assert (await admin.jetstream().stream_info(subjects.STREAM_TRADING)).state.messages >= 1


async def test_services_may_do_their_own_work(server: NatsServer, auth: AuthLayout, admin: NATS):
    """The positive side: each publishes its own events, heartbeats and reads streams."""
    own = {
        "signal": "trading.intent.demo",
        "risk-gate": "trading.order.approved.paper",
        "execution-gateway": "trading.fill.paper.BTC-USDT",
        "position-ledger": "trading.position.default",
        "reconciler": "trading.recon.report",
        "alerting": "trading.alert.critical.risk-gate",
        "demo-feed": "md.paper.BTC-USDT",
        "example-strategy": "trading.signal.demo",
    }
    for service, subject in own.items():
        async with as_identity(server, auth, service) as me:
            assert me.nc is not None
            js = me.nc.jetstream()
            assert (await js.publish(subject, b"{}")).seq > 0
            health = await js.key_value(subjects.BUCKET_HEALTH)
            await health.put(subjects.health_key(service, "i-1"), b"{}")
            assert (await js.stream_info(subjects.STREAM_TRADING)).config.name == "TRADING"
            assert me.refusals.empty(), service


async def test_a_service_cannot_forge_another_services_heartbeat(
    server: NatsServer, auth: AuthLayout, admin: NATS
):
    async with as_identity(server, auth, "demo-feed") as me:
        await me.refused(f"$KV.{subjects.BUCKET_HEALTH}.{subjects.health_key('risk-gate', 'x')}")
        # nor flip the trading state behind risk-gate's back
        await me.refused(f"$KV.{subjects.BUCKET_CONTROL}.{subjects.CONTROL_STATE_KEY}")


async def test_a_strategy_publishes_only_its_own_signals(
    server: NatsServer, auth: AuthLayout, admin: NATS
):
    async with as_identity(server, auth, "strategy-demo") as me:
        assert me.nc is not None
        ack = await me.nc.jetstream().publish(subjects.signal("demo"), b"{}")
        assert ack.stream == subjects.STREAM_TRADING
        await me.refused(subjects.signal("momentum"))  # another strategy's subject
        await me.refused("trading.fill.paper.BTC-USDT")  # no fills
        await me.refused(subjects.CONTROL_RESUME)  # no resume
        await me.refused(subjects.CONTROL_MODE)
        await me.refused("trading.>")  # no wildcard publishing
        with contextlib.suppress(Exception):  # nor another strategy's feedback
            await me.nc.subscribe(subjects.denied("momentum"))
        await me.nc.flush()
        error = await asyncio.wait_for(me.refusals.get(), REFUSAL_TIMEOUT_S)
        assert "subscription" in error.lower()


async def test_a_strategy_reads_its_own_feedback_through_the_sdk(
    server: NatsServer, auth: AuthLayout, admin: NATS
):
    """S6 under auth: my_events (live) needs only the strategy's own credentials."""
    from decimal import Decimal

    from tradebus_common.codec import encode
    from tradebus_common.sdk import my_events

    def fill(strategy: str) -> ev.Fill:
        return ev.Fill(
            venue="paper", symbol="BTC/USDT", strategy=strategy, client_order_id=f"c-{strategy}",
            trade_id=f"t-{strategy}", side=ev.Side.BUY, quantity=Decimal("1"), price=Decimal("1"),
        )  # fmt: skip

    async with as_identity(server, auth, "strategy-demo") as me:
        assert me.nc is not None
        events = my_events(me.nc, "demo")
        first = asyncio.ensure_future(events.__anext__())
        for _ in range(50):  # until its subscriptions are in place: live, so sent again
            for strategy in ("momentum", "demo"):  # someone else's fill first: filtered out
                await admin.publish(subjects.fill("paper", "BTC/USDT"), encode(fill(strategy)))
            await asyncio.wait([first], timeout=0.1)
            if first.done():
                break
        got = await asyncio.wait_for(first, REFUSAL_TIMEOUT_S)
        assert isinstance(got, ev.Fill) and got.strategy == "demo"
        assert me.refusals.empty()
        await events.aclose()


async def test_only_the_operator_may_resume_change_mode_or_accept(
    server: NatsServer, auth: AuthLayout, admin: NATS
):
    states = await collect(admin, "trading.control.>")
    async with as_identity(server, auth, "observer") as observer:
        for subject in OPERATOR_ONLY:
            await observer.refused(subject)
        await observer.refused(subjects.control("accept"))  # reconcile accept, whatever name
    actions = [ev.ControlAction.RESUME, ev.ControlAction.MODE, ev.ControlAction.STAGE]
    async with as_identity(server, auth, "operator") as op:
        assert op.nc is not None
        for action in [*actions, ev.ControlAction.HALT]:
            await publish(op.nc, ev.ControlCommand(action=action, operator="ops", reason="t"))
        await op.nc.jetstream().publish(subjects.control("accept"), b"{}")
        assert op.refusals.empty()
    got = await states.wait_for(lambda e: isinstance(e, ev.ControlCommand), count=4)
    assert {c.action for c in got} == {*actions, ev.ControlAction.HALT}


async def test_observer_reads_but_cannot_write(server: NatsServer, auth: AuthLayout, admin: NATS):
    async with as_identity(server, auth, "observer") as me:
        assert me.nc is not None
        js = me.nc.jetstream()
        assert (await js.stream_info(subjects.STREAM_TRADING)).config.name == "TRADING"
        sub = await js.subscribe(subjects.TRADING_ALL, ordered_consumer=True)  # tail works
        await sub.unsubscribe()
        await me.refused("trading.signal.demo")
        await me.refused(f"$KV.{subjects.BUCKET_CONTROL}.{subjects.CONTROL_STATE_KEY}")


async def test_spoofed_resume_is_refused_and_raises_an_alert(
    server: NatsServer, auth: AuthLayout, admin: NATS
):
    alerts = await collect(admin, subjects.ALERT_ALL)
    resumes = await collect(admin, subjects.CONTROL_RESUME)
    monitor_nc = await nats.connect(server.url, user_credentials=str(auth.creds("auth-monitor")))
    identities = {key: name for name, key in auth.identities().items()}
    assert server.log_file is not None
    monitor = asyncio.create_task(run_monitor(monitor_nc, server.log_file, identities, True))
    try:
        async with as_identity(server, auth, "strategy-demo") as spoofer:
            await spoofer.refused(subjects.CONTROL_RESUME)
        [alert] = await alerts.wait_for(
            lambda e: isinstance(e, ev.Alert) and e.code is ev.AlertCode.PERMISSION_VIOLATION
        )
    finally:
        monitor.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await monitor
        await monitor_nc.close()
    assert alert.severity is ev.Severity.CRITICAL
    assert alert.context == {
        "identity": "strategy-demo",
        "subject": subjects.CONTROL_RESUME,
        "kind": "publish",
    }
    assert not resumes.raw  # the resume never reached anyone
    # and the alert is in the stream, where the alerting service routes it to the sinks
    replay = await admin.jetstream().subscribe(
        subjects.alert("critical", MONITOR_SOURCE), ordered_consumer=True
    )
    stored = await replay.next_msg(timeout=5)  # stored: it survives, unlike a core message
    await replay.unsubscribe()
    assert stored.headers and stored.headers[MSG_ID] == alert.id


async def test_rotated_credentials_stop_working_after_a_reload(
    server: NatsServer, auth: AuthLayout, admin: NATS, tmp_path: Path
):
    old = tmp_path / "old-signal.creds"
    old.write_text(auth.creds("signal").read_text())
    init_auth(auth.root, ["demo", "momentum"], rotate=["signal"])
    assert server.proc is not None
    reloaded = await server_reloaded(server)
    server.proc.send_signal(signal.SIGHUP)  # what `nats-server --signal reload` sends
    await reloaded
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        await nats.connect(
            server.url, user_credentials=str(old), allow_reconnect=False, max_reconnect_attempts=0
        )
    async with as_identity(server, auth, "signal") as me:  # the new file works
        assert me.nc is not None and me.nc.is_connected


async def server_reloaded(server: NatsServer) -> asyncio.Future[None]:
    """A future that resolves when the server logs one more configuration reload."""
    assert server.log_file is not None
    marker = "Reloaded server configuration"
    before = server.log_file.read_text().count(marker)

    async def wait() -> None:
        assert server.log_file is not None
        seen = 0
        async for line in follow(server.log_file, from_start=True):  # as the monitor reads it
            seen += marker in line
            if seen > before:
                return

    return asyncio.ensure_future(asyncio.wait_for(wait(), 10))


async def test_tls_option_encrypts_and_verifies_the_server(tmp_path: Path):
    """`tradebus auth init --tls`: the server requires TLS; clients trust the generated CA."""
    from tradebus_common.bus import tls_context

    layout = init_auth(tmp_path / "tls-auth", [], tls=True)
    srv = NatsServer(tmp_path / "nats-tls", free_port(), config_file=layout.server_conf).start()
    try:
        nc = await nats.connect(
            f"tls://127.0.0.1:{srv.port}",
            user_credentials=str(layout.creds("observer")),
            tls=tls_context(str(layout.tls_dir / "ca.pem")),
            allow_reconnect=False,
        )
        assert nc.is_connected
        await nc.close()
        with pytest.raises(Exception):  # noqa: B017 - any refusal: a plaintext client is not served
            await nats.connect(
                srv.url,
                user_credentials=str(layout.creds("observer")),
                allow_reconnect=False,
                max_reconnect_attempts=0,
                connect_timeout=2,
            )
    finally:
        srv.stop()


async def test_a_service_waits_for_the_admin_to_create_the_topology(
    server: NatsServer, auth: AuthLayout
):
    """Under auth a service never creates streams (manage_topology = false): started before
    the bootstrap it waits, then runs, and the server refused it nothing."""
    from tradebus_common.config import BusConfig, RuntimeConfig
    from tradebus_common.runtime import ServiceRunner, ServiceSpec

    async def build(ctx: object) -> None:
        return None

    config = Config(
        bus=BusConfig(
            url=server.url, creds_file=str(auth.creds("demo-feed")), manage_topology=False
        ),
        runtime=RuntimeConfig(heartbeat_interval_s=0.2, drain_timeout_s=1.0),
    )
    runner = ServiceRunner(ServiceSpec("demo-feed", build), config, instance="t-1")
    task = asyncio.create_task(runner.run())
    admin = await nats.connect(server.url, user_credentials=str(auth.creds("admin")))
    try:
        assert not runner.ready.is_set()  # no stream yet: it cannot be ready
        await bootstrap_topology(admin.jetstream(), Config())
        await asyncio.wait_for(runner.ready.wait(), 15)
        health = await admin.jetstream().key_value(subjects.BUCKET_HEALTH)
        watcher = await health.watch(subjects.health_key("demo-feed", "t-1"))
        entry = await watcher.updates(timeout=5)
        while entry is None:  # the watcher's "caught up" marker comes first when empty
            entry = await watcher.updates(timeout=5)
        await watcher.stop()
    finally:
        runner.stop()
        await asyncio.wait_for(task, 10)
        await admin.close()
    assert server.log_file is not None
    assert "Violation" not in server.log_file.read_text()
