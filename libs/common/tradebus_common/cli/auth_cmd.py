"""`tradebus auth init|rotate|list|bootstrap|monitor`: NATS identities and credentials."""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from ..config import load_config

DEFAULT_OUT = ".tradebus"  # the default data dir of `tradebus up`: one place for both


def register(sub: Any, client_opts: Callable[[argparse.ArgumentParser], None]) -> None:
    auth = sub.add_parser("auth", help="NATS credentials: one identity per service and person")
    cmds = auth.add_subparsers(dest="auth_command", required=True)

    p = cmds.add_parser("init", help="generate keys, .creds files and the nats-server config")
    p.add_argument("--out", default=DEFAULT_OUT, help=f"directory (default {DEFAULT_OUT})")
    p.add_argument("--config", help="tradebus.toml: its [strategies] get an identity each")
    p.add_argument("--strategy", action="append", default=[], help="extra strategy identity")
    p.add_argument("--tls", action="store_true", help="also make a CA and server certificate")
    p.set_defaults(handler=cmd_init)

    p = cmds.add_parser("rotate", help="new keys for identities; their old keys are revoked")
    p.add_argument("identity", nargs="+")
    p.add_argument("--out", default=DEFAULT_OUT)
    p.add_argument("--config")
    p.add_argument("--strategy", action="append", default=[])
    p.set_defaults(handler=cmd_rotate)

    p = cmds.add_parser("list", help="identities and what each may publish and subscribe")
    p.add_argument("--out", default=DEFAULT_OUT)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_list)

    p = cmds.add_parser("bootstrap", help="create streams and buckets (admin credentials)")
    client_opts(p)
    p.set_defaults(handler=cmd_bootstrap)

    p = cmds.add_parser("monitor", help="alert on permission violations in the server log")
    client_opts(p)
    p.add_argument(
        "--log",
        action="append",
        required=True,
        help="a nats-server log file; repeat for each node of a cluster (absent ones wait)",
    )
    p.add_argument("--out", default=DEFAULT_OUT, help="where nats/identities.json is")
    p.add_argument("--from-start", action="store_true", help="read the whole log first")
    p.set_defaults(handler=cmd_monitor)


def _strategies(args: Any) -> list[str]:
    return sorted({*load_config(args.config).strategies, *args.strategy})


def _print_layout(layout: Any) -> None:
    print(f"nats-server config: {layout.server_conf}")
    print(f"credentials:        {layout.creds_dir}/")
    for path in sorted(layout.creds_dir.glob("*.creds")):
        print(f"  {path.stem:<20} {path}")
    print(f"operator:  nats --creds {layout.creds('operator')} pub trading.control.halt 'reason'")
    print(f"keys (keep them safe, they sign new credentials): {layout.keys_dir}/")


async def cmd_init(args: Any) -> int:
    from ..auth.generate import init_auth

    example = load_config(args.config).example_strategy.strategy
    layout = init_auth(args.out, _strategies(args), tls=args.tls, example_strategy=example)
    _print_layout(layout)
    if args.tls:
        print(f"TLS: server certificate in {layout.tls_dir}; clients trust {layout.tls_dir}/ca.pem")
    return 0


async def cmd_rotate(args: Any) -> int:
    from ..auth.generate import AuthLayout, init_auth
    from .client import ClientError

    if not AuthLayout(Path(args.out).resolve()).exists():
        raise ClientError(f"no credentials in {args.out}: run `tradebus auth init` first")
    example = load_config(args.config).example_strategy.strategy
    layout = init_auth(args.out, _strategies(args), rotate=args.identity, example_strategy=example)
    print(f"rotated: {', '.join(args.identity)} (old keys revoked in {layout.nats_dir}/auth.conf)")
    print(
        "next: reload nats-server (`nats-server --signal reload` or SIGHUP; compose: "
        "`docker compose kill -s HUP nats`), then restart the processes using these creds"
    )
    return 0


async def cmd_list(args: Any) -> int:
    from ..auth.generate import AuthLayout
    from ..auth.jwt import decode_claims

    layout = AuthLayout(Path(args.out).resolve())
    rows = {}
    for path in sorted(layout.creds_dir.glob("*.creds")):
        token = path.read_text().splitlines()[1]  # the JWT only: the seed is never read here
        nats = decode_claims(token)["nats"]
        rows[path.stem] = {"pub": nats["pub"].get("allow", []), "sub": nats["sub"].get("allow", [])}
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for name, perms in rows.items():
        print(f"{name}\n  pub: {' '.join(perms['pub'])}\n  sub: {' '.join(perms['sub'])}")
    return 0


async def cmd_bootstrap(args: Any) -> int:
    from ..auth.topology import bootstrap_topology
    from .client import connected

    async with connected(args) as nc:
        await bootstrap_topology(nc.jetstream(), load_config(args.config))
    print("streams and buckets are in place")
    return 0


async def cmd_monitor(args: Any) -> int:
    from ..auth.generate import AuthLayout
    from ..auth.monitor import run_monitor
    from ..bus import connect
    from ..telemetry import setup_logging
    from .client import nats_creds, nats_url

    setup_logging("INFO", "json")
    identities = {key: name for name, key in AuthLayout(Path(args.out)).identities().items()}
    # A long-lived process: reconnect forever, like the services.
    bus = msgspec.structs.replace(
        load_config(args.config).bus, url=nats_url(args), creds_file=nats_creds(args)
    )
    nc = await connect(bus, "auth-monitor")
    try:
        await asyncio.gather(
            *(run_monitor(nc, Path(log), identities, args.from_start) for log in args.log)
        )
    finally:
        await nc.close()
    return 0
