"""PaperVenue: a simulated venue driven by md.<venue>.<symbol> ticks (see matching.py).

Its orders live in the JetStream KV bucket `paper_venue`, one key per client order id. The
first write is a create (compare-and-set) and later ones are updates on the read revision,
so a redelivered order or a restarted gateway sees the first outcome, exactly like a real
venue that knows its client order ids, and nothing fills twice.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import datetime
from decimal import Decimal

import msgspec
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from tradebus_common import subjects
from tradebus_common.bus import Bus
from tradebus_common.codec import decode, decoder_for
from tradebus_common.config import VenueConfig
from tradebus_common.errors import PermanentError, TransientError
from tradebus_common.events import (
    MarketTick,
    OrderApproved,
    PositionView,
    RejectReason,
    Side,
    VenueTradeView,
)
from tradebus_common.mirror import StreamMirror, bucket_entries

from . import matching
from .base import VenueFill, VenueOrder, VenueOrderStatus

_order_decoder = decoder_for(VenueOrder)
_encoder = msgspec.json.Encoder(decimal_format="string")


class PaperVenue:
    def __init__(self, name: str, config: VenueConfig, bus: Bus, kv: KeyValue) -> None:
        self.name = name
        self.config = config
        self.bus = bus
        self.kv = kv
        self._positions: dict[str, Decimal] = defaultdict(Decimal)
        self._working: dict[str, VenueOrder] = {}  # client order id -> resting order
        self._by_strategy: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
        # Balances are the configured start moved by every stored fill, so they are rebuilt
        # exactly from the orders in KV after a restart (no second record to drift).
        self._balances: dict[str, Decimal] = defaultdict(Decimal, config.starting_balances)
        self._trades: dict[str, VenueTradeView] = {}  # trade id -> execution
        self.market = StreamMirror(
            bus.js, subjects.STREAM_MARKET, subjects.market_all(name), bus.reconnects
        )

    async def _last_tick(self, symbol: str) -> tuple[MarketTick, int] | None:
        """The newest tick and its MARKET sequence, from the copy (no round trip per order)."""
        found = await self.market.get(subjects.market(self.name, symbol))
        if found is None or found.data is None:
            return None
        try:
            return decode(found.data, MarketTick), found.seq
        except PermanentError:
            return None

    def _key(self, client_order_id: str) -> str:
        return f"{subjects.token(self.name)}.order.{client_order_id}"

    async def load(self) -> None:
        """Rebuild positions and the resting book from the stored orders (after a restart),
        from a complete copy of the bucket (KeyValue.keys() can come back short under load),
        and start the copy of the newest market tick per symbol."""
        prefix = f"{subjects.token(self.name)}.order."
        for key, found in sorted((await bucket_entries(self.kv)).items()):
            if key.startswith(prefix) and found.data:
                self._track(None, _order_decoder.decode(found.data))
        await self.market.start()

    async def close(self) -> None:
        await self.market.stop()

    async def fetch_order(self, client_order_id: str, symbol: str = "") -> VenueOrder | None:
        found = await self._get(client_order_id)
        return found[0] if found else None

    async def _get(self, client_order_id: str) -> tuple[VenueOrder, int] | None:
        try:
            entry = await self.kv.get(self._key(client_order_id))
        except KeyNotFoundError:
            return None
        return _order_decoder.decode(entry.value or b""), entry.revision or 0

    async def submit(self, order: OrderApproved) -> VenueOrder:
        await self._latency()
        # Idempotent by the create below (a repeat finds the stored outcome): no read first.
        outcome = await self._on_arrival(order)
        try:
            await self.kv.create(self._key(order.client_order_id), _encoder.encode(outcome))
        except KeyWrongLastSequenceError:  # a concurrent submit won: its outcome stands
            stored = await self.fetch_order(order.client_order_id)
            assert stored is not None
            return stored
        self._track(None, outcome)
        return outcome

    async def cancel(self, client_order_id: str) -> VenueOrder | None:
        await self._latency()
        found = await self._get(client_order_id)
        if found is None:
            return None
        order, revision = found
        if not order.working:
            return order
        canceled = msgspec.structs.replace(order, status=VenueOrderStatus.CANCELED)
        await self._store(order, canceled, revision)
        return canceled

    async def on_tick(self, tick: MarketTick, tick_seq: int) -> list[tuple[VenueOrder, VenueOrder]]:
        """Match the resting orders of the tick's symbol; (before, after) for each changed."""
        changed = []
        for cid in [c for c, o in self._working.items() if o.symbol == tick.symbol]:
            found = await self._get(cid)  # the stored record is the truth, not the cache
            if found is None:
                continue
            before, revision = found
            after = matching.on_tick(before, tick, tick_seq, self.config)
            if after is not None:
                await self._store(before, after, revision)
                changed.append((before, after))
        return changed

    async def open_orders(self) -> list[VenueOrder]:
        return sorted(self._working.values(), key=lambda o: o.client_order_id)

    async def my_trades(self, since: datetime | None) -> list[VenueTradeView]:
        """Every execution (paper fills carry no venue time, so `since` is not applied)."""
        return list(self._trades.values())

    async def balances(self) -> dict[str, Decimal]:
        return {c: q for c, q in sorted(self._balances.items()) if q != 0}

    async def markets(self) -> list[str]:
        return list(self.config.symbols)

    def positions_by_strategy(self) -> dict[tuple[str, str], Decimal]:
        """Net quantity per (symbol, strategy), from this venue's own fills."""
        return {k: q for k, q in self._by_strategy.items() if q != 0}

    async def positions(self) -> list[PositionView]:
        return [
            PositionView(venue=self.name, symbol=symbol, quantity=qty)
            for symbol, qty in sorted(self._positions.items())
        ]

    async def _store(self, before: VenueOrder, after: VenueOrder, revision: int) -> None:
        try:
            await self.kv.update(
                self._key(after.client_order_id), _encoder.encode(after), last=revision
            )
        except KeyWrongLastSequenceError as e:  # changed under us: retry from the new record
            raise TransientError(f"paper order {after.client_order_id} changed concurrently") from e
        self._track(before, after)

    def _track(self, before: VenueOrder | None, after: VenueOrder) -> None:
        sign = 1 if after.side is Side.BUY else -1
        for fill in after.fills[len(before.fills) if before else 0 :]:
            self._positions[after.symbol] += sign * fill.quantity
            self._by_strategy[(after.symbol, after.strategy)] += sign * fill.quantity
            self._book_fill(after, fill, sign)
        if after.working:
            self._working[after.client_order_id] = after
        else:
            self._working.pop(after.client_order_id, None)

    async def _latency(self) -> None:
        """The simulated venue round trip (latency_ms); 0 costs nothing."""
        if self.config.latency_ms > 0:
            await asyncio.sleep(self.config.latency_ms / 1000)

    def _book_fill(self, order: VenueOrder, fill: VenueFill, sign: int) -> None:
        base, _, quote = order.symbol.partition("/")
        self._balances[base] += sign * fill.quantity
        self._balances[quote or self.config.quote_currency] -= sign * fill.quantity * fill.price
        self._balances[fill.fee_currency] -= fill.fee
        self._trades[fill.trade_id] = VenueTradeView(
            trade_id=fill.trade_id,
            client_order_id=order.client_order_id,
            venue_order_id=order.venue_order_id,
            symbol=order.symbol,
            side=order.side,
            quantity=fill.quantity,
            price=fill.price,
            fee=fill.fee,
            fee_currency=fill.fee_currency,
            liquidity=fill.liquidity,
            strategy=order.strategy,
        )

    async def _on_arrival(self, order: OrderApproved) -> VenueOrder:
        record = VenueOrder(
            client_order_id=order.client_order_id,
            venue_order_id=f"P{order.client_order_id}",
            symbol=order.symbol,
            side=order.side,
            quantity=order.quantity,
            status=VenueOrderStatus.OPEN,
            order_type=order.order_type,
            limit_price=order.limit_price,
            strategy=order.strategy,
            approved_id=order.id,
            correlation_id=order.correlation_id,
            exit_reason=order.exit_reason,
        )
        market = await self._last_tick(order.symbol)
        if market is None:
            return msgspec.structs.replace(
                record,
                venue_order_id="",
                status=VenueOrderStatus.REJECTED,
                reject_reason=RejectReason.NO_MARKET_DATA,
                reject_detail="no tick yet",
            )
        tick, seq = market
        return matching.on_arrival(record, tick.price, seq, self.config)
