"""tradebus: a live-trading system on NATS JetStream. Run the stack, its services, and the
operator commands."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.util
import sys
from collections.abc import Sequence
from types import ModuleType

from ..errors import ConfigError
from ..stack.servers import StackError
from . import client
from .services import RUNNABLE, SERVICE_NAMES


def _client_opts(p: argparse.ArgumentParser) -> None:
    p.add_argument("--nats", help="NATS URL (default: $NATS_URL, else [bus] url from config)")
    p.add_argument("--config", help="tradebus.toml (default: $TRADEBUS_CONFIG)")
    p.add_argument("--creds", help="NATS .creds file (default: $NATS_CREDS, else [bus] creds_file)")


# Service packages may add operator commands of their own in a `cli` module with
# `register(subparsers, client_opts)`; each parser sets `handler=<async fn(args) -> int>`.
SERVICE_CLI_MODULES = tuple(f"{RUNNABLE[name].rsplit('.', 1)[0]}.cli" for name in SERVICE_NAMES)


def service_cli_modules() -> list[ModuleType]:
    found = []
    for name in SERVICE_CLI_MODULES:
        if importlib.util.find_spec(name) is not None:
            found.append(importlib.import_module(name))
    return found


def _ops_cli_modules() -> list[ModuleType]:
    from . import auth_cmd, config_cmd, healthcheck_cmd

    return [auth_cmd, config_cmd, healthcheck_cmd]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tradebus", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("up", help="run the whole stack locally (embedded NATS and PostgreSQL)")
    p.add_argument("--config", help="tradebus.toml")
    p.add_argument("--data-dir", default=".tradebus", help="state directory (default .tradebus)")
    p.add_argument("--nats-port", type=int, default=4222)
    p.add_argument("--ready-timeout", type=float, default=60.0)
    p.add_argument(
        "--no-auth",
        action="store_true",
        help="development only: NATS without credentials (default: auth on, creds in data dir)",
    )

    p = sub.add_parser("run", help="run one service (what containers use)")
    p.add_argument("service", choices=sorted(RUNNABLE))
    p.add_argument("--config", help="tradebus.toml (default: $TRADEBUS_CONFIG)")
    p.add_argument("--nats", help="NATS URL (overrides config)")
    p.add_argument("--dsn", help="PostgreSQL DSN (overrides config)")

    p = sub.add_parser("signal", help="publish a signal")
    _client_opts(p)
    p.add_argument("--id", help="signal id (default: a fresh one; reuse it to test dedup)")
    p.add_argument("--strategy", default="demo")
    p.add_argument("--venue", default="paper")
    p.add_argument("--symbol", required=True)
    p.add_argument("--side", choices=["buy", "sell"], required=True)
    p.add_argument("--qty", required=True, help="quantity, a decimal number")
    p.add_argument("--type", choices=["market", "limit"], default="market")
    p.add_argument("--price", help="limit price (limit orders)")

    p = sub.add_parser("tail", help="stream events as readable lines")
    _client_opts(p)
    p.add_argument(
        "what",
        metavar="WHAT",
        help=f"{', '.join(sorted(client.TAIL_SUBJECTS))}, or any subject pattern (md.paper.>)",
    )
    p.add_argument("--json", action="store_true", help="one JSON object per line, for piping")
    p.add_argument("--from-start", action="store_true", help="replay the stream from the start")
    p.add_argument("--count", type=int, help="exit after N events")

    p = sub.add_parser("halt", help="halt all trading (latched until resumed)")
    _client_opts(p)
    p.add_argument("reason", nargs="*", default=[])
    p.add_argument("--operator", default="")
    p.add_argument("--timeout", type=float, default=5.0)
    p.add_argument("--scope", default="global", help="global | strategy:X | symbol:X | venue:X")
    p.add_argument("--flatten", action="store_true", help="also close positions in scope")

    p = sub.add_parser("resume", help="resume trading (needs an operator)")
    _client_opts(p)
    p.add_argument("--operator", required=True)
    p.add_argument("--reason", default="resumed by operator")
    p.add_argument("--timeout", type=float, default=5.0)
    p.add_argument("--scope", default="global", help="global | strategy:X | symbol:X | venue:X")

    p = sub.add_parser("status", help="health of each service and the trading state")
    _client_opts(p)
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "--stale-after",
        type=float,
        default=15.0,
        help="a heartbeat older than this many seconds is unhealthy",
    )

    for module in service_cli_modules():
        module.register(sub, _client_opts)
    for module in _ops_cli_modules():  # tradebus auth ..., tradebus config show
        module.register(sub, _client_opts)
    from . import dash  # tradebus dash

    dash.register(sub, _client_opts)

    p = sub.add_parser("bench", help="measure the pipeline against raw JetStream (own stack)")
    p.add_argument("--quick", action="store_true", help="short runs (about a minute)")
    p.add_argument("--json", action="store_true", help="one JSON object with every figure")
    p.set_defaults(handler=_bench)

    p = sub.add_parser("schemas", help="generate (or --check) proto-schemas/ from the code")
    p.add_argument("--out", default="proto-schemas")
    p.add_argument("--check", action="store_true")
    return parser


async def _bench(args: argparse.Namespace) -> int:
    from ..bench.run import main as bench_main

    return await bench_main(args)


def run_service_cmd(args: argparse.Namespace) -> int:
    import os

    from ..config import load_config
    from ..runtime import run_service
    from .services import load_spec

    if args.nats:
        os.environ["TRADEBUS__BUS__URL"] = args.nats
    if args.dsn:
        os.environ["TRADEBUS__DATABASE__DSN"] = args.dsn
    config = load_config(args.config)
    return run_service(load_spec(args.service), config)


ASYNC_COMMANDS = {
    "signal": client.cmd_signal,
    "tail": client.cmd_tail,
    "halt": client.cmd_halt,
    "resume": client.cmd_resume,
    "status": client.cmd_status,
}


def dispatch(args: argparse.Namespace) -> int:
    handler = getattr(args, "handler", None)
    if handler is not None:  # a command a service package registered
        return asyncio.run(handler(args))
    if args.command == "run":
        return run_service_cmd(args)
    if args.command == "up":
        from .up import run_up

        return asyncio.run(run_up(args))
    if args.command == "schemas":
        from .. import schemas

        argv = ["--out", args.out] + (["--check"] if args.check else [])
        return schemas.main(argv)
    return asyncio.run(ASYNC_COMMANDS[args.command](args))


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return dispatch(args)
    except (ConfigError, client.ClientError, StackError) as e:
        print(f"tradebus: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
