"""Pure comparison of ledger positions with venue positions, per symbol (net over strategies)."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from tradebus_common.events import PositionView, ReconMismatch


def net_by_symbol(positions: list[PositionView]) -> dict[str, Decimal]:
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for p in positions:
        totals[p.symbol] += p.quantity
    return dict(totals)


def compare_positions(
    venue: str,
    ledger: list[PositionView],
    remote: list[PositionView],
    tolerance: Decimal = Decimal(0),
) -> tuple[int, list[ReconMismatch]]:
    ours, theirs = net_by_symbol(ledger), net_by_symbol(remote)
    symbols = sorted(set(ours) | set(theirs))
    mismatches = [
        ReconMismatch(
            venue=venue,
            symbol=s,
            ledger_quantity=ours.get(s, Decimal(0)),
            venue_quantity=theirs.get(s, Decimal(0)),
        )
        for s in symbols
        if abs(ours.get(s, Decimal(0)) - theirs.get(s, Decimal(0))) > tolerance
    ]
    return len(symbols), mismatches
