"""What an algo does next, as pure functions of its state, its children's progress and the
clock: no I/O, so every rule is unit-tested at its boundary.

Exposure rule for every algo: a new child is planned only when no child is working, so the
parent's filled + working quantity never exceeds the parent. A working child that must give
way (TWAP's next slice, limit-then-market's timeout) is canceled first, and its unfilled
rest joins the next child only once the venue confirmed the cancel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, ROUND_UP, Decimal

from tradebus_common.events import AlgoKind, AlgoStatus, OrderType, Side

from .state import AlgoChild, AlgoState

MAX_CHILDREN = 1000  # a parent that needs more is stopped (FAILED): something is wrong
_BPS = Decimal(10000)
_TERMINAL = frozenset({"filled", "canceled", "rejected", "expired"})


@dataclass(frozen=True)
class ChildView:
    """A child's progress as the venue reports it."""

    filled: Decimal
    status: str  # the venue's status value; anything not terminal counts as working

    @property
    def working(self) -> bool:
        return self.status not in _TERMINAL


@dataclass(frozen=True)
class ChildSpec:
    quantity: Decimal
    order_type: OrderType
    limit_price: Decimal | None = None
    target_index: int = 0


@dataclass
class Decision:
    cancel: list[str] = field(default_factory=list)
    submit: ChildSpec | None = None
    finish: AlgoStatus | None = None
    detail: str = ""
    next_due: float | None = None  # when to look again (None: on the next child event)


@dataclass(frozen=True)
class Market:
    mid: Decimal | None  # (bid + ask) / 2, else the last price; None: no tick yet
    qty_step: Decimal = Decimal("1e-8")
    price_tick: Decimal = Decimal(0)


def view_of(child: AlgoChild, views: dict[str, ChildView]) -> ChildView:
    if child.final:
        return ChildView(child.filled, child.status)
    # Planned but not seen at the venue yet: count it as working, never as absent.
    return views.get(child.client_order_id) or ChildView(Decimal(0), "pending")


def twap_slices(
    total: Decimal, horizon_s: float, interval_s: float, step: Decimal
) -> list[Decimal]:
    """Equal slices rounded down to the venue's step; the last takes the rest, so they sum
    exactly to the parent."""
    n = max(1, math.ceil(horizon_s / interval_s)) if interval_s > 0 else 1
    base = (total / n).quantize(step, rounding=ROUND_DOWN)
    if base <= 0:
        return [total]
    return [base] * (n - 1) + [total - base * (n - 1)]


def slices_due(started_at: float, now: float, interval_s: float, n: int) -> int:
    if interval_s <= 0:
        return n
    if now < started_at:
        return 1
    return min(n, int((now - started_at) // interval_s) + 1)


def through_mid(side: Side, mid: Decimal, offset_bps: Decimal, tick: Decimal) -> Decimal:
    """A limit `offset_bps` through the mid: above it for a buy, below for a sell, rounded
    to the tick so it never goes further than asked."""
    if side is Side.BUY:
        price = mid * (1 + offset_bps / _BPS)
        return price.quantize(tick, rounding=ROUND_DOWN) if tick > 0 else price
    price = mid * (1 - offset_bps / _BPS)
    return price.quantize(tick, rounding=ROUND_UP) if tick > 0 else price


def decide(state: AlgoState, views: dict[str, ChildView], now: float, market: Market) -> Decision:
    children = [(c, view_of(c, views)) for c in state.children]
    filled = sum((v.filled for _, v in children), Decimal(0))
    working = [c for c, v in children if v.working]
    if filled >= state.parent.quantity:
        return Decision(finish=AlgoStatus.COMPLETED)
    stop = _broken(children)
    if stop:
        return Decision(
            cancel=[c.client_order_id for c in working], finish=AlgoStatus.FAILED, detail=stop
        )
    if not working and len(children) >= MAX_CHILDREN:
        return Decision(finish=AlgoStatus.FAILED, detail=f"{MAX_CHILDREN} children and not done")
    algo = state.parent.algo
    assert algo is not None
    remaining = state.parent.quantity - filled
    if algo.kind is AlgoKind.TWAP:
        return _twap(state, working, remaining, filled, now, market)
    if algo.kind is AlgoKind.ICEBERG:
        return _iceberg(state, working, remaining)
    return _limit_then_market(state, working, remaining, now, market)


def _broken(children: list[tuple[AlgoChild, ChildView]]) -> str:
    for child, view in children:
        if view.status == "rejected":
            return f"child {child.client_order_id} rejected"
        if view.status in ("canceled", "expired") and not child.cancel_requested:
            return f"child {child.client_order_id} {view.status} outside the algo"
    return ""


def _twap(
    state: AlgoState,
    working: list[AlgoChild],
    remaining: Decimal,
    filled: Decimal,
    now: float,
    market: Market,
) -> Decision:
    algo = state.parent.algo
    assert algo is not None
    interval = algo.interval_s or 0.0
    slices = twap_slices(state.parent.quantity, algo.horizon_s or 0.0, interval, market.qty_step)
    due = slices_due(state.started_at, now, interval, len(slices))
    next_due = state.started_at + due * interval if due < len(slices) else None
    if working:
        stale = [c.client_order_id for c in working if c.target_index < due]
        return Decision(cancel=stale, next_due=next_due)
    want = min(sum(slices[:due], Decimal(0)) - filled, remaining)
    if want <= 0:
        return Decision(next_due=next_due)
    price = twap_price(state, market)
    order_type = OrderType.MARKET if price is None else OrderType.LIMIT
    return Decision(submit=ChildSpec(want, order_type, price, due), next_due=next_due)


def twap_price(state: AlgoState, market: Market) -> Decimal | None:
    """A TWAP child's limit: through the mid by the offset, never past the parent's own
    limit; the parent's limit without an offset; None (market) with neither."""
    algo, parent = state.parent.algo, state.parent
    assert algo is not None
    limit = parent.limit_price
    if algo.limit_offset_bps is None or market.mid is None:
        return limit
    price = through_mid(parent.side, market.mid, algo.limit_offset_bps, market.price_tick)
    if limit is None:
        return price
    return min(price, limit) if parent.side is Side.BUY else max(price, limit)


def _iceberg(state: AlgoState, working: list[AlgoChild], remaining: Decimal) -> Decision:
    if working:
        return Decision()  # the next child goes when this one is done
    algo = state.parent.algo
    assert algo is not None
    display = algo.display_quantity or remaining
    price = state.parent.limit_price
    order_type = OrderType.LIMIT if price is not None else OrderType.MARKET
    return Decision(submit=ChildSpec(min(display, remaining), order_type, price))


def _limit_then_market(
    state: AlgoState, working: list[AlgoChild], remaining: Decimal, now: float, market: Market
) -> Decision:
    algo = state.parent.algo
    assert algo is not None
    deadline = state.started_at + (algo.timeout_s or 0.0)
    if working:
        if now < deadline:
            return Decision(next_due=deadline)
        limits = [c.client_order_id for c in working if c.order_type is OrderType.LIMIT]
        return Decision(cancel=limits)
    if not state.children and now < deadline:
        price = state.parent.limit_price or market.mid
        if price is not None:
            return Decision(submit=ChildSpec(remaining, OrderType.LIMIT, price), next_due=deadline)
    # Timed out (the limit child is canceled and confirmed): the rest goes at market.
    return Decision(submit=ChildSpec(remaining, OrderType.MARKET))
