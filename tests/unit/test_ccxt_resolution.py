"""What the resolver publishes when an order's state becomes known: pure, at its boundary."""

from __future__ import annotations

from decimal import Decimal

import msgspec

from tradebus_common import events as ev
from tradebus_execution_gateway.resolver import progress_events
from tradebus_execution_gateway.venues.base import VenueFill, VenueOrder, VenueOrderStatus

APPROVAL = ev.OrderApproved(
    id="approved-1",
    correlation_id="sig-1",
    intent_id="intent-1",
    strategy="demo",
    venue="emu",
    symbol="BTC/USDT",
    side=ev.Side.BUY,
    quantity=Decimal("2"),
    order_type=ev.OrderType.LIMIT,
    limit_price=Decimal("99"),
    client_order_id="tbcid",
    reference_price=Decimal("100"),
    exit_reason=ev.ExitReason.TRAILING_STOP,
)


def fill(n: int) -> VenueFill:
    return VenueFill(
        trade_id=f"t{n}",
        quantity=Decimal("1"),
        price=Decimal("99"),
        fee=Decimal("0.001"),
        fee_currency="BTC",
        liquidity=ev.Liquidity.MAKER,
    )


OPEN = VenueOrder(
    client_order_id="tbcid",
    venue_order_id="42",
    symbol="BTC/USDT",
    side=ev.Side.BUY,
    quantity=Decimal("2"),
    status=VenueOrderStatus.OPEN,
)


def names(events) -> list[str]:
    return [type(e).__name__ for e in events]


def test_first_sight_of_a_partly_filled_then_canceled_order_tells_the_whole_story():
    after = msgspec.structs.replace(OPEN, status=VenueOrderStatus.CANCELED, fills=[fill(1)])
    events = progress_events("emu", APPROVAL, None, after)
    assert names(events) == ["OrderSubmitted", "OrderAccepted", "Fill", "OrderCanceled"]
    f = events[2]
    assert f.exit_reason is ev.ExitReason.TRAILING_STOP and f.arrival_price == Decimal("100")
    assert all(e.correlation_id == "sig-1" and e.causation_id == "approved-1" for e in events)


def test_only_fills_not_announced_before_are_published_whatever_their_order():
    before = msgspec.structs.replace(OPEN, fills=[fill(1)])
    after = msgspec.structs.replace(OPEN, status=VenueOrderStatus.FILLED, fills=[fill(2), fill(1)])
    events = progress_events("emu", APPROVAL, before, after)
    assert names(events) == ["Fill"] and events[0].trade_id == "t2"


def test_the_same_transition_gives_the_same_ids():
    after = msgspec.structs.replace(OPEN, status=VenueOrderStatus.FILLED, fills=[fill(1)])
    first = [e.id for e in progress_events("emu", APPROVAL, None, after)]
    assert first == [e.id for e in progress_events("emu", APPROVAL, None, after)]


def test_nothing_new_publishes_nothing():
    assert progress_events("emu", APPROVAL, OPEN, OPEN) == []
