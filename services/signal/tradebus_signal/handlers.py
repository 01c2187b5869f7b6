"""Signal -> OrderIntent, once per signal id."""

from __future__ import annotations

import logging

from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from tradebus_common.bus import Bus
from tradebus_common.config import Config
from tradebus_common.events import Event, OrderIntent, Signal
from tradebus_common.ids import derive_id

from .validation import validate

log = logging.getLogger("tradebus.signal")


def size(signal: Signal, config: Config) -> OrderIntent:
    """Fixed-quantity sizing: the strategy's configured quantity, else the signal's."""
    strategy = config.strategies[signal.strategy]
    return OrderIntent(
        id=derive_id(signal.id, "intent", 0),
        correlation_id=signal.id,
        causation_id=signal.id,
        strategy=signal.strategy,
        venue=signal.venue,
        symbol=signal.symbol,
        side=signal.side,
        quantity=signal.quantity if strategy.quantity is None else strategy.quantity,
        order_type=signal.order_type,
        limit_price=signal.limit_price,
        signal_id=signal.id,
        leg=0,
    )


def dedup_key(signal_id: str) -> str:
    # KV keys allow a narrow alphabet; a client's id may be anything, so key on a hash of it.
    return "signal." + derive_id(signal_id, "seen")


class SignalHandler:
    def __init__(self, config: Config, bus: Bus, seen: KeyValue) -> None:
        self.config = config
        self.bus = bus
        self.seen = seen

    async def __call__(self, signal: Signal) -> list[Event]:
        if await self._already_seen(signal.id):
            log.info("duplicate signal ignored", extra={"signal_id": signal.id})
            return []
        validate(signal, self.config)
        intent = size(signal, self.config)
        # Publish before marking: a crash in between republishes the same intent id, which
        # JetStream deduplicates; marking first could lose the intent.
        await self.bus.publish(intent)
        await self.seen.put(dedup_key(signal.id), intent.id.encode())
        return []

    async def _already_seen(self, signal_id: str) -> bool:
        try:
            await self.seen.get(dedup_key(signal_id))
            return True
        except KeyNotFoundError:
            return False
