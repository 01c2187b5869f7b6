"""Execution quality (E9) as one pure function over an order's fills.

Conventions (docs/execution.md, "Execution quality"): costs are positive when they hurt the
order, for buys and sells alike. Slippage compares the average fill price with the arrival
price (the market when the order reached the gateway). Implementation shortfall compares
with the decision price (the approval's reference price, else arrival) and adds the fees and
the opportunity cost of what was not filled, valued at the last market price.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

import msgspec

from tradebus_common.events import Side

_BPS = Decimal(10000)
_PRICE_Q = Decimal("1e-8")
_BPS_Q = Decimal("0.01")
_RATE_Q = Decimal("1e-6")


class TimedFill(msgspec.Struct, kw_only=True, frozen=True):
    """One execution as the gateway saw it: `ts` is when it first saw it (epoch seconds)."""

    trade_id: str
    quantity: Decimal
    price: Decimal
    fee: Decimal = Decimal(0)
    ts: float


class Quality(msgspec.Struct, kw_only=True, frozen=True):
    """The figures an ExecutionQuality event carries (same field names)."""

    filled_quantity: Decimal
    avg_price: Decimal | None = None
    arrival_price: Decimal | None = None
    decision_price: Decimal | None = None
    slippage_bps: Decimal | None = None
    fill_rate: Decimal = Decimal(0)
    time_to_first_fill_ms: int | None = None
    time_to_last_fill_ms: int | None = None
    fees: Decimal = Decimal(0)
    implementation_shortfall: Decimal | None = None
    implementation_shortfall_bps: Decimal | None = None


def measure(
    side: Side,
    quantity: Decimal,
    fills: list[TimedFill],
    started_at: float,
    arrival: Decimal | None,
    decision: Decimal | None = None,
    last_price: Decimal | None = None,
) -> Quality:
    sign = 1 if side is Side.BUY else -1
    decision = decision if decision is not None else arrival
    filled = sum((f.quantity for f in fills), Decimal(0))
    fees = sum((f.fee for f in fills), Decimal(0))
    avg = sum((f.quantity * f.price for f in fills), Decimal(0)) / filled if filled else None
    figures = Quality(
        filled_quantity=filled,
        avg_price=avg.quantize(_PRICE_Q, ROUND_HALF_UP) if avg is not None else None,
        arrival_price=arrival,
        decision_price=decision,
        fill_rate=(filled / quantity).quantize(_RATE_Q, ROUND_HALF_UP) if quantity else Decimal(0),
        fees=fees,
        **_times(fills, started_at),
    )
    slippage = None
    if avg is not None and arrival:
        slippage = (sign * (avg - arrival) / arrival * _BPS).quantize(_BPS_Q, ROUND_HALF_UP)
    shortfall = _shortfall(sign, quantity, fills, fees, decision, last_price)
    shortfall_bps = None
    if shortfall is not None and decision and quantity:
        shortfall_bps = (shortfall / (decision * quantity) * _BPS).quantize(_BPS_Q, ROUND_HALF_UP)
    return msgspec.structs.replace(
        figures,
        slippage_bps=slippage,
        implementation_shortfall=shortfall.quantize(_PRICE_Q, ROUND_HALF_UP)
        if shortfall is not None
        else None,
        implementation_shortfall_bps=shortfall_bps,
    )


def _times(fills: list[TimedFill], started_at: float) -> dict[str, int | None]:
    if not fills:
        return {"time_to_first_fill_ms": None, "time_to_last_fill_ms": None}
    first = min(f.ts for f in fills)
    last = max(f.ts for f in fills)
    return {
        "time_to_first_fill_ms": max(0, round((first - started_at) * 1000)),
        "time_to_last_fill_ms": max(0, round((last - started_at) * 1000)),
    }


def _shortfall(
    sign: int,
    quantity: Decimal,
    fills: list[TimedFill],
    fees: Decimal,
    decision: Decimal | None,
    last_price: Decimal | None,
) -> Decimal | None:
    if decision is None:
        return None
    filled = sum((f.quantity for f in fills), Decimal(0))
    execution = sign * sum((f.quantity * (f.price - decision) for f in fills), Decimal(0))
    unfilled = quantity - filled
    # What was not done still moved away (or toward) us: valued at the last price seen.
    opportunity = sign * unfilled * (last_price - decision) if last_price and unfilled else 0
    return execution + fees + opportunity
