"""Signal validation by meaning (the schema is already enforced by the decoder)."""

from __future__ import annotations

from decimal import Decimal

from tradebus_common.config import Config
from tradebus_common.errors import ErrorCode, PermanentError
from tradebus_common.events import OrderType, Signal


def _reject(code: ErrorCode, message: str) -> PermanentError:
    return PermanentError(message, code)


def validate(signal: Signal, config: Config) -> None:
    """Raise PermanentError (with its reason code) if the signal cannot be traded."""
    strategy = config.strategies.get(signal.strategy)
    if strategy is None:
        raise _reject(ErrorCode.UNKNOWN_STRATEGY, f"unknown strategy {signal.strategy!r}")
    if not strategy.enabled:
        raise _reject(ErrorCode.STRATEGY_DISABLED, f"strategy {signal.strategy!r} is disabled")
    venue = config.venues.get(signal.venue)
    if venue is None:
        raise _reject(ErrorCode.UNKNOWN_VENUE, f"unknown venue {signal.venue!r}")
    if signal.symbol not in venue.symbols:
        raise _reject(
            ErrorCode.UNKNOWN_SYMBOL, f"symbol {signal.symbol!r} is not traded on {signal.venue!r}"
        )
    _check_quantity(signal.quantity)
    _check_order_type(signal)


def _check_quantity(quantity: Decimal) -> None:
    if not quantity.is_finite() or quantity <= 0:
        raise _reject(ErrorCode.INVALID_QUANTITY, f"quantity must be positive, got {quantity}")


def _check_order_type(signal: Signal) -> None:
    price = signal.limit_price
    if signal.order_type is OrderType.LIMIT:
        if price is None:
            raise _reject(ErrorCode.INCONSISTENT_ORDER, "a limit order needs limit_price")
        if not price.is_finite() or price <= 0:
            raise _reject(ErrorCode.INVALID_PRICE, f"limit_price must be positive, got {price}")
    elif price is not None:
        raise _reject(ErrorCode.INCONSISTENT_ORDER, "a market order must not carry limit_price")
