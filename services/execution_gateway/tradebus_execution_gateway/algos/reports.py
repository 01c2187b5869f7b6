"""What an algo parent is, as events and orders: its children's approvals and ids, its
progress (derived from the children) and its execution quality. Pure functions."""

from __future__ import annotations

from decimal import Decimal

import msgspec

from tradebus_common.events import (
    AlgoKind,
    AlgoProgress,
    ExecutionQuality,
    OrderApproved,
)
from tradebus_common.ids import client_order_id, derive_id

from ..quality import measure
from .plan import ChildView, Market, view_of
from .state import AlgoChild, AlgoState

MAX_TWAP_SLICES = 100_000  # a day at one slice a second fits


def child_order(parent: OrderApproved, child: AlgoChild) -> OrderApproved:
    """The approval a child is sent as: the parent's, with the child's size, price and id."""
    return OrderApproved(
        id=derive_id(parent.id, "child", child.slice),
        correlation_id=parent.correlation_id or parent.id,
        causation_id=parent.id,
        intent_id=parent.intent_id,
        strategy=parent.strategy,
        venue=parent.venue,
        symbol=parent.symbol,
        side=parent.side,
        quantity=child.quantity,
        order_type=child.order_type,
        limit_price=child.limit_price,
        client_order_id=child.client_order_id,
        reference_price=parent.reference_price,
        reduce_only=parent.reduce_only,
        exit_reason=parent.exit_reason,
    )


def child_id(parent: OrderApproved, slice_no: int) -> str:
    return client_order_id(parent.intent_id or parent.id, slice_no)


def invalid_params(order: OrderApproved) -> str:
    algo = order.algo
    assert algo is not None
    if algo.kind is AlgoKind.TWAP and not (algo.horizon_s and algo.interval_s):
        return "twap needs horizon_s and interval_s > 0"
    if algo.kind is AlgoKind.TWAP and algo.horizon_s / algo.interval_s > MAX_TWAP_SLICES:
        # twap_slices builds one entry per slice: 1e8 of them is ~1.5 GB in the gateway (Q1)
        return f"twap horizon_s / interval_s is over {MAX_TWAP_SLICES} slices"
    if algo.kind is AlgoKind.ICEBERG and not (algo.display_quantity and algo.display_quantity > 0):
        return "iceberg needs display_quantity > 0"
    if algo.kind is AlgoKind.LIMIT_THEN_MARKET and algo.timeout_s is None:
        return "limit_then_market needs timeout_s"
    return ""


def progress_event(state: AlgoState, views: dict[str, ChildView]) -> AlgoProgress:
    """The parent's state derived from its children; the id names the state, so the same
    state published twice is deduplicated."""
    parent = state.parent
    algo = parent.algo
    assert algo is not None
    pairs = [(c, view_of(c, views)) for c in state.children]
    filled = sum((v.filled for _, v in pairs), Decimal(0))
    working = sum((c.quantity - v.filled for c, v in pairs if v.working), Decimal(0))
    signature = f"{state.status}|{filled}|{working}|{len(pairs)}"
    return AlgoProgress(
        id=derive_id(parent.client_order_id, "algo", signature),
        correlation_id=parent.correlation_id or parent.id,
        causation_id=parent.id,
        client_order_id=parent.client_order_id,
        venue=parent.venue,
        symbol=parent.symbol,
        strategy=parent.strategy,
        kind=algo.kind,
        status=state.status,
        side=parent.side,
        quantity=parent.quantity,
        filled_quantity=filled,
        working_quantity=working,
        children=len(pairs),
        detail=state.detail,
    )


def quality_event(state: AlgoState, market: Market) -> ExecutionQuality:
    parent = state.parent
    figures = measure(
        parent.side,
        parent.quantity,
        state.fills,
        state.started_at,
        state.arrival_price,
        parent.reference_price or state.arrival_price,
        market.mid,
    )
    return ExecutionQuality(
        id=derive_id(parent.client_order_id, "quality"),
        correlation_id=parent.correlation_id or parent.id,
        causation_id=parent.id,
        client_order_id=parent.client_order_id,
        venue=parent.venue,
        symbol=parent.symbol,
        strategy=parent.strategy,
        side=parent.side,
        quantity=parent.quantity,
        children=len(state.children),
        **msgspec.structs.asdict(figures),
    )


def in_scope(scope: str, order: OrderApproved) -> bool:
    """Scopes as the halt uses them: global (or all), venue:, symbol:, strategy:."""
    kind, _, name = scope.partition(":")
    if kind in ("", "global", "all"):
        return True
    return {"venue": order.venue, "symbol": order.symbol, "strategy": order.strategy}.get(
        kind
    ) == name
