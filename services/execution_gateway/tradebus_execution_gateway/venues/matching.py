"""The paper venue's matching rules, as pure functions (deterministic, no clock, no I/O).

* A market order fills at once at the last price, moved against the taker by slippage_bps.
* A limit order that is marketable on arrival fills the same way, capped at its limit.
* Otherwise it rests, and a later tick fills it at its limit price as a maker when the
  traded price reaches it: at most participation x the tick's volume per tick (all of the
  remainder when the tick carries no volume).
"""

from __future__ import annotations

from decimal import Decimal

import msgspec

from tradebus_common.config import VenueConfig
from tradebus_common.events import Liquidity, MarketTick, OrderType, Side

from .base import VenueFill, VenueOrder, VenueOrderStatus

_FEE_QUANTUM = Decimal("1e-8")


def crosses(side: Side, limit: Decimal, price: Decimal) -> bool:
    return price <= limit if side is Side.BUY else price >= limit


def taker_price(side: Side, last: Decimal, config: VenueConfig) -> Decimal:
    move = last * config.slippage_bps / Decimal(10000)
    return last + move if side is Side.BUY else last - move


def make_fill(
    order: VenueOrder, qty: Decimal, price: Decimal, liquidity: Liquidity, config: VenueConfig
) -> VenueFill:
    rate = config.taker_fee_rate if liquidity is Liquidity.TAKER else config.maker_fee_rate
    return VenueFill(
        trade_id=f"T{order.client_order_id}-{len(order.fills) + 1}",
        quantity=qty,
        price=price,
        fee=(qty * price * rate).quantize(_FEE_QUANTUM),
        fee_currency=config.quote_currency,
        liquidity=liquidity,
    )


def with_fill(order: VenueOrder, fill: VenueFill, tick_seq: int) -> VenueOrder:
    fills = [*order.fills, fill]
    done = sum((f.quantity for f in fills), Decimal(0)) >= order.quantity
    status = VenueOrderStatus.FILLED if done else VenueOrderStatus.PARTIALLY_FILLED
    return msgspec.structs.replace(
        order, fills=fills, status=status, last_tick_seq=max(order.last_tick_seq, tick_seq)
    )


def on_arrival(order: VenueOrder, last: Decimal, tick_seq: int, config: VenueConfig) -> VenueOrder:
    """Fill a market or marketable limit order now; rest any other limit order."""
    order = msgspec.structs.replace(order, arrival_price=last, last_tick_seq=tick_seq)
    price = taker_price(order.side, last, config)
    if order.order_type is OrderType.LIMIT:
        assert order.limit_price is not None
        if not crosses(order.side, order.limit_price, last):
            return msgspec.structs.replace(order, status=VenueOrderStatus.OPEN)
        price = (
            min(price, order.limit_price)
            if order.side is Side.BUY
            else max(price, order.limit_price)
        )
    fill = make_fill(order, order.quantity, price, Liquidity.TAKER, config)
    return with_fill(order, fill, tick_seq)


def on_tick(
    order: VenueOrder, tick: MarketTick, tick_seq: int, config: VenueConfig
) -> VenueOrder | None:
    """The order after this tick, or None when the tick changes nothing (already seen, not
    working, or the price does not reach the limit)."""
    if not order.working or tick_seq <= order.last_tick_seq or order.limit_price is None:
        return None
    if not crosses(order.side, order.limit_price, tick.price):
        return msgspec.structs.replace(order, last_tick_seq=tick_seq)
    qty = order.remaining
    if tick.volume is not None:
        qty = min(qty, tick.volume * config.participation_rate)
    if qty <= 0:
        return msgspec.structs.replace(order, last_tick_seq=tick_seq)
    fill = make_fill(order, qty, order.limit_price, Liquidity.MAKER, config)
    return with_fill(order, fill, tick_seq)
