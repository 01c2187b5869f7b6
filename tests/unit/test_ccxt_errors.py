"""ccxt errors sorted into final / transient / ambiguous-for-create (E3), Retry-After parsing,
and the breaker and backoff rules, at their boundaries."""

from __future__ import annotations

import random

import ccxt.async_support as ccxt
import pytest

from tradebus_common.events import RejectReason
from tradebus_execution_gateway.venues.errors import (
    ErrorClass,
    classify,
    reject_reason,
    retry_after_s,
)
from tradebus_execution_gateway.venues.resilience import BreakerState, CircuitBreaker, backoff_s

FINAL = [
    ccxt.InsufficientFunds,
    ccxt.InvalidOrder,
    ccxt.BadSymbol,
    ccxt.AuthenticationError,
    ccxt.PermissionDenied,
    ccxt.OrderNotFound,
    ccxt.BadRequest,
]
TRANSIENT = [
    ccxt.NetworkError,
    ccxt.RequestTimeout,
    ccxt.RateLimitExceeded,
    ccxt.DDoSProtection,
    ccxt.ExchangeNotAvailable,
    ccxt.OnMaintenance,
]


@pytest.mark.parametrize("error", FINAL)
def test_final_errors_are_final_for_every_call(error):
    assert classify(error("no"), create=False) is ErrorClass.FINAL
    assert classify(error("no"), create=True) is ErrorClass.FINAL


@pytest.mark.parametrize("error", TRANSIENT)
def test_transient_errors_are_retried_on_reads_and_ambiguous_on_create(error):
    assert classify(error("down"), create=False) is ErrorClass.TRANSIENT
    assert classify(error("down"), create=True) is ErrorClass.AMBIGUOUS


def test_a_duplicate_client_id_reject_on_create_means_the_order_may_be_live():
    dup = ccxt.InvalidOrder('binance {"code":-2010,"msg":"Duplicate order sent."}')
    assert classify(dup, create=True) is ErrorClass.AMBIGUOUS
    assert classify(ccxt.InvalidOrder("Filter failure: LOT_SIZE"), create=True) is ErrorClass.FINAL


def test_an_error_that_is_not_ccxt_is_ambiguous_on_create():
    assert classify(ConnectionResetError(), create=True) is ErrorClass.AMBIGUOUS
    assert classify(ConnectionResetError(), create=False) is ErrorClass.TRANSIENT


def test_reject_reasons_name_the_cause():
    assert reject_reason(ccxt.InsufficientFunds("x")) is RejectReason.INSUFFICIENT_FUNDS
    assert reject_reason(ccxt.InvalidOrder("x")) is RejectReason.INVALID_ORDER
    assert reject_reason(ccxt.PermissionDenied("x")) is RejectReason.VENUE_REJECTED


def test_retry_after_is_read_case_insensitively_and_dates_are_ignored():
    assert retry_after_s({"Retry-After": "3"}) == 3.0
    assert retry_after_s({"retry-after": "0.5"}) == 0.5
    assert retry_after_s({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}) is None
    assert retry_after_s(None) is None


def test_backoff_grows_is_capped_jittered_and_never_below_retry_after():
    rng = random.Random(1)
    delays = [backoff_s(n, 0.1, 1.0, rng) for n in range(1, 8)]
    assert 0.05 <= delays[0] <= 0.1
    assert all(d <= 1.0 for d in delays)
    assert max(delays[4:]) >= 0.5  # capped near the top, not stuck at the base
    assert backoff_s(1, 0.1, 1.0, rng, retry_after_s=7) == 7  # Retry-After wins over the cap


def test_breaker_opens_after_n_failures_probes_once_then_closes():
    b = CircuitBreaker(failures_to_open=3, open_s=10)
    assert b.failure(0, "x") is None and b.failure(1, "x") is None
    opened = b.failure(2, "timeout")
    assert opened is not None and opened.state is BreakerState.OPEN and opened.failures == 3
    assert b.allow(5) == (False, None)  # still open
    allowed, probing = b.allow(12.5)
    assert allowed and probing is not None and probing.state is BreakerState.HALF_OPEN
    assert b.allow(12.6) == (False, None)  # one probe at a time
    closed = b.success()
    assert closed is not None and closed.state is BreakerState.CLOSED and b.failures == 0
    assert b.allow(13) == (True, None)


def test_a_failed_probe_opens_the_breaker_again():
    b = CircuitBreaker(failures_to_open=1, open_s=10)
    b.failure(0, "x")
    b.allow(11)
    reopened = b.failure(11, "still down")
    assert reopened is not None and reopened.previous is BreakerState.HALF_OPEN
    assert reopened.state is BreakerState.OPEN
    assert b.allow(15) == (False, None)


def test_a_success_resets_the_consecutive_count():
    b = CircuitBreaker(failures_to_open=2, open_s=10)
    b.failure(0, "x")
    assert b.success() is None
    assert b.failure(1, "x") is None and b.state is BreakerState.CLOSED
