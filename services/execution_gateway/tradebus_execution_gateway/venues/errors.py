"""Venue errors: ccxt's exceptions translated at the boundary into three families.

* final: retrying the same request cannot help (InsufficientFunds, InvalidOrder, BadSymbol,
  AuthenticationError, PermissionDenied, and the rest of ExchangeError);
* transient: the venue or the network is unwell (NetworkError and its children:
  RequestTimeout, RateLimitExceeded, DDoSProtection, ExchangeNotAvailable, OnMaintenance);
* ambiguous: only for create: anything that may have reached the venue. A transient error on
  create is ambiguous, and so is a "duplicate client order id" reject: an order with our id
  is live there. The order is then UNKNOWN until a lookup by client order id resolves it.
"""

from __future__ import annotations

from enum import StrEnum

import ccxt.async_support as ccxt

from tradebus_common.events import RejectReason


class ErrorClass(StrEnum):
    FINAL = "final"
    TRANSIENT = "transient"
    AMBIGUOUS = "ambiguous"


class VenueError(Exception):
    """Base of the errors a venue raises; `retry_after_s` comes from a Retry-After header."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class VenueUnavailable(VenueError):
    """Transient: nothing was changed at the venue (or it is a read); try again later."""


class VenueBreakerOpen(VenueUnavailable):
    """The venue's circuit breaker is open: the call was not even attempted."""


class VenueRejected(VenueError):
    """Final: the venue (or our own pre-check) refused; `reason` says why."""

    def __init__(self, message: str, reason: RejectReason) -> None:
        super().__init__(message)
        self.reason = reason


class OutcomeUnknown(VenueError):
    """A create whose outcome is unknown: the order may be live. Never resend it blind."""


_DUPLICATE_MARKERS = ("duplicate order", "duplicate clientorderid", "duplicated")

_REJECT_REASONS: list[tuple[type[Exception], RejectReason]] = [
    (ccxt.InsufficientFunds, RejectReason.INSUFFICIENT_FUNDS),
    (ccxt.InvalidOrder, RejectReason.INVALID_ORDER),
    (ccxt.BadSymbol, RejectReason.INVALID_ORDER),
]


def is_duplicate_reject(error: Exception) -> bool:
    return isinstance(error, ccxt.InvalidOrder) and any(
        m in str(error).lower() for m in _DUPLICATE_MARKERS
    )


def classify(error: Exception, create: bool = False) -> ErrorClass:
    """Which family a ccxt exception belongs to; `create` marks an order-creating call."""
    if create and is_duplicate_reject(error):
        return ErrorClass.AMBIGUOUS
    if isinstance(error, ccxt.NetworkError):
        return ErrorClass.AMBIGUOUS if create else ErrorClass.TRANSIENT
    if isinstance(error, ccxt.BaseError):
        return ErrorClass.FINAL
    # Not ccxt's (a bug, a cancelled socket...): for create we cannot know what was sent.
    return ErrorClass.AMBIGUOUS if create else ErrorClass.TRANSIENT


def reject_reason(error: Exception) -> RejectReason:
    for type_, reason in _REJECT_REASONS:
        if isinstance(error, type_):
            return reason
    return RejectReason.VENUE_REJECTED


def retry_after_s(headers: dict[str, str] | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds form); None when absent or a date."""
    for key, value in (headers or {}).items():
        if key.lower() == "retry-after":
            try:
                return max(0.0, float(value))
            except ValueError:
                return None
    return None
