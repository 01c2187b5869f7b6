"""Venue results -> order lifecycle events and fills, with deterministic ids."""

from __future__ import annotations

from decimal import Decimal

from tradebus_common.events import (
    Alert,
    AlertCode,
    Fill,
    Liquidity,
    OrderAccepted,
    OrderApproved,
    OrderRejected,
    OrderSubmitted,
    OrderType,
    RejectReason,
    Severity,
    Side,
)
from tradebus_execution_gateway.events_out import fill_id, order_events
from tradebus_execution_gateway.venues.base import VenueFill, VenueOrder, VenueOrderStatus

D = Decimal
ORDER = OrderApproved(
    id="approved-1",
    intent_id="intent-1",
    strategy="demo",
    venue="paper",
    symbol="BTC/USDT",
    side=Side.SELL,
    quantity=D("0.30"),
    order_type=OrderType.LIMIT,
    limit_price=D("49990.5"),
    client_order_id="tbclient1",
)
FILLED = VenueOrder(
    client_order_id="tbclient1",
    venue_order_id="v-9",
    symbol="BTC/USDT",
    side=Side.SELL,
    quantity=D("0.30"),
    status=VenueOrderStatus.FILLED,
    arrival_price=D("50000.00"),
    fills=[
        VenueFill(
            trade_id="tr-1",
            quantity=D("0.10"),
            price=D("50001.10"),
            fee=D("0.05"),
            fee_currency="USDT",
            liquidity=Liquidity.MAKER,
        ),
        VenueFill(
            trade_id="tr-2",
            quantity=D("0.20"),
            price=D("50002.20"),
            fee=D("0.0002"),
            fee_currency="BTC",
            liquidity=Liquidity.TAKER,
        ),
    ],
)
REJECTED = VenueOrder(
    client_order_id="tbclient1",
    venue_order_id="",
    symbol="BTC/USDT",
    side=Side.SELL,
    quantity=D("0.30"),
    status=VenueOrderStatus.REJECTED,
    reject_reason=RejectReason.INSUFFICIENT_FUNDS,
    reject_detail="insufficient funds",
)


def test_filled_order_gives_submitted_accepted_and_one_fill_per_execution() -> None:
    events = order_events(ORDER, FILLED)
    assert [type(e) for e in events] == [OrderSubmitted, OrderAccepted, Fill, Fill]


def test_submitted_event_copies_the_order() -> None:
    submitted = order_events(ORDER, FILLED)[0]
    assert isinstance(submitted, OrderSubmitted)
    assert submitted.side is Side.SELL
    assert submitted.quantity == D("0.30")
    assert submitted.order_type is OrderType.LIMIT
    assert submitted.limit_price == D("49990.5")
    assert (
        submitted.client_order_id,
        submitted.venue,
        submitted.symbol,
        submitted.strategy,
        submitted.venue_order_id,
    ) == ("tbclient1", "paper", "BTC/USDT", "demo", "v-9")


def test_fills_copy_fee_price_quantity_and_arrival_price() -> None:
    fills = [e for e in order_events(ORDER, FILLED) if isinstance(e, Fill)]
    assert [
        (f.trade_id, f.quantity, f.price, f.fee, f.fee_currency, f.liquidity) for f in fills
    ] == [
        ("tr-1", D("0.10"), D("50001.10"), D("0.05"), "USDT", Liquidity.MAKER),
        ("tr-2", D("0.20"), D("50002.20"), D("0.0002"), "BTC", Liquidity.TAKER),
    ]
    for f in fills:
        assert f.arrival_price == D("50000.00")
        assert f.side is Side.SELL
        assert (f.venue, f.symbol, f.strategy) == ("paper", "BTC/USDT", "demo")
        assert (f.client_order_id, f.venue_order_id) == ("tbclient1", "v-9")
        assert f.reconciliation is False


def test_fill_ids_derive_from_venue_and_trade_id() -> None:
    fills = [e for e in order_events(ORDER, FILLED) if isinstance(e, Fill)]
    assert [f.id for f in fills] == [fill_id("paper", "tr-1"), fill_id("paper", "tr-2")]
    assert fill_id("paper", "tr-1") != fill_id("other", "tr-1")


def test_filled_event_ids_are_deterministic_and_distinct() -> None:
    first = [e.id for e in order_events(ORDER, FILLED)]
    again = [e.id for e in order_events(ORDER, FILLED)]
    assert first == again
    assert len(set(first)) == len(first)
    assert ORDER.id not in first


def test_a_different_approval_gives_different_lifecycle_ids() -> None:
    other = OrderApproved(
        **{**{f: getattr(ORDER, f) for f in ORDER.__struct_fields__}, "id": "approved-2"}
    )
    ids = [e.id for e in order_events(ORDER, FILLED)[:2]]
    other_ids = [e.id for e in order_events(other, FILLED)[:2]]
    assert not set(ids) & set(other_ids)


def test_rejected_order_gives_submitted_rejected_and_a_warning_alert() -> None:
    events = order_events(ORDER, REJECTED)
    assert [type(e) for e in events] == [OrderSubmitted, OrderRejected, Alert]
    rejected, alert = events[1], events[2]
    assert isinstance(rejected, OrderRejected) and isinstance(alert, Alert)
    assert rejected.reason is RejectReason.INSUFFICIENT_FUNDS
    assert rejected.detail == "insufficient funds"
    assert rejected.client_order_id == "tbclient1"
    assert alert.severity is Severity.WARNING
    assert alert.code is AlertCode.VENUE_REJECTED
    assert alert.source == "execution-gateway"
    assert "insufficient funds" in alert.message
    assert "tbclient1" in alert.message


def test_rejected_order_has_no_fill_even_if_the_venue_lists_one() -> None:
    odd = VenueOrder(
        **{**{f: getattr(REJECTED, f) for f in REJECTED.__struct_fields__}, "fills": FILLED.fills}
    )
    assert not any(isinstance(e, Fill) for e in order_events(ORDER, odd))


def test_rejected_event_ids_are_deterministic_and_distinct() -> None:
    first = [e.id for e in order_events(ORDER, REJECTED)]
    assert first == [e.id for e in order_events(ORDER, REJECTED)]
    assert len(set(first)) == 3


def test_filled_order_without_executions_is_submitted_and_accepted_only() -> None:
    empty = VenueOrder(**{**{f: getattr(FILLED, f) for f in FILLED.__struct_fields__}, "fills": []})
    assert [type(e) for e in order_events(ORDER, empty)] == [OrderSubmitted, OrderAccepted]
