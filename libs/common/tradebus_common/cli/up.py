"""`tradebus up`: nats-server + PostgreSQL + the six services + the demo feed, supervised.

Crashed services are restarted with backoff. Ctrl-C (or SIGTERM) stops everything in
reverse order: services first (they drain), then PostgreSQL, then nats-server.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..auth.generate import AuthLayout
from ..config import Config, load_config
from ..stack.servers import NatsServer, Postgres, StackError, child_env
from ..telemetry import redact_url
from .services import SERVICE_NAMES

MAX_BACKOFF_S = 30.0


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass
class Child:
    name: str
    log_path: Path
    proc: asyncio.subprocess.Process | None = None
    restarts: int = 0
    started: float = field(default=0.0)
    argv: list[str] = field(default_factory=list)  # tradebus arguments; default: run <name>
    env: dict[str, str] = field(default_factory=dict)  # on top of the supervisor's env


class Supervisor:
    def __init__(
        self,
        names: list[str],
        env: dict[str, str],
        log_dir: Path,
        per_child: dict[str, dict[str, str]] | None = None,
    ) -> None:
        per_child = per_child or {}
        self.children = [Child(n, log_dir / f"{n}.log", env=per_child.get(n, {})) for n in names]
        self.log_dir = log_dir
        self.env = env
        self.stopping = False

    def add(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Child:
        """A supervised helper process that is not a service (e.g. the auth monitor)."""
        child = Child(name, self.log_dir / f"{name}.log", argv=argv, env=env or {})
        self.children.append(child)
        return child

    async def spawn(self, child: Child) -> None:
        log = open(child.log_path, "ab")  # noqa: SIM115 - handed to the child process
        child.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tradebus_common.cli.main",
            *(child.argv or ["run", child.name]),
            env={**self.env, **child.env},
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        log.close()
        child.started = time.monotonic()

    async def watch(self, child: Child) -> None:
        """Keep one child running until shutdown; restart it with backoff when it dies."""
        while not self.stopping:
            await self.spawn(child)
            assert child.proc is not None
            code = await child.proc.wait()
            if self.stopping:
                return
            lived = time.monotonic() - child.started
            child.restarts = 0 if lived > 60 else child.restarts + 1
            delay = min(MAX_BACKOFF_S, 2**child.restarts / 2)
            print(
                f"! {child.name} exited with {code}; restarting in {delay:.1f}s "
                f"(log: {child.log_path})",
                flush=True,
            )
            await asyncio.sleep(delay)

    async def stop(self, timeout_s: float = 15.0) -> None:
        self.stopping = True
        live = [c.proc for c in self.children if c.proc and c.proc.returncode is None]
        for proc in live:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.gather(*(p.wait() for p in live)), timeout_s)
        except TimeoutError:
            for proc in live:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()


async def wait_healthy(
    url: str, names: tuple[str, ...], timeout_s: float, creds: str = ""
) -> list[str]:
    """Wait until every service has heartbeated; return those that have not."""
    import nats

    from .client import _health

    nc = await nats.connect(url, **({"user_credentials": creds} if creds else {}))
    deadline = time.monotonic() + timeout_s
    missing = list(names)
    try:
        while missing and time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                seen = {b.service for b in await _health(nc)}
                missing = [n for n in names if n not in seen]
            if missing:
                await asyncio.sleep(0.25)
    finally:
        await nc.close()
    return missing


def banner(url: str, dsn: str, data_dir: Path, log_dir: Path, auth: AuthLayout | None) -> str:
    if auth is None:
        creds, op, strat = (
            "  auth        OFF (--no-auth): anyone who reaches NATS can trade\n",
            "",
            "",
        )
    else:
        names = ", ".join(sorted(p.stem for p in auth.creds_dir.glob("*.creds")))
        creds = (
            f"  credentials {auth.creds_dir}/<identity>.creds\n"
            f"              ({names})\n"
            f"  operator    {auth.creds('operator')}\n"
            f"  observer    {auth.creds('observer')}   (read-only)\n"
        )
        op = f" --creds {auth.creds('operator')}"
        strat = f" --creds {auth.creds('strategy-demo')}"
    return f"""
tradebus is up (paper mode, auth {"on" if auth else "OFF"})
  NATS        {redact_url(url)}
  PostgreSQL  {redact_url(dsn)}
{creds}  data dir    {data_dir}   (state survives a restart)
  logs        {log_dir}/<service>.log

