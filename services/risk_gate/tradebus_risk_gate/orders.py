"""Open-order book: approved orders not yet terminal, for max open orders and position
projections. Kept in KV `risk_orders` (one key per client order id), so a restarted gate
counts the same orders; memory is a copy loaded at start."""

from __future__ import annotations

from decimal import Decimal

import msgspec
from nats.js.kv import KeyValue

from tradebus_common.events import OrderApproved, Side
from tradebus_common.mirror import bucket_entries

_ZERO = Decimal(0)


class OpenOrder(msgspec.Struct, kw_only=True):
    client_order_id: str
    strategy: str
    venue: str
    symbol: str
    side: Side
    quantity: Decimal
    price: Decimal = _ZERO  # limit price, or the last price at approval (for notional)
    filled: Decimal = _ZERO
    fill_ids: list[str] = []  # a redelivered fill is counted once

    @property
    def remaining(self) -> Decimal:
        return max(self.quantity - self.filled, _ZERO)

    @property
    def signed_remaining(self) -> Decimal:
        return self.remaining if self.side is Side.BUY else -self.remaining


_enc = msgspec.json.Encoder()
_dec = msgspec.json.Decoder(OpenOrder)


class OpenOrderBook:
    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv
        self.orders: dict[str, OpenOrder] = {}

    async def load(self) -> None:
        """Every open order of the bucket, from a complete copy of it."""
        for found in (await bucket_entries(self.kv)).values():
            order = _dec.decode(found.data or b"{}")
            self.orders[order.client_order_id] = order

    async def add(self, approved: OrderApproved, price: Decimal) -> None:
        """Durable first, then counted (a redelivery re-adds the same key: idempotent)."""
        order = self._order(approved, price)
        known = self.orders.get(order.client_order_id)
        if known is not None and known.fill_ids:
            order = known  # reserved and already partly filled: keep what was counted
        await self.kv.put(order.client_order_id, _enc.encode(order))
        self.orders[order.client_order_id] = order

    def reserve(self, approved: OrderApproved, price: Decimal) -> None:
        """Counted now, made durable by `add` once its outcome is recorded: the decisions
        after it in the same batch must see it."""
        self.orders.setdefault(approved.client_order_id, self._order(approved, price))

    def forget(self, client_order_id: str) -> None:
        """Undo a reservation whose outcome was never recorded."""
        self.orders.pop(client_order_id, None)

    @staticmethod
    def _order(approved: OrderApproved, price: Decimal) -> OpenOrder:
        return OpenOrder(
            client_order_id=approved.client_order_id,
            strategy=approved.strategy,
            venue=approved.venue,
            symbol=approved.symbol,
            side=approved.side,
            quantity=approved.quantity,
            price=price,
        )

    async def fill(self, client_order_id: str, fill_id: str, quantity: Decimal) -> None:
        order = self.orders.get(client_order_id)
        if order is None or fill_id in order.fill_ids:
            return
        order.filled += quantity
        order.fill_ids.append(fill_id)
        if order.remaining == 0:
            await self.close(client_order_id)
        else:
            await self.kv.put(client_order_id, _enc.encode(order))

    async def close(self, client_order_id: str) -> None:
        if client_order_id not in self.orders:
            return
        await self.kv.delete(client_order_id)
        self.orders.pop(client_order_id, None)

    def pending_qty(self, venue: str, symbol: str) -> Decimal:
        return sum(
            (
                o.signed_remaining
                for o in self.orders.values()
                if (o.venue, o.symbol) == (venue, symbol)
            ),
            _ZERO,
        )

    def pending_notional(self) -> Decimal:
        return sum((o.remaining * o.price for o in self.orders.values()), _ZERO)

    def count(self) -> int:
        return len(self.orders)
