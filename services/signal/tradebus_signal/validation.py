"""Signal validation by meaning (the schema is already enforced by the decoder).

A failure raises PermanentError with its ErrorCode: the bus dead-letters the signal and
alerts. Refusals of *valid* signals (expired, paused, too small) are events instead.
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta
from decimal import Decimal

from tradebus_common.config import Config, StrategyConfig
from tradebus_common.errors import ErrorCode, PermanentError
from tradebus_common.events import Bracket, OrderType, Side, Signal, SizingMode

from .sizing import sizing_of

NEEDS_VALUE = (SizingMode.FIXED_QUANTITY, SizingMode.FIXED_NOTIONAL, SizingMode.EQUITY_PCT)
PERCENT_MODES = (SizingMode.EQUITY_PCT, SizingMode.RISK_PER_TRADE)
# Past ~10 years a duration means "never"; 1e308 s would overflow timedelta in every check
# after it (the exit watcher on each tick), so it is refused here.
MAX_DURATION_S = 10 * 365 * 86400.0
MAX_ID_LENGTH = 200


def _reject(code: ErrorCode, message: str) -> PermanentError:
    return PermanentError(message, code)


def validate(signal: Signal, config: Config, strategy: StrategyConfig | None = None) -> None:
    """Raise PermanentError (with its reason code) if the signal cannot be traded.
    `strategy`: the effective strategy config (a run's overrides applied), if not the file's."""
    if not 0 < len(signal.id) <= MAX_ID_LENGTH or not signal.id.isprintable():
        # The id travels as every derived event's correlation_id, down to the ledger's rows:
        # a NUL there (PostgreSQL refuses it in text) left a venue fill unbookable.
        raise _reject(ErrorCode.SCHEMA_VIOLATION, "signal id must be 1-200 printable characters")
    configured = config.strategies.get(signal.strategy)
    if configured is None:
        raise _reject(ErrorCode.UNKNOWN_STRATEGY, f"unknown strategy {signal.strategy!r}")
    if not configured.enabled:
        raise _reject(ErrorCode.STRATEGY_DISABLED, f"strategy {signal.strategy!r} is disabled")
    venue = config.venues.get(signal.venue)
    if venue is None:
        raise _reject(ErrorCode.UNKNOWN_VENUE, f"unknown venue {signal.venue!r}")
    if signal.symbol not in venue.symbols:
        raise _reject(
            ErrorCode.UNKNOWN_SYMBOL, f"symbol {signal.symbol!r} is not traded on {signal.venue!r}"
        )
    if signal.quantity is not None:
        _check_positive(signal.quantity, "quantity", ErrorCode.INVALID_QUANTITY)
    _check_order_type(signal)
    _check_sizing(signal, strategy or configured)
    _check_bracket_values(signal.bracket)
    if signal.ttl_s is not None and not 0 < signal.ttl_s <= MAX_DURATION_S:
        raise _reject(ErrorCode.SCHEMA_VIOLATION, f"ttl_s must be positive, got {signal.ttl_s}")


def _check_positive(value: Decimal, name: str, code: ErrorCode) -> None:
    if not value.is_finite() or value <= 0:
        raise _reject(code, f"{name} must be positive, got {value}")


def _check_order_type(signal: Signal) -> None:
    price = signal.limit_price
    if signal.order_type is OrderType.LIMIT:
        if price is None:
            raise _reject(ErrorCode.INCONSISTENT_ORDER, "a limit order needs limit_price")
        if not price.is_finite() or price <= 0:
            raise _reject(ErrorCode.INVALID_PRICE, f"limit_price must be positive, got {price}")
    elif price is not None:
        raise _reject(ErrorCode.INCONSISTENT_ORDER, "a market order must not carry limit_price")


def _check_sizing(signal: Signal, strategy: StrategyConfig) -> None:
    if signal.target_position is not None:
        if not signal.target_position.is_finite():
            raise _reject(ErrorCode.INVALID_SIZING, "target_position must be finite")
        return
    hint = sizing_of(signal, strategy)
    if hint is None:
        raise _reject(ErrorCode.INVALID_SIZING, "give quantity, sizing or target_position")
    if hint.value is None:
        if hint.mode in NEEDS_VALUE:
            raise _reject(ErrorCode.INVALID_SIZING, f"sizing {hint.mode.value} needs a value")
    else:
        _check_positive(hint.value, "sizing value", ErrorCode.INVALID_SIZING)
        if hint.mode in PERCENT_MODES and hint.value > 100:
            raise _reject(ErrorCode.INVALID_SIZING, f"{hint.value}% is over 100%")
    has_stop = signal.bracket is not None and signal.bracket.stop_loss is not None
    if hint.mode is SizingMode.RISK_PER_TRADE and not (has_stop or strategy.stop_loss_pct):
        raise _reject(ErrorCode.INVALID_SIZING, "risk_per_trade needs a stop_loss")


def _check_bracket_values(bracket: Bracket | None) -> None:
    if bracket is None:
        return
    for name in ("stop_loss", "take_profit", "trailing_distance"):
        value = getattr(bracket, name)
        if value is not None:
            _check_positive(value, name, ErrorCode.INCONSISTENT_BRACKET)
    if bracket.max_holding_s is not None and not 0 < bracket.max_holding_s <= MAX_DURATION_S:
        raise _reject(ErrorCode.INCONSISTENT_BRACKET, "max_holding_s must be positive")


def check_bracket(bracket: Bracket | None, side: Side, entry: Decimal | None) -> None:
    """Prices on the right side: a long's stop below entry and its target above (a short's
    the other way). Without an entry price only stop vs take-profit can be compared."""
    if bracket is None:
        return
    stop, target = bracket.stop_loss, bracket.take_profit
    below, above = (stop, target) if side is Side.BUY else (target, stop)
    if entry is not None and stop is not None and stop == entry:
        raise _reject(ErrorCode.ZERO_STOP_DISTANCE, f"stop_loss {stop} is at the entry price")
    if below is not None and above is not None and not below < above:
        raise _reject(ErrorCode.INCONSISTENT_BRACKET, f"{side.value}: stop/target the wrong way")
    if entry is None:
        return
    if below is not None and not below < entry:
        raise _reject(ErrorCode.INCONSISTENT_BRACKET, f"{side.value}: {below} not below {entry}")
    if above is not None and not above > entry:
        raise _reject(ErrorCode.INCONSISTENT_BRACKET, f"{side.value}: {above} not above {entry}")


def expires_at(signal: Signal, default_ttl_s: float = 0.0) -> datetime | None:
    """When the signal stops being worth trading: the earlier of expires_at and ts + ttl."""
    ttl = signal.ttl_s if signal.ttl_s is not None else (default_ttl_s or None)
    ends = [t for t in (signal.expires_at,) if t is not None]
    if ttl:
        with contextlib.suppress(OverflowError):  # past the year 9999: never
            ends.append(signal.ts + timedelta(seconds=ttl))
    return min(ends) if ends else None


def is_expired(signal: Signal, now: datetime, default_ttl_s: float = 0.0) -> bool:
    end = expires_at(signal, default_ttl_s)
    return end is not None and now >= end
