"""Netting-position accounting in exact Decimal: average price, realized P&L net of fees,
and a flip through zero split into a close and an open."""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal

from tradebus_common.events import Fill, Side

ZERO = Decimal(0)


@dataclass(frozen=True)
class Position:
    quantity: Decimal = ZERO  # signed: long > 0, short < 0
    avg_price: Decimal = ZERO
    realized_pnl: Decimal = ZERO
    fees_paid: Decimal = ZERO
    fill_count: int = 0


def fee_in_quote(fill: Fill, quote_currency: str | None = None) -> Decimal:
    """A fee charged in the base currency is converted at the fill price."""
    base = fill.symbol.split("/")[0] if "/" in fill.symbol else None
    if base and fill.fee_currency == base:
        return fill.fee * fill.price
    return fill.fee


def apply_fill(pos: Position, fill: Fill) -> Position:
    signed = fill.quantity if fill.side is Side.BUY else -fill.quantity
    fee = fee_in_quote(fill)
    pos = replace(pos, realized_pnl=pos.realized_pnl - fee, fees_paid=pos.fees_paid + fee,
                  fill_count=pos.fill_count + 1)
    if pos.quantity == 0 or (pos.quantity > 0) == (signed > 0):
        return _increase(pos, signed, fill.price)
    return _reduce(pos, signed, fill.price)


def _increase(pos: Position, signed: Decimal, price: Decimal) -> Position:
    new_qty = pos.quantity + signed
    avg = (abs(pos.quantity) * pos.avg_price + abs(signed) * price) / abs(new_qty)
    return replace(pos, quantity=new_qty, avg_price=avg)


def _reduce(pos: Position, signed: Decimal, price: Decimal) -> Position:
    closing = min(abs(signed), abs(pos.quantity))
    direction = 1 if pos.quantity > 0 else -1
    realized = pos.realized_pnl + closing * (price - pos.avg_price) * direction
    new_qty = pos.quantity + signed
    if new_qty == 0:
        return replace(pos, quantity=ZERO, avg_price=ZERO, realized_pnl=realized)
    if (new_qty > 0) == (pos.quantity > 0):  # partly reduced: the average is unchanged
        return replace(pos, quantity=new_qty, realized_pnl=realized)
    return replace(pos, quantity=new_qty, avg_price=price, realized_pnl=realized)  # flipped
