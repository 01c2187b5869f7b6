"""What each published event does to the metrics, read back the way Prometheus reads them
(the registry behind /metrics). Values are cumulative per process: tests compare deltas."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tradebus_common import events as ev
from tradebus_common import metrics
from tradebus_common.errors import ErrorCode


@pytest.fixture(scope="module", autouse=True)
def provider() -> None:
    metrics.setup("tests")


def value(name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def fill(**kw) -> ev.Fill:
    base = dict(
        venue="unit",
        symbol="BTC/USDT",
        strategy="demo",
        client_order_id="c1",
        trade_id="t1",
        side=ev.Side.BUY,
        quantity=Decimal("1"),
        price=Decimal("100"),
    )
    return ev.Fill(**{**base, **kw})


def test_fills_denials_and_dead_letters_are_counted_by_their_labels():
    before = (
        value("tradebus_fills_total", venue="unit", symbol="BTC/USDT", side="buy"),
        value("tradebus_denials_total", reason="MAX_NOTIONAL", strategy="unit"),
        value("tradebus_dead_letters_total", service="unit", reason="SCHEMA_VIOLATION"),
    )
    metrics.observe_published(
        [
            fill(),
            fill(trade_id="t2"),
            ev.OrderDenied(
                strategy="unit",
                venue="unit",
                symbol="BTC/USDT",
                intent_id="i1",
                reason=ev.DenyReason.MAX_NOTIONAL,
            ),
            ev.MessageDeadLettered(
                service="unit",
                reason=ErrorCode.SCHEMA_VIOLATION,
                error="bad",
                subject="trading.signal.x",
                stream_seq=1,
                deliveries=1,
                payload="{",
            ),
            ev.AlertAcknowledged(alert_id="a", operator="o"),  # counted by nothing
        ]
    )
    after = (
        value("tradebus_fills_total", venue="unit", symbol="BTC/USDT", side="buy"),
        value("tradebus_denials_total", reason="MAX_NOTIONAL", strategy="unit"),
        value("tradebus_dead_letters_total", service="unit", reason="SCHEMA_VIOLATION"),
    )
    assert [a - b for a, b in zip(after, before, strict=True)] == [2, 1, 1]


def test_submit_latency_counts_only_order_submissions_in_seconds():
    labels = {"venue": "unit-lat", "ok": "true"}
    count0 = value("tradebus_order_submit_latency_seconds_count", **labels)
    metrics.observe_published(
        [
            ev.VenueLatencyObserved(venue="unit-lat", operation="create_order", latency_ms=7),
            ev.VenueLatencyObserved(venue="unit-lat", operation="cancel_order", latency_ms=900),
        ]
    )
    assert value("tradebus_order_submit_latency_seconds_count", **labels) == count0 + 1
    assert value("tradebus_order_submit_latency_seconds_sum", **labels) == pytest.approx(0.007)
    le_10ms = value("tradebus_order_submit_latency_seconds_bucket", **labels, le="0.01")
    assert le_10ms == count0 + 1


def test_a_ledger_snapshot_sets_equity_pnl_and_open_positions():
    snap = ev.LedgerSnapshot(
        account="unit",
        equity=Decimal("10500.5"),
        realized_pnl=Decimal("300"),
        unrealized_pnl=Decimal("-12.25"),
        daily_pnl=Decimal("42"),
        drawdown=Decimal("7"),
        positions=[
            ev.PositionView(venue="p", symbol="BTC/USDT", quantity=Decimal("0.5")),
            ev.PositionView(venue="p", symbol="ETH/USDT", quantity=Decimal("0")),
        ],
    )
    metrics.observe_published([snap])
    assert value("tradebus_equity", account="unit") == 10500.5
    assert value("tradebus_pnl", account="unit", kind="unrealized") == -12.25
    assert value("tradebus_pnl", account="unit", kind="realized") == 300
    assert value("tradebus_pnl", account="unit", kind="daily") == 42
    assert value("tradebus_drawdown", account="unit") == 7
    assert value("tradebus_open_positions", account="unit") == 1  # the flat one is not open


def test_trading_state_and_breaker_state_are_numbered():
    metrics.observe_published(
        [ev.TradingStateChanged(state=ev.TradingState.HALTED, scope="venue:unit")]
    )
    assert value("tradebus_trading_state", scope="venue:unit") == 2
    for state, number in (("open", 2), ("half_open", 1), ("closed", 0)):
        metrics.venue_breaker_state("unit", state)
        assert value("tradebus_venue_breaker_state", venue="unit") == number


def test_a_published_breaker_transition_sets_the_breaker_gauge():
    moved = ev.VenueBreakerChanged(
        venue="unit-ccxt",
        state=ev.VenueBreakerState.HALF_OPEN,
        previous=ev.VenueBreakerState.OPEN,
    )
    metrics.observe_published([moved])
    assert value("tradebus_venue_breaker_state", venue="unit-ccxt") == 1


def test_an_observer_that_fails_never_fails_the_publish(caplog):
    broken = ev.LedgerSnapshot(account="unit-broken")
    broken.equity = "not a number"  # type: ignore[assignment]
    metrics.observe_published([broken])  # logged, not raised
    assert "metric observer failed" in caplog.text
