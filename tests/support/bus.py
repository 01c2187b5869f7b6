"""Test helpers that wait on real events (never on a fixed sleep)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import msgspec
from nats.aio.client import Client as NATS

from tradebus_common.codec import decode, encode
from tradebus_common.errors import PermanentError
from tradebus_common.events import Event, MarketTick


class Collector:
    """Subscribes (core NATS) to a subject and lets a test await matching events."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self.raw: list[tuple[str, bytes]] = []
        self.headers: list[dict[str, str]] = []
        self._changed = asyncio.Condition()

    async def on_msg(self, msg: Any) -> None:
        self.raw.append((msg.subject, msg.data))
        self.headers.append(dict(msg.headers or {}))
        try:
            self.events.append(decode(msg.data))
        except PermanentError:
            pass
        async with self._changed:
            self._changed.notify_all()

    def matching(self, pred: Callable[[Any], bool]) -> list[Any]:
        return [e for e in self.events if pred(e)]

    async def wait_for(
        self, pred: Callable[[Any], bool], timeout: float = 10.0, count: int = 1
    ) -> list[Any]:
        async def _wait() -> list[Any]:
            async with self._changed:
                await self._changed.wait_for(lambda: len(self.matching(pred)) >= count)
            return self.matching(pred)

        try:
            return await asyncio.wait_for(_wait(), timeout)
        except TimeoutError as e:
            seen = [type(x).__name__ for x in self.events][-20:]
            raise AssertionError(
                f"timed out after {timeout}s waiting for {count} matching "
                f"event(s); last seen: {seen}"
            ) from e


async def collect(nc: NATS, subject: str) -> Collector:
    col = Collector()
    await nc.subscribe(subject, cb=col.on_msg)
    await nc.flush()
    return col


async def publish_event(nc: NATS, event: Event, subject: str | None = None) -> None:
    from tradebus_common import subjects

    await nc.jetstream().publish(
        subject or subjects.subject_for(event), encode(event), headers={"Nats-Msg-Id": event.id}
    )


async def publish_raw(
    nc: NATS, subject: str, body: bytes | dict, headers: dict[str, str] | None = None
) -> None:
    data = body if isinstance(body, bytes) else msgspec.json.encode(body)
    await nc.jetstream().publish(subject, data, headers=headers)


async def set_price(nc: NATS, venue: str, symbol: str, price: str) -> None:
    from decimal import Decimal

    await publish_event(nc, MarketTick(venue=venue, symbol=symbol, price=Decimal(price)))
