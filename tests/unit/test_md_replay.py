"""Market-data replay (E8): order, re-stamping and pacing by the speed factor."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tradebus_common.events import MarketTick
from tradebus_common.sample_data import load_ticks
from tradebus_execution_gateway.replay import merged_ticks, replay, replay_symbols

T0 = datetime(2024, 1, 1, tzinfo=UTC)
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def ticks(*gaps_s: float) -> list[MarketTick]:
    out, ts = [], T0
    for n, gap in enumerate((0.0, *gaps_s)):
        ts += timedelta(seconds=gap)
        out.append(MarketTick(ts=ts, venue="paper", symbol="BTC/USDT", price=Decimal(100 + n)))
    return out


class Recorder:
    def __init__(self) -> None:
        self.published: list[MarketTick] = []
        self.sleeps: list[float] = []

    async def publish(self, tick: MarketTick) -> None:
        self.published.append(tick)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)


async def test_replay_paces_the_recorded_gaps_by_the_speed_factor():
    rec = Recorder()
    sent = await replay(ticks(1, 2, 0.5), rec.publish, 10.0, sleep=rec.sleep, now=lambda: NOW)
    assert sent == 4 and rec.sleeps == [0.1, 0.2, 0.05]
    assert [t.price for t in rec.published] == [Decimal(n) for n in (100, 101, 102, 103)]
    assert all(t.ts == NOW for t in rec.published)  # re-stamped: live to its readers


async def test_speed_zero_never_pauses_and_limit_stops_early():
    rec = Recorder()
    sent = await replay(ticks(1, 1, 1), rec.publish, 0, limit=2, sleep=rec.sleep)
    assert sent == 2 and rec.sleeps == []


async def test_a_negative_speed_is_refused():
    with pytest.raises(ValueError):
        await replay(ticks(), Recorder().publish, -1)


def test_both_symbols_merge_in_time_order():
    merged = list(merged_ticks("paper", replay_symbols()))
    assert len(merged) == sum(len(list(load_ticks("paper", s))) for s in replay_symbols())
    assert [t.ts for t in merged] == sorted(t.ts for t in merged)
    with pytest.raises(KeyError):
        replay_symbols(["DOGE/USDT"])
