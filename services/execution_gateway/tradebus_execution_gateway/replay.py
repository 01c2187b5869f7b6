"""Market-data replay (E8): the bundled sample ticks published on md.<venue>.<symbol>.

Ticks of all symbols go out in their recorded time order, spaced by their recorded gaps
divided by `speed` (0: no pause at all), each re-stamped with the time it is published so
readers that judge staleness (the risk-gate) treat it as live data.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Awaitable, Callable, Iterable, Iterator
from datetime import datetime

import msgspec

from tradebus_common.events import MarketTick, utcnow
from tradebus_common.sample_data import load_ticks, sample_symbols

Publish = Callable[[MarketTick], Awaitable[object]]
Sleep = Callable[[float], Awaitable[object]]


def replay_symbols(wanted: Iterable[str] = ()) -> list[str]:
    """The bundled symbols among `wanted` (all of them when `wanted` is empty)."""
    wanted = list(wanted)
    if not wanted:
        return list(sample_symbols())
    unknown = [s for s in wanted if s not in sample_symbols()]
    if unknown:
        raise KeyError(f"no bundled sample data for {unknown}; have {list(sample_symbols())}")
    return wanted


def merged_ticks(venue: str, symbols: Iterable[str]) -> Iterator[MarketTick]:
    """Every symbol's ticks in one stream, in recorded time order."""
    return heapq.merge(*(load_ticks(venue, s) for s in symbols), key=lambda t: t.ts)


async def replay(
    ticks: Iterable[MarketTick],
    publish: Publish,
    speed: float,
    limit: int = 0,
    sleep: Sleep = asyncio.sleep,
    now: Callable[[], datetime] = utcnow,
) -> int:
    """Publish `ticks` paced by `speed`; returns how many went out (at most `limit` if set)."""
    if speed < 0:
        raise ValueError("speed must be >= 0 (0: as fast as possible)")
    previous: datetime | None = None
    sent = 0
    for tick in ticks:
        if limit and sent >= limit:
            break
        if previous is not None and speed > 0:
            gap = (tick.ts - previous).total_seconds() / speed
            if gap > 0:
                await sleep(gap)  # pacing the replay, not waiting on anything
        previous = tick.ts
        await publish(msgspec.structs.replace(tick, ts=now()))
        sent += 1
    return sent
