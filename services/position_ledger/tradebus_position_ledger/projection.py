"""Netting-position accounting in exact Decimal: realized P&L net of fees, and a flip through
zero split into a close and an open.

The position keeps its cost basis (the sum of quantity x price of what is open), not a
running average: adding to a position is then exact however many fills arrive, and the
average price is derived (cost / quantity) only when someone asks for it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal

from tradebus_common.events import Fill, Side

ZERO = Decimal(0)


@dataclass(frozen=True)
class Position:
    quantity: Decimal = ZERO  # signed: long > 0, short < 0
    cost_basis: Decimal = ZERO  # of the open quantity, always >= 0
    realized_pnl: Decimal = ZERO
    fees_paid: Decimal = ZERO
    fill_count: int = 0

    @property
    def avg_price(self) -> Decimal:
        return self.cost_basis / abs(self.quantity) if self.quantity else ZERO


def fee_in_quote(fill: Fill) -> Decimal:
    """A fee charged in the base currency is converted at the fill price."""
    base = fill.symbol.split("/")[0] if "/" in fill.symbol else None
    if base and fill.fee_currency == base:
        return fill.fee * fill.price
    return fill.fee


def apply_fill(pos: Position, fill: Fill) -> Position:
    signed = fill.quantity if fill.side is Side.BUY else -fill.quantity
    fee = fee_in_quote(fill)
    pos = replace(
        pos,
        realized_pnl=pos.realized_pnl - fee,
        fees_paid=pos.fees_paid + fee,
        fill_count=pos.fill_count + 1,
    )
    if pos.quantity == 0 or (pos.quantity > 0) == (signed > 0):
        return replace(
            pos,
            quantity=pos.quantity + signed,
            cost_basis=pos.cost_basis + abs(signed) * fill.price,
        )
    return _reduce(pos, signed, fill.price)


def _reduce(pos: Position, signed: Decimal, price: Decimal) -> Position:
    open_qty = abs(pos.quantity)
    closing = min(abs(signed), open_qty)
    direction = 1 if pos.quantity > 0 else -1
    closed_cost = pos.cost_basis if closing == open_qty else pos.cost_basis * closing / open_qty
    realized = pos.realized_pnl + (closing * price - closed_cost) * direction
    new_qty = pos.quantity + signed
    if new_qty == 0:
        return replace(pos, quantity=ZERO, cost_basis=ZERO, realized_pnl=realized)
    if (new_qty > 0) == (pos.quantity > 0):  # partly reduced: the average is unchanged
        return replace(
            pos, quantity=new_qty, cost_basis=pos.cost_basis - closed_cost, realized_pnl=realized
        )
    return replace(
        pos,
        quantity=new_qty,
        cost_basis=abs(new_qty) * price,  # flipped
        realized_pnl=realized,
    )
