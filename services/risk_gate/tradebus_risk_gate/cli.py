"""Operator commands of the risk-gate: `tradebus reduce` (halt and resume live in the
common CLI, with --scope and --flatten)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from tradebus_common.cli.client import ClientError, _control
from tradebus_common.events import ControlAction


async def cmd_reduce(args: Any) -> int:
    if not args.operator.strip():
        raise ClientError("reduce needs --operator NAME")
    return await _control(args, ControlAction.REDUCE, " ".join(args.reason), args.operator)


def register(
    subparsers: argparse._SubParsersAction, client_opts: Callable[[argparse.ArgumentParser], None]
) -> None:
    p = subparsers.add_parser(
        "reduce", help="reducing-only: approve only orders that shrink a position"
    )
    client_opts(p)
    p.add_argument("reason", nargs="*", default=[])
    p.add_argument("--operator", required=True)
    p.add_argument("--scope", default="global", help="global | strategy:X | symbol:X | venue:X")
    p.add_argument("--timeout", type=float, default=5.0)
    p.set_defaults(handler=cmd_reduce)
