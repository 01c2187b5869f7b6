"""Order TTL and unfilled timeout from config (E4), as pure functions, and the algo parent's
progress event derived from its children (E7)."""

from __future__ import annotations

from decimal import Decimal

from tradebus_common import events as ev
from tradebus_common.config import ExecutionConfig, ExecutionTimeouts
from tradebus_execution_gateway.algos.plan import ChildView
from tradebus_execution_gateway.algos.reports import progress_event
from tradebus_execution_gateway.algos.state import AlgoChild, AlgoState
from tradebus_execution_gateway.quality import TimedFill
from tradebus_execution_gateway.tracking import TrackedOrder, due_timeout, timeouts

CONFIG = ExecutionConfig(
    order_ttl_s=60,
    strategies={
        "scalper": ExecutionTimeouts(unfilled_timeout_s=5),
        "holder": ExecutionTimeouts(order_ttl_s=0),
    },
)


def test_timeouts_come_from_the_strategy_else_the_defaults_and_zero_is_off():
    assert timeouts(CONFIG, "demo", 100.0) == (160.0, 0.0)
    assert timeouts(CONFIG, "scalper", 100.0) == (160.0, 105.0)
    assert timeouts(CONFIG, "holder", 100.0) == (0.0, 0.0)
    assert timeouts(ExecutionConfig(), "demo", 100.0) == (0.0, 0.0)


def tracked(ttl_at: float = 0.0, unfilled_at: float = 0.0, filled: bool = False) -> TrackedOrder:
    fills = [TimedFill(trade_id="t", quantity=Decimal(1), price=Decimal(1), ts=1.0)]
    return TrackedOrder(
        client_order_id="c",
        venue="paper",
        symbol="BTC/USDT",
        side=ev.Side.BUY,
        quantity=Decimal(2),
        started_at=0.0,
        ttl_at=ttl_at,
        unfilled_at=unfilled_at,
        fills=fills if filled else [],
    )


def test_an_order_times_out_on_ttl_or_on_nothing_filled():
    assert due_timeout(tracked(ttl_at=10), 9.9) is None
    assert due_timeout(tracked(ttl_at=10), 10) is ev.CancelReason.TTL_EXPIRED
    assert due_timeout(tracked(unfilled_at=5), 5) is ev.CancelReason.UNFILLED_TIMEOUT
    assert due_timeout(tracked(unfilled_at=5, filled=True), 50) is None  # it did fill
    assert due_timeout(tracked(ttl_at=10, unfilled_at=5, filled=True), 10) is (
        ev.CancelReason.TTL_EXPIRED
    )


def test_parent_progress_is_derived_from_its_children():
    parent = ev.OrderApproved(
        intent_id="i",
        strategy="demo",
        venue="paper",
        symbol="BTC/USDT",
        side=ev.Side.SELL,
        quantity=Decimal(3),
        order_type=ev.OrderType.LIMIT,
        limit_price=Decimal(101),
        client_order_id="tbparent",
        algo=ev.AlgoParams(kind=ev.AlgoKind.ICEBERG, display_quantity=Decimal(1)),
    )
    children = [
        AlgoChild(slice=1, client_order_id="c1", quantity=Decimal(1),
                  order_type=ev.OrderType.LIMIT, final=True, filled=Decimal(1), status="filled"),
        AlgoChild(slice=2, client_order_id="c2", quantity=Decimal(1),
                  order_type=ev.OrderType.LIMIT),
    ]  # fmt: skip
    state = AlgoState(parent=parent, started_at=0.0, children=children)
    views = {"c2": ChildView(Decimal("0.25"), "partially_filled")}
    progress = progress_event(state, views)
    assert progress.client_order_id == "tbparent" and progress.children == 2
    assert progress.filled_quantity == Decimal("1.25")
    assert progress.working_quantity == Decimal("0.75")
    assert progress.id == progress_event(state, views).id  # same state, same id
    assert progress.id != progress_event(state, {"c2": ChildView(Decimal(1), "filled")}).id
