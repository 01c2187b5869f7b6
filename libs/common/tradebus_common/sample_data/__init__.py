"""Bundled sample market data: one hour of 1-second ticks for BTC/USDT and ETH/USDT.

Synthetic (a seeded random walk with alternating trends, so moving averages cross), exact
Decimal. Market-data replay (E8) and the example strategy's tests (S6) read it.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from importlib.resources import files

from ..events import MarketTick

SYMBOLS = ("BTC/USDT", "ETH/USDT")


def _file_name(symbol: str) -> str:
    return symbol.replace("/", "_").lower() + ".csv"


def sample_symbols() -> tuple[str, ...]:
    return SYMBOLS


def load_ticks(venue: str, symbol: str) -> Iterator[MarketTick]:
    """The bundled ticks for `symbol`, in time order, as they would arrive on md.<venue>.*.

    Raises KeyError for a symbol with no bundled data."""
    if symbol not in SYMBOLS:
        raise KeyError(f"no bundled sample data for {symbol!r}; have {', '.join(SYMBOLS)}")
    text = files(__package__).joinpath(_file_name(symbol)).read_text()
    for row in csv.DictReader(text.splitlines()):
        yield MarketTick(
            ts=datetime.fromisoformat(row["ts"]),
            venue=venue,
            symbol=symbol,
            price=Decimal(row["last"]),
            bid=Decimal(row["bid"]),
            ask=Decimal(row["ask"]),
            volume=Decimal(row["volume"]),
        )
