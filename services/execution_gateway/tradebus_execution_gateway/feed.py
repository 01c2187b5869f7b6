"""Demo price feed: a seeded random walk in exact Decimal, published on md.<venue>.<symbol>."""

from __future__ import annotations

import asyncio
import logging
import random
from decimal import Decimal

from tradebus_common.bus import Bus, raise_if_cancelling
from tradebus_common.config import FeedConfig
from tradebus_common.events import MarketTick
from tradebus_common.runtime import ServiceContext, ServiceSpec

log = logging.getLogger("tradebus.feed")
_CENT = Decimal("0.01")


class RandomWalk:
    """Deterministic for a given seed: each step moves each price by up to ±volatility_bps."""

    def __init__(self, config: FeedConfig) -> None:
        self.rng = random.Random(config.seed)
        self.max_bps = int(config.volatility_bps)
        self.prices = dict(config.start_prices)

    def step(self) -> dict[str, Decimal]:
        for symbol, price in self.prices.items():
            bps = Decimal(self.rng.randint(-self.max_bps, self.max_bps))
            moved = (price * (1 + bps / 10000)).quantize(_CENT)
            self.prices[symbol] = max(moved, _CENT)
        return dict(self.prices)


async def publish_ticks(bus: Bus, venue: str, prices: dict[str, Decimal]) -> None:
    for symbol, price in prices.items():
        spread = (price * Decimal("0.0001")).quantize(_CENT)
        await bus.publish(
            MarketTick(
                venue=venue, symbol=symbol, price=price, bid=price - spread, ask=price + spread
            )
        )


async def build(ctx: ServiceContext) -> None:
    config = ctx.config.feed
    walk = RandomWalk(config)

    async def run() -> None:
        while True:
            try:
                await publish_ticks(ctx.bus, config.venue, walk.step())
            except Exception as e:  # a missed tick is fine; the next one follows
                raise_if_cancelling()
                log.warning("tick publish failed", extra={"error": repr(e)})
            await asyncio.sleep(config.interval_ms / 1000)

    if config.enabled:
        ctx.tasks.append(run)
    else:
        log.info("demo feed disabled by config ([feed] enabled = false)")


SPEC = ServiceSpec(name="demo-feed", build=build)
