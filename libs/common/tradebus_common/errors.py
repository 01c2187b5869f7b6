"""One error hierarchy. Transient errors are retried (nak); permanent ones are dead-lettered."""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    """Why a message could not be processed. Used as the dead-letter and alert reason."""

    MALFORMED_JSON = "MALFORMED_JSON"
    SCHEMA_VIOLATION = "SCHEMA_VIOLATION"
    UNKNOWN_VENUE = "UNKNOWN_VENUE"
    UNKNOWN_SYMBOL = "UNKNOWN_SYMBOL"
    UNKNOWN_STRATEGY = "UNKNOWN_STRATEGY"
    STRATEGY_DISABLED = "STRATEGY_DISABLED"
    INVALID_QUANTITY = "INVALID_QUANTITY"
    INVALID_PRICE = "INVALID_PRICE"
    INCONSISTENT_ORDER = "INCONSISTENT_ORDER"
    INVALID_COMMAND = "INVALID_COMMAND"
    OPERATOR_REQUIRED = "OPERATOR_REQUIRED"
    MAX_DELIVERIES = "MAX_DELIVERIES"
    HANDLER_FAILED = "HANDLER_FAILED"
    CONFIG_INVALID = "CONFIG_INVALID"
    INCONSISTENT_BRACKET = "INCONSISTENT_BRACKET"  # e.g. a long's stop at or above entry
    INVALID_SIZING = "INVALID_SIZING"  # no way to size, or a sizing value out of range
    ZERO_STOP_DISTANCE = "ZERO_STOP_DISTANCE"  # risk sizing with the stop at the entry


class TradebusError(Exception):
    """Base of every error tradebus raises on purpose."""

    code: ErrorCode = ErrorCode.HANDLER_FAILED

    def __init__(self, message: str, code: ErrorCode | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class TransientError(TradebusError):
    """Retrying the same message later may succeed (a dependency is down or busy)."""


class PermanentError(TradebusError):
    """Retrying the same message can never succeed: dead-letter it and alert."""


class ConfigError(TradebusError):
    """The configuration is invalid; the process must exit non-zero."""

    code = ErrorCode.CONFIG_INVALID
