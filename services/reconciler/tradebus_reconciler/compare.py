"""Pure comparisons of our side (journal, ledger) with the venue's: open orders, trades,
positions (per symbol, net over strategies) and balances (per currency)."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from tradebus_common.events import (
    PositionView,
    ReconDiscrepancy,
    ReconDiscrepancyKind,
    ReconMismatch,
    Side,
    VenueOrderView,
    VenueTradeView,
)


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


# --- open orders, fills, balances (C2, C4): pure, tested at their boundaries -------------


def split_orders(
    ours_open: list[str], known: set[str], venue_open: list[VenueOrderView]
) -> tuple[list[str], list[VenueOrderView]]:
    """Ours-but-not-open-at-the-venue (client order ids), and the venue's orders we never
    journaled (external). `known` is every journaled id, whatever its status."""
    at_venue = {o.client_order_id for o in venue_open}
    missing = sorted(cid for cid in ours_open if cid not in at_venue)
    external = sorted(
        (o for o in venue_open if o.client_order_id not in known),
        key=lambda o: o.client_order_id,
    )
    return missing, external


class OrderOutcome(StrEnum):
    WORKING = "working"  # still open: our open-orders snapshot was just older
    FILLED = "filled"
    CANCELED = "canceled"
    REJECTED = "rejected"
    IN_FLIGHT = "in_flight"  # unknown to the venue, but journaled moments ago
    NEVER_REACHED = "never_reached"  # unknown to the venue well past the grace period


def order_outcome(
    found: VenueOrderView | None, written_at: datetime | None, now: datetime, grace_s: float
) -> OrderOutcome:
    """What happened to an order of ours that is not open at the venue (fetched by client id)."""
    if found is None:
        if written_at is not None and (now - written_at).total_seconds() < grace_s:
            return OrderOutcome.IN_FLIGHT
        return OrderOutcome.NEVER_REACHED
    if found.status in ("open", "partially_filled"):
        return OrderOutcome.WORKING
    if found.status == "filled":
        return OrderOutcome.FILLED
    if found.status == "rejected":
        return OrderOutcome.REJECTED
    return OrderOutcome.CANCELED  # canceled, expired: off the book without (more) fills


def missing_trades(trades: list[VenueTradeView], booked: set[str]) -> list[VenueTradeView]:
    """Venue trades the ledger has not booked, in trade id order, each once."""
    seen: dict[str, VenueTradeView] = {}
    for t in trades:
        if t.trade_id not in booked:
            seen.setdefault(t.trade_id, t)
    return [seen[k] for k in sorted(seen)]


def signed_qty(side: Side | str, quantity: Decimal) -> Decimal:
    return quantity if str(side) == Side.BUY.value else -quantity


def with_trades(
    ledger: list[PositionView], venue: str, trades: list[VenueTradeView]
) -> list[PositionView]:
    """The ledger's positions as they will be once `trades` (generated or in flight) are booked."""
    extra = [
        PositionView(
            venue=venue,
            symbol=t.symbol,
            strategy=t.strategy,
            quantity=signed_qty(t.side, t.quantity) - base_fee(t),
        )
        for t in trades
    ]
    return [*ledger, *extra]


def base_fee(trade: VenueTradeView) -> Decimal:
    """A fee paid in the base currency leaves the venue holding less than was traded."""
    base, _ = split_symbol(trade.symbol)
    return trade.fee if trade.fee_currency and trade.fee_currency == base else Decimal(0)


def split_symbol(symbol: str) -> tuple[str, str]:
    base, _, quote = symbol.partition("/")
    return base, quote.split(":")[0]


def balance_flows(
    rows: list[tuple[str, str, Decimal, Decimal]], fees: dict[str, Decimal]
) -> dict[str, Decimal]:
    """What booked fills moved, per currency: (symbol, side, quantity, notional) rows. A buy
    adds base and spends quote; fees are paid in their own currency."""
    flows: dict[str, Decimal] = defaultdict(Decimal)
    for symbol, side, qty, notional in rows:
        base, quote = split_symbol(symbol)
        sign = 1 if side == Side.BUY.value else -1
        flows[base] += sign * qty
        flows[quote] -= sign * notional
    for currency, fee in fees.items():
        flows[currency] -= fee
    return dict(flows)


def trade_rows(
    trades: list[VenueTradeView],
) -> tuple[list[tuple[str, str, Decimal, Decimal]], dict[str, Decimal]]:
    rows = [(t.symbol, str(t.side), t.quantity, t.quantity * t.price) for t in trades]
    fees: dict[str, Decimal] = defaultdict(Decimal)
    for t in trades:
        if t.fee_currency:
            fees[t.fee_currency] += t.fee
    return rows, dict(fees)


def compare_balances(
    expected: dict[str, Decimal], venue: dict[str, Decimal], tolerance: Decimal
) -> tuple[int, list[ReconDiscrepancy]]:
    """Venue totals against baseline + booked flows, per currency (both sides' currencies)."""
    currencies = sorted(set(expected) | set(venue))
    drifts = [
        ReconDiscrepancy(
            kind=ReconDiscrepancyKind.BALANCE_DRIFT,
            key=c,
            ours=expected.get(c, Decimal(0)),
            theirs=venue.get(c, Decimal(0)),
            detail=f"venue - expected = {venue.get(c, Decimal(0)) - expected.get(c, Decimal(0))}",
        )
        for c in currencies
        if abs(venue.get(c, Decimal(0)) - expected.get(c, Decimal(0))) > tolerance
    ]
    return len(currencies), drifts


def baseline_from(venue: dict[str, Decimal], flows: dict[str, Decimal]) -> dict[str, Decimal]:
    """The first clean look (or an operator's accept) fixes what the account held apart from
    our fills: deposits, starting cash. Drift is measured from it."""
    return {c: venue.get(c, Decimal(0)) - flows.get(c, Decimal(0)) for c in set(venue) | set(flows)}


def position_drifts(mismatches: list[ReconMismatch]) -> list[ReconDiscrepancy]:
    return [
        ReconDiscrepancy(
            kind=ReconDiscrepancyKind.POSITION_DRIFT,
            key=m.symbol,
            ours=m.ledger_quantity,
            theirs=m.venue_quantity,
            detail=f"venue - ledger = {m.venue_quantity - m.ledger_quantity}",
        )
        for m in mismatches
    ]


def position_baseline(ours: list[PositionView], venue: list[PositionView]) -> dict[str, Decimal]:
    """Per symbol, what the venue holds beyond our books (a spot venue's coins from before
    tradebus): only non-zero entries."""
    mine, theirs = net_by_symbol(ours), net_by_symbol(venue)
    diff = {s: theirs.get(s, Decimal(0)) - mine.get(s, Decimal(0)) for s in set(mine) | set(theirs)}
    return {s: q for s, q in sorted(diff.items()) if q != 0}
