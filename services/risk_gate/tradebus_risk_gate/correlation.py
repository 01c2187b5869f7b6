"""The correlation breaker's arithmetic (R5): returns per symbol from market ticks, sampled
in fixed time buckets by the tick's own timestamp (so a replay or a slow consumer gives the
same series), and the correlation of open positions' returns.

Correlation is a statistic, not money: floats are right here (statistics.correlation).
Direction matters: two longs that move together concentrate risk, and so do a long and a
short that move in opposite directions. The figure compared with the limit is therefore
corr(returns a, returns b) x sign(position a) x sign(position b).
"""

from __future__ import annotations

import statistics
from collections import OrderedDict
from dataclasses import dataclass
from decimal import Decimal
from itertools import combinations

from tradebus_common.events import LedgerSnapshot, MarketTick


@dataclass(frozen=True)
class Correlated:
    a: str  # "venue/symbol"
    b: str
    value: float  # direction-adjusted correlation
    bucket: int  # the newest bucket the figure used (the trip's cause)

    def describe(self) -> str:
        return f"{self.a} and {self.b} returns correlate at {self.value:.2f}"


class ReturnSeries:
    """The last price of each time bucket, per venue/symbol, for the newest `window` + 1
    buckets: enough for `window` returns."""

    def __init__(self, sample_s: float, window: int) -> None:
        self.sample_s = sample_s
        self.window = window
        self.prices: dict[str, OrderedDict[int, float]] = {}

    def add(self, tick: MarketTick) -> None:
        key = f"{tick.venue}/{tick.symbol}"
        bucket = int(tick.ts.timestamp() // self.sample_s)
        series = self.prices.setdefault(key, OrderedDict())
        if series and bucket < next(reversed(series)):
            return  # an older tick than what is held: the bucket's last price stands
        series[bucket] = float(tick.price)
        series.move_to_end(bucket)
        while len(series) > self.window + 1:
            series.popitem(last=False)

    def returns(self, a: str, b: str) -> tuple[list[float], list[float], int] | None:
        """Aligned returns of a and b over the buckets both have, or None if fewer than
        `window` of them."""
        pa, pb = self.prices.get(a), self.prices.get(b)
        if not pa or not pb:
            return None
        common = sorted(set(pa) & set(pb))[-(self.window + 1) :]
        if len(common) < self.window + 1:
            return None
        ra = [pa[j] / pa[i] - 1 for i, j in zip(common, common[1:], strict=False)]
        rb = [pb[j] / pb[i] - 1 for i, j in zip(common, common[1:], strict=False)]
        return ra, rb, common[-1]


def open_directions(snapshot: LedgerSnapshot | None) -> dict[str, int]:
    """Net direction (+1 / -1) per venue/symbol with an open position."""
    net: dict[str, Decimal] = {}
    for p in snapshot.positions if snapshot else []:
        key = f"{p.venue}/{p.symbol}"
        net[key] = net.get(key, Decimal(0)) + p.quantity
    return {k: (1 if q > 0 else -1) for k, q in net.items() if q != 0}


def most_correlated(
    series: ReturnSeries, directions: dict[str, int], limit: float
) -> Correlated | None:
    """The open pair with the highest direction-adjusted correlation over `limit`, if any."""
    worst: Correlated | None = None
    for a, b in combinations(sorted(directions), 2):
        found = series.returns(a, b)
        if found is None:
            continue
        ra, rb, bucket = found
        try:
            corr = statistics.correlation(ra, rb) * directions[a] * directions[b]
        except statistics.StatisticsError:  # a flat series has no correlation
            continue
        if corr > limit and (worst is None or corr > worst.value):
            worst = Correlated(a=a, b=b, value=corr, bucket=bucket)
    return worst
