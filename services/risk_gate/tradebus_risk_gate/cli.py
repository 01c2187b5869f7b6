"""Operator commands of the risk-gate: `tradebus reduce`, `tradebus mode`, `tradebus stage`
(halt and resume live in the common CLI, with --scope and --flatten)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from tradebus_common import subjects
from tradebus_common.bus import MSG_ID
from tradebus_common.cli.client import ClientError, _control, _publish_and_collect, connected
from tradebus_common.events import (
    ControlAction,
    ControlCommand,
    MessageDeadLettered,
    ModeChanged,
    ModeChangeRefused,
    RiskStageChanged,
    TradingMode,
)
from tradebus_common.ids import derive_id

ScopeHelp = "global | strategy:X | symbol:X | venue:X"


async def cmd_reduce(args: Any) -> int:
    if not args.operator.strip():
        raise ClientError("reduce needs --operator NAME")
    return await _control(args, ControlAction.REDUCE, " ".join(args.reason), args.operator)


async def _command(args: Any, action: ControlAction, target: str, answer_id: str) -> Any:
    """Publish a mode/stage command and wait for the gate's answer (or its refusal)."""
    cmd = ControlCommand(action=action, target=target, operator=args.operator, reason=args.reason)
    expected = derive_id(cmd.id, answer_id)

    def match(e: Any) -> bool:
        if isinstance(e, MessageDeadLettered):
            return e.headers.get(MSG_ID) == cmd.id
        return getattr(e, "id", "") == expected

    watch = [subjects.RISK_MODE, subjects.RISK_STAGE, subjects.deadletter("risk-gate")]
    async with connected(args) as nc:
        found = await _publish_and_collect(nc, cmd, watch, match, bool, args.timeout)
    if not found:
        raise ClientError(f"risk-gate did not answer within {args.timeout}s")
    if isinstance(found[0], MessageDeadLettered):
        raise ClientError(f"risk-gate refused: {found[0].error}")
    return found[0]


async def cmd_mode(args: Any) -> int:
    answer = await _command(args, ControlAction.MODE, args.mode, "mode")
    if isinstance(answer, ModeChangeRefused):
        print(f"mode {answer.mode.value} refused (still {answer.current.value}):")
        for failed in answer.failed:
            print(f"  - {failed}")
        return 3
    assert isinstance(answer, ModeChanged)
    figures = ", ".join(f"{k} {v}" for k, v in answer.criteria.items())
    print(f"mode {answer.mode.value} (was {answer.previous}) by {answer.operator} {figures}")
    return 0


async def cmd_stage(args: Any) -> int:
    answer = await _command(args, ControlAction.STAGE, args.direction, "stage")
    assert isinstance(answer, RiskStageChanged)
    print(
        f"risk stage {answer.stage} (was {answer.previous}): {answer.risk_per_trade_pct}% per "
        f"trade, exposure up to {answer.max_exposure_pct}%"
    )
    return 0


def register(
    subparsers: argparse._SubParsersAction, client_opts: Callable[[argparse.ArgumentParser], None]
) -> None:
    p = subparsers.add_parser(
        "reduce", help="reducing-only: approve only orders that shrink a position"
    )
    client_opts(p)
    p.add_argument("reason", nargs="*", default=[])
    p.add_argument("--operator", required=True)
    p.add_argument("--scope", default="global", help=ScopeHelp)
    p.add_argument("--timeout", type=float, default=5.0)
    p.set_defaults(handler=cmd_reduce)

    p = subparsers.add_parser("mode", help="change the trading mode (paper -> live is validated)")
    client_opts(p)
    p.add_argument("mode", choices=[m.value for m in TradingMode])
    p.add_argument("--operator", default="", help="required except for emergency-stop")
    p.add_argument("--reason", default="")
    p.add_argument("--timeout", type=float, default=5.0)
    p.set_defaults(handler=cmd_mode)

    p = subparsers.add_parser("stage", help="step the progressive-risk stage up or down")
    client_opts(p)
    p.add_argument("direction", choices=["up", "down"])
    p.add_argument("--operator", required=True)
    p.add_argument("--reason", default="")
    p.add_argument("--timeout", type=float, default=5.0)
    p.set_defaults(handler=cmd_stage)
