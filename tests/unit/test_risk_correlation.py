"""The correlation breaker's arithmetic at its edges."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from tradebus_common.events import LedgerSnapshot, MarketTick, PositionView
from tradebus_risk_gate.correlation import ReturnSeries, most_correlated, open_directions

T0 = datetime(2026, 1, 5, tzinfo=UTC)


def tick(symbol: str, price: str, second: float) -> MarketTick:
    return MarketTick(
        venue="paper", symbol=symbol, price=Decimal(price), ts=T0 + timedelta(seconds=second)
    )


def feed(series: ReturnSeries, symbol: str, prices: list[str], step_s: float = 1.0) -> None:
    for i, p in enumerate(prices):
        series.add(tick(symbol, p, i * step_s))


UP_DOWN = ["100", "101", "100.5", "102", "101", "103"]
MIRROR = ["50", "49.5", "49.75", "49", "49.5", "48.5"]  # moves against UP_DOWN


def snapshot(**qty: str) -> LedgerSnapshot:
    return LedgerSnapshot(
        positions=[
            PositionView(venue="paper", symbol=s.replace("_", "/"), quantity=Decimal(q))
            for s, q in qty.items()
        ]
    )


def test_two_longs_moving_together_are_flagged_with_the_pair_and_bucket() -> None:
    s = ReturnSeries(sample_s=1, window=5)
    feed(s, "BTC/USDT", UP_DOWN)
    feed(s, "ETH/USDT", [str(Decimal(p) * 30) for p in UP_DOWN])  # same returns exactly
    found = most_correlated(s, open_directions(snapshot(BTC_USDT="1", ETH_USDT="2")), 0.7)
    assert found is not None
    assert (found.a, found.b) == ("paper/BTC/USDT", "paper/ETH/USDT")
    assert abs(found.value - 1.0) < 1e-9 and found.bucket == int(T0.timestamp()) + 5


def test_a_long_and_a_short_moving_together_hedge_each_other() -> None:
    s = ReturnSeries(sample_s=1, window=5)
    feed(s, "BTC/USDT", UP_DOWN)
    feed(s, "ETH/USDT", UP_DOWN)
    assert most_correlated(s, open_directions(snapshot(BTC_USDT="1", ETH_USDT="-1")), 0.7) is None


def test_a_long_and_a_short_moving_apart_concentrate_risk() -> None:
    s = ReturnSeries(sample_s=1, window=5)
    feed(s, "BTC/USDT", UP_DOWN)
    feed(s, "ETH/USDT", MIRROR)
    found = most_correlated(s, open_directions(snapshot(BTC_USDT="1", ETH_USDT="-1")), 0.7)
    assert found is not None and found.value > 0.7


def test_needs_a_full_window_of_common_returns() -> None:
    s = ReturnSeries(sample_s=1, window=5)
    feed(s, "BTC/USDT", UP_DOWN[:5])  # 4 returns only
    feed(s, "ETH/USDT", UP_DOWN[:5])
    assert most_correlated(s, open_directions(snapshot(BTC_USDT="1", ETH_USDT="1")), 0.7) is None


def test_at_the_limit_does_not_trip() -> None:
    s = ReturnSeries(sample_s=1, window=5)
    feed(s, "BTC/USDT", UP_DOWN)
    feed(s, "ETH/USDT", UP_DOWN)
    dirs = open_directions(snapshot(BTC_USDT="1", ETH_USDT="1"))
    found = most_correlated(s, dirs, 0.7)
    assert found is not None
    assert most_correlated(s, dirs, found.value) is None  # equal to the limit: not over it


def test_closed_positions_and_flat_series_are_ignored() -> None:
    s = ReturnSeries(sample_s=1, window=5)
    feed(s, "BTC/USDT", UP_DOWN)
    feed(s, "ETH/USDT", ["10"] * 6)  # no variance: no correlation at all
    assert most_correlated(s, open_directions(snapshot(BTC_USDT="1", ETH_USDT="1")), 0.0) is None
    assert open_directions(snapshot(BTC_USDT="0", ETH_USDT="1")) == {"paper/ETH/USDT": 1}


def test_the_last_tick_of_a_bucket_wins_and_older_ticks_are_ignored() -> None:
    s = ReturnSeries(sample_s=10, window=2)
    s.add(tick("BTC/USDT", "100", 0))
    s.add(tick("BTC/USDT", "105", 9))  # same bucket: replaces
    s.add(tick("BTC/USDT", "110", 10))
    s.add(tick("BTC/USDT", "1", 3))  # older than the newest bucket: ignored
    assert list(s.prices["paper/BTC/USDT"].values()) == [105.0, 110.0]
