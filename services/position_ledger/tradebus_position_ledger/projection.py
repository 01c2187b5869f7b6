"""Netting-position accounting in exact Decimal: realized P&L net of fees, and a flip through
zero split into a close and an open.

The position keeps its cost basis (the sum of quantity x price of what is open), not a
running average: adding to a position is then exact however many fills arrive, and the
average price is derived (cost / quantity) only when someone asks for it.
"""

from __future__ import annotations

from dataclasses import dataclass
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
    # Positions are built directly, not with dataclasses.replace: this runs once per fill on
    # the ingest and replay paths, and replace() costs several times more.
    signed = fill.quantity if fill.side is Side.BUY else -fill.quantity
    fee = fee_in_quote(fill)
    realized, fees, count = pos.realized_pnl - fee, pos.fees_paid + fee, pos.fill_count + 1
    if pos.quantity == 0 or (pos.quantity > 0) == (signed > 0):
        cost = pos.cost_basis + abs(signed) * fill.price
        return Position(pos.quantity + signed, cost, realized, fees, count)
    return _reduce(
        Position(pos.quantity, pos.cost_basis, realized, fees, count), signed, fill.price
    )


def _reduce(pos: Position, signed: Decimal, price: Decimal) -> Position:
    open_qty = abs(pos.quantity)
    closing = min(abs(signed), open_qty)
    direction = 1 if pos.quantity > 0 else -1
    closed_cost = pos.cost_basis if closing == open_qty else pos.cost_basis * closing / open_qty
    realized = pos.realized_pnl + (closing * price - closed_cost) * direction
    new_qty = pos.quantity + signed
    if new_qty == 0:
        cost = ZERO
    elif (new_qty > 0) == (pos.quantity > 0):  # partly reduced: the average is unchanged
        cost = pos.cost_basis - closed_cost
    else:
        cost = abs(new_qty) * price  # flipped
    return Position(
        ZERO if new_qty == 0 else new_qty, cost, realized, pos.fees_paid, pos.fill_count
    )
