"""Round an order to the market's precision and check it against the market's limits, before
anything is sent. ccxt checks neither min notional nor (for market orders) the price; a
refusal here is a typed reject, never a request.

`amount_to_precision` truncates (never buys more than approved) and `price_to_precision`
rounds to the tick; both come from the exchange object, so every ccxt precision mode works.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from tradebus_common.events import RejectReason

from .errors import VenueRejected

ToPrecision = Callable[[str, Any], str]


@dataclass(frozen=True)
class Sized:
    amount: Decimal
    price: Decimal | None  # the rounded limit price; None for a market order


def dec(value: Any) -> Decimal | None:
    """ccxt's unified numbers are floats: the shortest repr gives back the venue's decimal."""
    return None if value is None else Decimal(str(value))


def _limit(market: dict[str, Any], kind: str, bound: str) -> Decimal | None:
    found = dec(((market.get("limits") or {}).get(kind) or {}).get(bound))
    return found if found else None  # 0 / None: no limit


def size_order(
    market: dict[str, Any],
    amount: Decimal,
    limit_price: Decimal | None,
    reference_price: Decimal | None,
    amount_to_precision: ToPrecision,
    price_to_precision: ToPrecision,
) -> Sized:
    """The amount and price to send, or VenueRejected(INVALID_ORDER) saying which rule."""
    symbol = market["symbol"]
    try:
        sized = Decimal(amount_to_precision(symbol, str(amount)))
        price = Decimal(price_to_precision(symbol, str(limit_price))) if limit_price else None
    except Exception as e:  # ccxt raises when the amount truncates to nothing
        raise VenueRejected(f"{symbol}: {e}", RejectReason.INVALID_ORDER) from e
    _check(market, "amount", sized, f"amount {sized}")
    if price is not None:
        _check(market, "price", price, f"price {price}")
    notional_price = price or reference_price
    if notional_price is not None:
        _check(market, "cost", sized * notional_price, f"notional {sized * notional_price}")
    elif _limit(market, "cost", "min"):
        raise VenueRejected(
            f"{symbol}: no price to check the min notional of a market order",
            RejectReason.NO_MARKET_DATA,
        )
    return Sized(sized, price)


def _check(market: dict[str, Any], kind: str, value: Decimal, what: str) -> None:
    low, high = _limit(market, kind, "min"), _limit(market, kind, "max")
    if value <= 0 or (low is not None and value < low):
        raise VenueRejected(
            f"{market['symbol']}: {what} below the minimum {low}", RejectReason.INVALID_ORDER
        )
    if high is not None and value > high:
        raise VenueRejected(
            f"{market['symbol']}: {what} above the maximum {high}", RejectReason.INVALID_ORDER
        )