Publish a signal (any NATS client; JSON on trading.signal.<strategy>):
  nats{strat} pub trading.signal.demo '{{"id":"sig-1","strategy":"demo","venue":"paper","symbol":"BTC/USDT","side":"buy","quantity":"0.01"}}'
  tradebus signal{strat} --strategy demo --symbol BTC/USDT --side buy --qty 0.01
Watch:   tradebus tail all{op}          (fills | orders | positions | alerts | all)
Halt:    nats{op} pub trading.control.halt "reason"      or  tradebus halt{op} "reason"
Resume:  tradebus resume{op} --operator YOUR_NAME
Health:  tradebus status{op}
Ctrl-C stops everything.
"""


def start_auth(data_dir: Path, config: Config) -> AuthLayout:
    """Credentials in <data-dir>/creds, kept across restarts (same keys, fresh JWTs)."""
    from ..auth.generate import init_auth

    return init_auth(
        data_dir, sorted(config.strategies), example_strategy=config.example_strategy.strategy
    )


async def bootstrap(url: str, auth: AuthLayout, config: Config) -> None:
    """The admin identity creates streams and buckets: services may not (least privilege)."""
    import nats

    from ..auth.topology import bootstrap_topology

    nc = await nats.connect(url, user_credentials=str(auth.creds("admin")))
    try:
        await bootstrap_topology(nc.jetstream(), config)
    finally:
        await nc.close()


def service_credentials(auth: AuthLayout, names: list[str]) -> dict[str, dict[str, str]]:
    """Each service connects as its own identity and leaves the topology to the admin."""
    return {
        n: {
            "TRADEBUS__BUS__CREDS_FILE": str(auth.creds(n)),
            "TRADEBUS__BUS__MANAGE_TOPOLOGY": "false",
        }
        for n in names
    }


def add_auth_monitor(supervisor: Supervisor, url: str, auth: AuthLayout, nats_log: Path) -> None:
    """Refused publishes in the server log become alerts (a spoofed resume pages someone)."""
    argv = ["auth", "monitor", "--log", str(nats_log), "--out", str(auth.root), "--nats", url]
    supervisor.add("auth-monitor", [*argv, "--creds", str(auth.creds("auth-monitor"))])


async def run_up(args: Any) -> int:
    config: Config = load_config(args.config)
    data_dir = Path(args.data_dir).resolve()
    log_dir = data_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    if not port_free(args.nats_port):
        raise StackError(
            f"port {args.nats_port} is in use (another stack running?): "
            f"stop it or pass --nats-port N"
        )
    auth = None if args.no_auth else start_auth(data_dir, config)
    nats_server = NatsServer(
        data_dir / "nats", args.nats_port, config_file=auth.server_conf if auth else None
    ).start()
    postgres: Postgres | None = None
    supervisor: Supervisor | None = None
    try:
        if auth:
            await bootstrap(nats_server.url, auth, config)
        dsn = config.database_dsn()
        if not dsn:
            print("starting embedded PostgreSQL ...", flush=True)
            postgres = Postgres(data_dir / "pg").start()
            dsn = postgres.dsn
        names = list(SERVICE_NAMES) + (["demo-feed"] if config.feed.enabled else [])
        names += ["example-strategy"] if config.example_strategy.enabled else []  # S6
        env = child_env(nats_server.url, dsn, args.config and str(Path(args.config).resolve()))
        per_child = service_credentials(auth, names) if auth else None
        supervisor = Supervisor(names, env, log_dir, per_child)
        if auth:
            assert nats_server.log_file is not None
            add_auth_monitor(supervisor, nats_server.url, auth, nats_server.log_file)
        watchers = [asyncio.create_task(supervisor.watch(c)) for c in supervisor.children]
        observer = str(auth.creds("observer")) if auth else ""
        missing = await wait_healthy(nats_server.url, SERVICE_NAMES, args.ready_timeout, observer)
        if missing:
            print(
                f"! not healthy after {args.ready_timeout}s: {', '.join(missing)} (see {log_dir})",
                flush=True,
            )
        print(banner(nats_server.url, dsn, data_dir, log_dir, auth), flush=True)
        await wait_for_signal()
        print("stopping ...", flush=True)
        await supervisor.stop()
        for w in watchers:
            w.cancel()
        return 0
    finally:
        if supervisor and not supervisor.stopping:
            await supervisor.stop()
        if postgres:
            postgres.stop()
        nats_server.stop()
        print("stopped", flush=True)


async def wait_for_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
