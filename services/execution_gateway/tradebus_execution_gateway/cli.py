"""Operator commands of the execution-gateway: `tradebus order cancel|modify` and
`tradebus feed replay`."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import nats

from tradebus_common import subjects
from tradebus_common.cli.client import (
    ClientError,
    _decimal,
    _publish_and_collect,
    connected,
    publish,
)
from tradebus_common.events import (
    AlgoProgress,
    CancelOrder,
    ModifyOrder,
    OrderCanceled,
    OrderCommandRejected,
    OrderSubmitted,
)

from .replay import merged_ticks, replay, replay_symbols


def _answers(cmd: CancelOrder | ModifyOrder) -> Callable[[Any], bool]:
    """The gateway's answers to one command: caused by it, or refusing it."""

    def match(event: Any) -> bool:
        if isinstance(event, OrderCommandRejected):
            return event.command_id == cmd.id
        return isinstance(event, OrderCanceled | OrderSubmitted | AlgoProgress) and (
            event.causation_id == cmd.id
        )

    return match


async def _send(
    args: Any, cmd: CancelOrder | ModifyOrder, enough: Callable[[list[Any]], bool]
) -> int:
    async with connected(args) as nc:
        found = await _publish_and_collect(
            nc, cmd, [subjects.ORDER_EVENT_ALL], _answers(cmd), enough, args.timeout
        )
    if not found:
        raise ClientError(f"no answer from the execution-gateway within {args.timeout}s")
    for event in found:
        if isinstance(event, OrderCommandRejected):
            raise ClientError(
                f"{event.command} refused: {event.reason.value} {event.detail}".strip()
            )
        print(_describe(event))
    return 0


def _describe(event: Any) -> str:
    if isinstance(event, OrderCanceled):
        return f"canceled {event.client_order_id} ({event.reason.value}) {event.detail}".strip()
    if isinstance(event, OrderSubmitted):
        price = f" @ {event.limit_price}" if event.limit_price is not None else ""
        return f"replacement {event.client_order_id}: {event.side} {event.quantity}{price}"
    return f"algo {event.client_order_id}: {event.status.value} ({event.filled_quantity} filled)"


async def cmd_cancel(args: Any) -> int:
    cmd = CancelOrder(
        client_order_id=args.client_order_id,
        venue=args.venue or "",
        operator=args.operator,
        detail=args.reason,
    )
    return await _send(args, cmd, bool)


async def cmd_modify(args: Any) -> int:
    quantity = _decimal("qty", args.qty)
    price = _decimal("price", args.price)
    if quantity is None and price is None:
        raise ClientError("modify needs --qty and/or --price")
    cmd = ModifyOrder(
        client_order_id=args.client_order_id,
        venue=args.venue or "",
        quantity=quantity,
        limit_price=price,
        operator=args.operator,
        detail=args.reason,
    )

    def enough(found: list[Any]) -> bool:  # the replacement, or a refusal
        return any(isinstance(e, OrderSubmitted | OrderCommandRejected) for e in found)

    return await _send(args, cmd, enough)


async def cmd_replay(args: Any) -> int:
    try:
        symbols = replay_symbols(args.symbol or [])
    except KeyError as e:
        raise ClientError(str(e)) from e
    if args.speed < 0:
        raise ClientError("--speed must be >= 0 (0: as fast as possible)")
    async with connected(args) as nc:
        try:
            sent = await replay(
                merged_ticks(args.venue, symbols),
                lambda tick: publish(nc, tick),
                args.speed,
                limit=args.limit,
            )
        except (nats.errors.TimeoutError, nats.errors.NoRespondersError) as e:
            raise ClientError("no MARKET stream answered (is the stack up? `make run`)") from e
    print(f"replayed {sent} ticks of {', '.join(symbols)} onto md.{args.venue}.* at x{args.speed}")
    return 0


def register(sub: Any, client_opts: Callable[[argparse.ArgumentParser], None]) -> None:
    order = sub.add_parser("order", help="cancel or modify one order by client order id")
    actions = order.add_subparsers(dest="order_command", required=True)
    p = actions.add_parser("cancel", help="cancel an order (an algo parent: and its children)")
    _order_opts(p, client_opts)
    p.set_defaults(handler=cmd_cancel)
    p = actions.add_parser("modify", help="cancel-confirm-replace with a new size and/or price")
    _order_opts(p, client_opts)
    p.add_argument("--qty", help="the new total quantity (fills so far count against it)")
    p.add_argument("--price", help="the new limit price")
    p.set_defaults(handler=cmd_modify)

    feed = sub.add_parser("feed", help="market data")
    feed_actions = feed.add_subparsers(dest="feed_command", required=True)
    p = feed_actions.add_parser("replay", help="replay the bundled sample ticks onto md.*")
    client_opts(p)
    p.add_argument("--speed", type=float, default=1.0, help="x real time; 0 = no pauses")
    p.add_argument("--venue", default="paper")
    p.add_argument("--symbol", action="append", help="repeatable; default: every bundled one")
    p.add_argument("--limit", type=int, default=0, help="stop after this many ticks (0: all)")
    p.set_defaults(handler=cmd_replay)


def _order_opts(
    p: argparse.ArgumentParser, client_opts: Callable[[argparse.ArgumentParser], None]
) -> None:
    client_opts(p)
    p.add_argument("client_order_id")
    p.add_argument("--venue", help="the venue (default: ask every configured venue)")
    p.add_argument("--operator", default="")
    p.add_argument("--reason", default="")
    p.add_argument("--timeout", type=float, default=10.0)
