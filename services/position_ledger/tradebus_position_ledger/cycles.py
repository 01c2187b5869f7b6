"""Position cycles (flat -> open -> flat, or up to a flip): the closed trades that statistics
are computed from. Pure: the cycle state before a fill, the positions around it, the result.

A cycle also keeps the lowest and highest price seen while it is open (its fills, and the
market ticks the service folds in with `widen`), for its MAE/MFE when it closes:
long:  MAE = (entry - low) / entry x 100,  MFE = (high - entry) / entry x 100
short: MAE = (high - entry) / entry x 100, MFE = (entry - low) / entry x 100
where entry is the average entry price of what closes; both are >= 0."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from .projection import ZERO, Position

HUNDRED = Decimal(100)


@dataclass(frozen=True)
class Cycle:
    """The open cycle of a position (all defaults: the position is flat)."""

    opened_at: datetime | None = None
    realized_base: Decimal = ZERO  # the position's realized P&L just before the cycle opened
    fill_count: int = 0
    max_quantity: Decimal = ZERO
    low: Decimal | None = None  # the price range seen while open (None: flat, or pre-003)
    high: Decimal | None = None


def widen(low: Decimal | None, high: Decimal | None, price: Decimal) -> tuple[Decimal, Decimal]:
    return (price if low is None else min(low, price), price if high is None else max(high, price))


@dataclass(frozen=True)
class ClosedCycle:
    direction: str  # long | short
    max_quantity: Decimal
    realized_pnl: Decimal  # net of every fee of the cycle, the closing fill's included
    fill_count: int
    opened_at: datetime
    closed_at: datetime
    entry_price: Decimal = ZERO
    low_price: Decimal = ZERO
    high_price: Decimal = ZERO
    exit_reason: str | None = None

    @property
    def mae_pct(self) -> Decimal:
        return excursions(self)[0]

    @property
    def mfe_pct(self) -> Decimal:
        return excursions(self)[1]


def excursions(c: ClosedCycle) -> tuple[Decimal, Decimal]:
    """(MAE %, MFE %) of a closed cycle, both >= 0, relative to its average entry price."""
    if c.entry_price <= 0:
        return ZERO, ZERO
    down = max(c.entry_price - c.low_price, ZERO) / c.entry_price * HUNDRED
    up = max(c.high_price - c.entry_price, ZERO) / c.entry_price * HUNDRED
    return (down, up) if c.direction == "long" else (up, down)


def advance(
    cycle: Cycle,
    before: Position,
    after: Position,
    ts: datetime,
    price: Decimal,
    exit_reason: str | None = None,
) -> tuple[Cycle, ClosedCycle | None]:
    """The cycle after a fill moved `before` to `after`, and the cycle it closed, if any.

    A flip closes the old cycle (which bears the whole fee of the flipping fill: it is the
    trade that ended it) and opens a new one at the flip."""
    if before.quantity == 0:
        return _opened(before.realized_pnl, after, ts, price), None
    low, high = widen(cycle.low, cycle.high, price)
    if after.quantity != 0 and (after.quantity > 0) == (before.quantity > 0):
        return (
            Cycle(
                opened_at=cycle.opened_at,
                realized_base=cycle.realized_base,
                fill_count=cycle.fill_count + 1,
                max_quantity=max(cycle.max_quantity, abs(after.quantity)),
                low=low,
                high=high,
            ),
            None,
        )
    closed = ClosedCycle(
        direction="long" if before.quantity > 0 else "short",
        max_quantity=max(cycle.max_quantity, abs(before.quantity)),
        realized_pnl=after.realized_pnl - cycle.realized_base,
        fill_count=cycle.fill_count + 1,
        opened_at=cycle.opened_at or ts,  # a position from before cycles were kept
        closed_at=ts,
        entry_price=before.avg_price,
        low_price=low,
        high_price=high,
        exit_reason=exit_reason,
    )
    if after.quantity == 0:
        return Cycle(), closed
    return _opened(after.realized_pnl, after, ts, price), closed


def _opened(base: Decimal, after: Position, ts: datetime, price: Decimal) -> Cycle:
    return Cycle(
        opened_at=ts,
        realized_base=base,
        fill_count=1,
        max_quantity=abs(after.quantity),
        low=price,
        high=price,
    )
