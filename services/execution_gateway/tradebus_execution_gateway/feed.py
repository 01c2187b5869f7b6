"""Demo price feed: a seeded random walk in exact Decimal, published on md.<venue>.<symbol>."""

from __future__ import annotations

import asyncio
import logging
import random
from decimal import Decimal

from tradebus_common.bus import Bus, raise_if_cancelling
from tradebus_common.config import FeedConfig
from tradebus_common.errors import ConfigError
from tradebus_common.events import MarketTick
from tradebus_common.runtime import ServiceContext, ServiceSpec

from .replay import merged_ticks, replay, replay_symbols

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


async def run_replay(ctx: ServiceContext) -> None:
    """[feed] source = "replay": the bundled ticks of the symbols in start_prices (all
    bundled ones if none match), at `speed`, over and over when replay_loop."""
    config = ctx.config.feed
    symbols = [s for s in replay_symbols() if s in config.start_prices] or replay_symbols()

    async def publish(tick: MarketTick) -> None:
        try:
            await ctx.bus.publish(tick)
        except Exception as e:  # a missed tick is fine; the next one follows
            raise_if_cancelling()
            log.warning("tick publish failed", extra={"error": repr(e)})

    while True:
        ticks = merged_ticks(config.venue, symbols)
        sent = await replay(ticks, publish, config.speed)
        log.info("sample ticks replayed", extra={"ticks": sent, "speed": config.speed})
        if not config.replay_loop:
            return


async def build(ctx: ServiceContext) -> None:
    config = ctx.config.feed
    if config.source not in ("random", "replay"):
        raise ConfigError(f"[feed] source must be random or replay, not {config.source!r}")
    if config.enabled and config.source == "replay":
        ctx.tasks.append(lambda: run_replay(ctx))
        return
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
