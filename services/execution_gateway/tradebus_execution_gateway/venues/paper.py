"""PaperVenue: fills market orders at the last price from md.<venue>.<symbol>, plus a fee.

Its orders live in the JetStream KV bucket `paper_venue` (one key per client order id,
written with create, i.e. compare-and-set), so a redelivered order or a restarted gateway
sees the first outcome, exactly like a real venue that knows its client order ids.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

import msgspec
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from tradebus_common import subjects
from tradebus_common.bus import Bus
from tradebus_common.codec import decoder_for
from tradebus_common.config import VenueConfig
from tradebus_common.events import (
    Liquidity,
    OrderApproved,
    OrderType,
    PositionView,
    RejectReason,
    Side,
)

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

    def _key(self, client_order_id: str) -> str:
        return f"{subjects.token(self.name)}.order.{client_order_id}"

    async def load(self) -> None:
        """Rebuild positions from the stored orders (after a restart)."""
        try:
            keys = await self.kv.keys()
        except Exception:  # nats-py raises NoKeysError on an empty bucket
            keys = []
        prefix = f"{subjects.token(self.name)}.order."
        for key in keys:
            if key.startswith(prefix):
                order = await self.fetch_order(key[len(prefix) :])
                if order is not None:
                    self._apply(order)

    async def fetch_order(self, client_order_id: str) -> VenueOrder | None:
        try:
            entry = await self.kv.get(self._key(client_order_id))
        except KeyNotFoundError:
            return None
        return _order_decoder.decode(entry.value or b"")

    async def submit(self, order: OrderApproved) -> VenueOrder:
        existing = await self.fetch_order(order.client_order_id)
        if existing is not None:
            return existing
        outcome = await self._execute(order)
        try:
            await self.kv.create(self._key(order.client_order_id), _encoder.encode(outcome))
        except KeyWrongLastSequenceError:  # a concurrent submit won: its outcome stands
            stored = await self.fetch_order(order.client_order_id)
            assert stored is not None
            return stored
        self._apply(outcome)
        return outcome

    async def positions(self) -> list[PositionView]:
        return [
            PositionView(venue=self.name, symbol=symbol, quantity=qty)
            for symbol, qty in sorted(self._positions.items())
        ]

    def _apply(self, order: VenueOrder) -> None:
        sign = 1 if order.side is Side.BUY else -1
        for fill in order.fills:
            self._positions[order.symbol] += sign * fill.quantity

    async def _execute(self, order: OrderApproved) -> VenueOrder:
        tick = await self.bus.last_tick(self.name, order.symbol)
        if tick is None:
            return self._rejected(order, None, RejectReason.NO_MARKET_DATA, "no tick yet")
        price = tick.price
        if order.order_type is OrderType.LIMIT and not _marketable(order, price):
            return self._rejected(
                order,
                price,
                RejectReason.LIMIT_NOT_MARKETABLE,
                "resting limit orders are not simulated yet",
            )
        fee = (order.quantity * price * self.config.taker_fee_rate).quantize(Decimal("1e-8"))
        fill = VenueFill(
            trade_id=f"T{order.client_order_id}",
            quantity=order.quantity,
            price=price,
            fee=fee,
            fee_currency=self.config.quote_currency,
            liquidity=Liquidity.TAKER,
        )
        return VenueOrder(
            client_order_id=order.client_order_id,
            venue_order_id=f"P{order.client_order_id}",
            symbol=order.symbol,
            side=order.side,
            quantity=order.quantity,
            status=VenueOrderStatus.FILLED,
            arrival_price=price,
            fills=[fill],
        )

    def _rejected(
        self, order: OrderApproved, price: Decimal | None, reason: RejectReason, detail: str
    ) -> VenueOrder:
        return VenueOrder(
            client_order_id=order.client_order_id,
            venue_order_id="",
            symbol=order.symbol,
            side=order.side,
            quantity=order.quantity,
            status=VenueOrderStatus.REJECTED,
            arrival_price=price,
            reject_reason=reason,
            reject_detail=detail,
        )


def _marketable(order: OrderApproved, last: Decimal) -> bool:
    assert order.limit_price is not None
    return order.limit_price >= last if order.side is Side.BUY else order.limit_price <= last
