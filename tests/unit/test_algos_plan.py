"""The algo rules as pure functions: TWAP slicing and timing, iceberg display, limit-then-
market's cancel-then-replace, and the stops (a rejected or foreign-canceled child)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tradebus_common import events as ev
from tradebus_execution_gateway.algos.plan import (
    ChildView,
    Market,
    decide,
    slices_due,
    through_mid,
    twap_slices,
)
from tradebus_execution_gateway.algos.state import AlgoChild, AlgoState

T0 = 1_000.0
MARKET = Market(mid=Decimal("100"))


def state(algo: ev.AlgoParams, qty: str = "1", limit: str | None = None) -> AlgoState:
    order = ev.OrderApproved(
        intent_id="i",
        strategy="demo",
        venue="paper",
        symbol="BTC/USDT",
        side=ev.Side.BUY,
        quantity=Decimal(qty),
        order_type=ev.OrderType.LIMIT if limit else ev.OrderType.MARKET,
        limit_price=Decimal(limit) if limit else None,
        client_order_id="tbparent",
        algo=algo,
    )
    return AlgoState(parent=order, started_at=T0)


def child(n: int, qty: str, order_type=ev.OrderType.MARKET, target: int = 0, **kw) -> AlgoChild:
    return AlgoChild(
        slice=n,
        client_order_id=f"c{n}",
        quantity=Decimal(qty),
        order_type=order_type,
        target_index=target,
        **kw,
    )


@pytest.mark.parametrize(
    ("total", "horizon", "interval", "step", "expected"),
    [
        ("1", 0.9, 0.3, "1e-8", ["0.33333333", "0.33333333", "0.33333334"]),
        ("10", 60, 20, "1", ["3", "3", "4"]),
        ("0.001", 60, 10, "0.001", ["0.001"]),  # too small to split: one slice
        ("5", 10, 0, "1", ["5"]),
    ],
)
def test_twap_slices_sum_exactly_to_the_parent(total, horizon, interval, step, expected):
    slices = twap_slices(Decimal(total), horizon, interval, Decimal(step))
    assert slices == [Decimal(x) for x in expected]
    assert sum(slices) == Decimal(total)


def test_slices_come_due_one_interval_apart_and_stop_at_the_last():
    assert [slices_due(T0, T0 + dt, 10, 3) for dt in (-1, 0, 9.9, 10, 25, 999)] == [
        1,
        1,
        1,
        2,
        3,
        3,
    ]


def test_a_limit_through_the_mid_never_goes_further_than_the_offset():
    assert through_mid(ev.Side.BUY, Decimal("100"), Decimal("5"), Decimal("0.01")) == Decimal(
        "100.05"
    )
    assert through_mid(ev.Side.SELL, Decimal("100.003"), Decimal("5"), Decimal("0.01")) == (
        Decimal("99.96")  # 99.952..., rounded up: not below the offset
    )


def test_twap_sends_the_first_slice_at_once_then_waits_for_the_next_interval():
    s = state(ev.AlgoParams(kind=ev.AlgoKind.TWAP, horizon_s=30, interval_s=10), "3")
    first = decide(s, {}, T0, MARKET)
    assert first.submit is not None and first.submit.quantity == Decimal("1")
    assert first.submit.order_type is ev.OrderType.MARKET and first.next_due == T0 + 10
    s.children = [child(1, "1", target=1)]
    views = {"c1": ChildView(Decimal("1"), "filled")}
    assert decide(s, views, T0 + 5, MARKET).submit is None
    late = decide(s, views, T0 + 25, MARKET)  # two slices due at once: caught up in one child
    assert late.submit is not None and late.submit.quantity == Decimal("2")


def test_twap_with_an_offset_sends_limits_and_replaces_an_unfilled_one_with_its_rest():
    algo = ev.AlgoParams(
        kind=ev.AlgoKind.TWAP, horizon_s=20, interval_s=10, limit_offset_bps=Decimal("10")
    )
    s = state(algo, "2")
    first = decide(s, {}, T0, MARKET)
    assert first.submit.order_type is ev.OrderType.LIMIT
    assert first.submit.limit_price == Decimal("100.1")
    s.children = [child(1, "1", ev.OrderType.LIMIT, target=1)]
    working = {"c1": ChildView(Decimal("0.25"), "partially_filled")}
    assert decide(s, working, T0 + 10, MARKET).cancel == ["c1"]
    s.children[0].cancel_requested = True
    done = {"c1": ChildView(Decimal("0.25"), "canceled")}
    nxt = decide(s, done, T0 + 10, MARKET)
    assert nxt.submit.quantity == Decimal("1.75")  # its own slice plus the unfilled 0.75


def test_iceberg_shows_at_most_its_display_quantity_and_one_child_at_a_time():
    algo = ev.AlgoParams(kind=ev.AlgoKind.ICEBERG, display_quantity=Decimal("0.4"))
    s = state(algo, "1", limit="99")
    first = decide(s, {}, T0, MARKET)
    assert first.submit.quantity == Decimal("0.4") and first.submit.limit_price == Decimal("99")
    s.children = [child(1, "0.4", ev.OrderType.LIMIT)]
    assert (
        decide(s, {"c1": ChildView(Decimal("0.1"), "partially_filled")}, T0, MARKET).submit is None
    )
    s.children = [child(1, "0.4", ev.OrderType.LIMIT), child(2, "0.4", ev.OrderType.LIMIT)]
    views = {"c1": ChildView(Decimal("0.4"), "filled"), "c2": ChildView(Decimal("0.4"), "filled")}
    last = decide(s, views, T0, MARKET)
    assert last.submit.quantity == Decimal("0.2")  # never past the parent


def test_limit_then_market_cancels_at_the_timeout_then_sends_the_rest_at_market():
    algo = ev.AlgoParams(kind=ev.AlgoKind.LIMIT_THEN_MARKET, timeout_s=5)
    s = state(algo, "2", limit="99")
    first = decide(s, {}, T0, MARKET)
    assert first.submit.order_type is ev.OrderType.LIMIT and first.next_due == T0 + 5
    s.children = [child(1, "2", ev.OrderType.LIMIT)]
    working = {"c1": ChildView(Decimal("0.5"), "partially_filled")}
    assert decide(s, working, T0 + 1, MARKET).cancel == []
    assert decide(s, working, T0 + 5, MARKET).cancel == ["c1"]
    s.children[0].cancel_requested = True
    rest = decide(s, {"c1": ChildView(Decimal("0.5"), "canceled")}, T0 + 5, MARKET)
    assert rest.submit.order_type is ev.OrderType.MARKET
    assert rest.submit.quantity == Decimal("1.5")


def test_a_child_canceled_by_someone_else_or_rejected_stops_the_parent():
    algo = ev.AlgoParams(kind=ev.AlgoKind.ICEBERG, display_quantity=Decimal("1"))
    s = state(algo, "3", limit="99")
    s.children = [child(1, "1", ev.OrderType.LIMIT), child(2, "1", ev.OrderType.LIMIT)]
    views = {"c1": ChildView(Decimal("0"), "canceled"), "c2": ChildView(Decimal("0"), "open")}
    stop = decide(s, views, T0, MARKET)
    assert stop.finish is ev.AlgoStatus.FAILED and stop.cancel == ["c2"]
    rejected = decide(s, {"c1": ChildView(Decimal(0), "rejected")}, T0, MARKET)
    assert rejected.finish is ev.AlgoStatus.FAILED


def test_a_planned_child_the_venue_has_not_reported_counts_as_working():
    algo = ev.AlgoParams(kind=ev.AlgoKind.ICEBERG, display_quantity=Decimal("1"))
    s = state(algo, "3", limit="99")
    s.children = [child(1, "1", ev.OrderType.LIMIT)]
    assert decide(s, {}, T0, MARKET).submit is None  # never a second child on a maybe


def test_the_parent_completes_when_its_children_filled_it():
    s = state(ev.AlgoParams(kind=ev.AlgoKind.TWAP, horizon_s=2, interval_s=1), "2")
    s.children = [child(1, "1"), child(2, "1")]
    views = {"c1": ChildView(Decimal("1"), "filled"), "c2": ChildView(Decimal("1"), "filled")}
    assert decide(s, views, T0 + 1, MARKET).finish is ev.AlgoStatus.COMPLETED


def test_twap_children_respect_the_parents_limit():
    plain = ev.AlgoParams(kind=ev.AlgoKind.TWAP, horizon_s=20, interval_s=10)
    first = decide(state(plain, "2", limit="99"), {}, T0, MARKET)
    assert first.submit.order_type is ev.OrderType.LIMIT
    assert first.submit.limit_price == Decimal("99")
    offset = ev.AlgoParams(
        kind=ev.AlgoKind.TWAP, horizon_s=20, interval_s=10, limit_offset_bps=Decimal("50")
    )
    capped = decide(state(offset, "2", limit="100.2"), {}, T0, MARKET)
    assert capped.submit.limit_price == Decimal("100.2")  # 100.5 through the mid, capped
