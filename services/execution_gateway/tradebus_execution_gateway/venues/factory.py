"""Building a ccxt venue from its config (the paper venue is built in service.py)."""

from __future__ import annotations

import logging

from tradebus_common.bus import Bus
from tradebus_common.config import VenueConfig
from tradebus_common.errors import ConfigError

from .ccxt_venue import CcxtVenue, make_exchange

log = logging.getLogger("tradebus.execution_gateway")


async def make_ccxt_venue(name: str, config: VenueConfig, bus: Bus) -> CcxtVenue:
    """Construct, then load and cache the markets; a venue that cannot load them fails the
    start (we cannot size an order without them), after the usual retries."""
    try:
        exchange = make_exchange(config)
    except ValueError as e:
        raise ConfigError(f"venues.{name}: {e}") from e
    venue = CcxtVenue(name, config, exchange, bus.publish_all)
    try:
        await venue.start()
    except Exception:
        await venue.close()
        raise
    mode = "demo" if config.demo else "sandbox" if config.sandbox else "LIVE"
    log.warning(
        "ccxt venue ready",
        extra={"venue": name, "exchange": config.exchange, "mode": mode, "symbols": config.symbols},
    )
    return venue
