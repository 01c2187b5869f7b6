"""Pre-trade checks: pure functions (intent, view) -> Denial | None. The gate runs them in order."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from tradebus_common.config import RiskConfig
from tradebus_common.events import DenyReason, OrderIntent, TradingState, TradingStateChanged


@dataclass(frozen=True)
class RiskView:
    """What the checks may look at. Built per intent by the handler."""

    state: TradingStateChanged | None
    last_price: Decimal | None
    limits: RiskConfig


@dataclass(frozen=True)
class Denial:
    reason: DenyReason
    detail: str
    limit: Decimal | None = None
    current: Decimal | None = None


Check = Callable[[OrderIntent, RiskView], Denial | None]


def check_trading_state(intent: OrderIntent, view: RiskView) -> Denial | None:
    if view.state is None:
        return Denial(DenyReason.STATE_UNKNOWN, "trading state not readable: failing closed")
    if view.state.state is TradingState.HALTED:
        return Denial(DenyReason.HALTED, f"trading halted: {view.state.reason}")
    if view.state.state is TradingState.REDUCING:
        return Denial(DenyReason.REDUCING_ONLY, "trading is reducing-only")
    return None


def order_price(intent: OrderIntent, view: RiskView) -> Decimal | None:
    return intent.limit_price if intent.limit_price is not None else view.last_price


def check_max_notional(intent: OrderIntent, view: RiskView) -> Denial | None:
    price = order_price(intent, view)
    if price is None:
        return Denial(
            DenyReason.NO_MARKET_PRICE, f"no market price for {intent.venue}/{intent.symbol}"
        )
    notional = intent.quantity * price
    limit = view.limits.max_notional_per_order
    if notional > limit:
        return Denial(
            DenyReason.MAX_NOTIONAL,
            f"notional {notional} over {limit}",
            limit=limit,
            current=notional,
        )
    return None


CHECKS: tuple[Check, ...] = (check_trading_state, check_max_notional)


def first_denial(intent: OrderIntent, view: RiskView) -> Denial | None:
    for check in CHECKS:
        denial = check(intent, view)
        if denial is not None:
            return denial
    return None
