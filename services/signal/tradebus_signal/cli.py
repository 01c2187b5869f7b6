"""Operator commands of the signal service (O6):

    tradebus strategy start|stop|pause|resume|status NAME [--set key=value ...]

Each publishes a StrategyCommand with a fresh request id (or --request-id, to retry one
safely) and waits for the signal service's answer on trading.strategy.<name>.run.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from tradebus_common import subjects
from tradebus_common.bus import MSG_ID
from tradebus_common.cli.client import ClientError, _publish_and_collect, connected
from tradebus_common.events import (
    MessageDeadLettered,
    StrategyAction,
    StrategyCommand,
    StrategyCommandAnswered,
    StrategyRunChanged,
    StrategyRunState,
)
from tradebus_common.ids import new_id

# The state that ends each command (besides ERROR, and an answer for a refusal).
FINAL = {
    StrategyAction.START: StrategyRunState.RUNNING,
    StrategyAction.STOP: StrategyRunState.STOPPED,
    StrategyAction.PAUSE: StrategyRunState.PAUSED,
    StrategyAction.RESUME: StrategyRunState.RUNNING,
}


def parse_overrides(pairs: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ClientError(f"--set wants key=value, got {pair!r}")
        out[key.strip()] = value.strip()
    return out


def is_final(event: Any, action: StrategyAction) -> bool:
    if isinstance(event, StrategyCommandAnswered | MessageDeadLettered):
        return True
    return isinstance(event, StrategyRunChanged) and event.state in (
        FINAL.get(action),
        StrategyRunState.ERROR,
    )


async def cmd_strategy(args: Any) -> int:
    action = StrategyAction(args.action)
    cmd = StrategyCommand(
        strategy=args.name,
        action=action,
        request_id=args.request_id or new_id(),
        operator=args.operator,
        reason=args.reason,
        overrides=parse_overrides(args.set),
    )

    def match(e: Any) -> bool:
        if isinstance(e, MessageDeadLettered):
            return e.headers.get(MSG_ID) == cmd.id
        return getattr(e, "request_id", None) == cmd.request_id

    watch = [subjects.strategy_run(args.name), subjects.deadletter("signal")]
    async with connected(args) as nc:
        found = await _publish_and_collect(
            nc, cmd, watch, match, lambda got: is_final(got[-1], action), args.timeout
        )
    if not found:
        raise ClientError(f"the signal service did not answer within {args.timeout}s")
    return report(found, action)


def report(found: list[Any], action: StrategyAction) -> int:
    last = found[-1]
    if isinstance(last, MessageDeadLettered):
        raise ClientError(f"refused: {last.error}")
    for event in found:
        if isinstance(event, StrategyRunChanged):
            print(f"{event.strategy}: {event.previous} -> {event.state.value} ({event.request_id})")
    if isinstance(last, StrategyCommandAnswered):
        extra = f" overrides {last.overrides}" if last.overrides else ""
        if not last.ok:
            print(
                f"{last.strategy}: {action.value} refused, run is {last.state.value}: {last.detail}"
            )
            return 3
        print(f"{last.strategy}: {last.state.value} run={last.run_id or '-'}{extra}")
        return 0
    if isinstance(last, StrategyRunChanged) and last.state is StrategyRunState.ERROR:
        print(f"{last.strategy}: ERROR {last.reason}")
        return 3
    if not is_final(last, action):
        raise ClientError("the command was taken but did not finish in time; see `status`")
    return 0


def register(
    subparsers: argparse._SubParsersAction, client_opts: Callable[[argparse.ArgumentParser], None]
) -> None:
    p = subparsers.add_parser(
        "strategy", help="strategy runs: start, stop, pause, resume, status (O6)"
    )
    client_opts(p)
    p.add_argument("action", choices=[a.value for a in StrategyAction])
    p.add_argument("name", help="the strategy, as in [strategies.<name>]")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="start only: a [strategies.<name>] key for this run (repeatable)",
    )
    p.add_argument("--request-id", default="", help="reuse one to retry a command safely")
    p.add_argument("--operator", default="")
    p.add_argument("--reason", default="")
    p.add_argument("--timeout", type=float, default=5.0)
    p.set_defaults(handler=cmd_strategy)
