"""A tiny client for strategy authors (U1, docs/signals.md#python-sdk).

    from tradebus_common.sdk import publish_signal, Signal, my_events

    await publish_signal(nc, Signal(id="sma-1", strategy="demo", venue="paper",
                                    symbol="BTC/USDT", side=Side.BUY, quantity=Decimal("0.01")))
    async for event in my_events(nc, "demo"):   # Fill | OrderDenied | SignalRejected
        ...

Nothing here is needed to trade: a signal is plain JSON on trading.signal.<strategy>, from any
NATS client in any language. This only spares a Python author the subject names and headers.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from nats.aio.client import Client as NATS
from nats.js import api

from . import subjects
from .codec import decode, encode
from .errors import PermanentError
from .events import (
    AlgoParams,
    Bracket,
    Fill,
    OrderDenied,
    OrderType,
    Side,
    Signal,
    SignalRejected,
    SizingHint,
    SizingMode,
)

__all__ = [
    "AlgoParams",
    "Bracket",
    "Fill",
    "OrderDenied",
    "OrderType",
    "Side",
    "Signal",
    "SignalRejected",
    "SizingHint",
    "SizingMode",
    "my_events",
    "publish_signal",
]

StrategyEvent = Fill | OrderDenied | SignalRejected
MSG_ID = "Nats-Msg-Id"


async def publish_signal(nc: NATS, signal: Signal) -> api.PubAck:
    """Publish to trading.signal.<strategy> with the signal id as Nats-Msg-Id, so a retry of
    the same signal is dropped by the stream (and by the signal service beyond its window).
    Returns the stream's ack (`.duplicate` is true for a repeat)."""
    return await nc.jetstream().publish(
        subjects.signal(signal.strategy), encode(signal), headers={MSG_ID: signal.id}
    )


def _subjects(strategy: str) -> list[str]:
    # Fills are per venue and symbol, not per strategy: they are filtered by their body.
    return [subjects.FILL_ALL, subjects.denied(strategy), subjects.strategy_rejected(strategy)]


def _mine(event: Any, strategy: str) -> bool:
    return isinstance(event, StrategyEvent) and event.strategy == strategy  # type: ignore[arg-type]


async def my_events(
    nc: NATS, strategy: str, from_start: bool = False
) -> AsyncIterator[StrategyEvent]:
    """The strategy's own fills, risk denials and signal rejections, as they happen.

    Live (the default): plain subscriptions, which a strategy's own credentials allow (with
    auth on a strategy may read its fills, denials and rejections, nothing else); they are
    made again after a reconnect, and the stream keeps whatever passed meanwhile.
    from_start=True reads the stream from its start through ordered JetStream consumers, which
    needs reading rights on the stream (the observer or operator credentials)."""
    queue: asyncio.Queue[StrategyEvent] = asyncio.Queue()

    async def on_msg(msg: Any) -> None:
        with contextlib.suppress(PermanentError):  # not an event we know: not ours
            event = decode(msg.data)
            if _mine(event, strategy):
                queue.put_nowait(event)

    if from_start:
        js = nc.jetstream()
        subs = [
            await js.subscribe(
                s, cb=on_msg, ordered_consumer=True, deliver_policy=api.DeliverPolicy.ALL
            )
            for s in _subjects(strategy)
        ]
    else:
        subs = [await nc.subscribe(s, cb=on_msg) for s in _subjects(strategy)]
        await nc.flush()
    try:
        while True:
            yield await queue.get()
    finally:
        for sub in subs:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
