"""Market data from a ccxt venue (E8): fetch_ticker polled per symbol, published as
md.<venue>.<symbol> ticks for the risk-gate's checks and the ledger's marks. (ccxt.pro's
watch_ticker would push instead; polling works on every exchange and after any gap.)"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from tradebus_common.bus import raise_if_cancelling
from tradebus_common.events import Event, MarketTick

from .ccxt_venue import CcxtVenue
from .sizing import dec

log = logging.getLogger("tradebus.execution_gateway.ticker")


def tick_from(venue: str, symbol: str, ticker: dict[str, Any]) -> MarketTick | None:
    """A tick from a ccxt ticker; None when it has no last price (nothing to publish)."""
    price = dec(ticker.get("last") or ticker.get("close"))
    if price is None:
        return None
    return MarketTick(
        venue=venue,
        symbol=symbol,
        price=price,
        bid=dec(ticker.get("bid")),
        ask=dec(ticker.get("ask")),
        volume=dec(ticker.get("baseVolume")),
    )


def ticker_task(
    venue: CcxtVenue, publish: Callable[[Event], Awaitable[Any]]
) -> Callable[[], Awaitable[None]]:
    interval_s = venue.config.ticker_poll_interval_ms / 1000

    async def run() -> None:
        while True:
            for symbol in venue.config.symbols:
                try:
                    tick = tick_from(venue.name, symbol, await venue.fetch_ticker(symbol))
                    if tick is not None:
                        await publish(tick)
                except Exception as e:  # a missed tick is fine; the next poll follows
                    raise_if_cancelling()
                    log.warning("ticker poll failed", extra={"venue": venue.name, "error": repr(e)})
            await asyncio.sleep(interval_s)

    return run
