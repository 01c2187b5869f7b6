"""Position cycles (flat -> open -> flat, or up to a flip): the closed trades that statistics
are computed from. Pure: the cycle state before a fill, the positions around it, the result."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from .projection import ZERO, Position


@dataclass(frozen=True)
class Cycle:
    """The open cycle of a position (all defaults: the position is flat)."""

    opened_at: datetime | None = None
    realized_base: Decimal = ZERO  # the position's realized P&L just before the cycle opened
    fill_count: int = 0
    max_quantity: Decimal = ZERO


@dataclass(frozen=True)
class ClosedCycle:
    direction: str  # long | short
    max_quantity: Decimal
    realized_pnl: Decimal  # net of every fee of the cycle, the closing fill's included
    fill_count: int
    opened_at: datetime
    closed_at: datetime


def advance(
    cycle: Cycle, before: Position, after: Position, ts: datetime
) -> tuple[Cycle, ClosedCycle | None]:
    """The cycle after a fill moved `before` to `after`, and the cycle it closed, if any.

    A flip closes the old cycle (which bears the whole fee of the flipping fill: it is the
    trade that ended it) and opens a new one at the flip."""
    if before.quantity == 0:
        return _opened(before.realized_pnl, after, ts), None
    if after.quantity != 0 and (after.quantity > 0) == (before.quantity > 0):
        return (
            Cycle(
                opened_at=cycle.opened_at,
                realized_base=cycle.realized_base,
                fill_count=cycle.fill_count + 1,
                max_quantity=max(cycle.max_quantity, abs(after.quantity)),
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
    )
    if after.quantity == 0:
        return Cycle(), closed
    return _opened(after.realized_pnl, after, ts), closed


def _opened(base: Decimal, after: Position, ts: datetime) -> Cycle:
    return Cycle(opened_at=ts, realized_base=base, fill_count=1, max_quantity=abs(after.quantity))
