"""Pre-trade checks (R1): pure functions (intent, view) -> Denial | None, run in order by
`first_denial`. Every check has its own DenyReason; docs/risk.md lists their config keys.

Boundaries: a value exactly at its limit passes, anything over it is denied. Checks on size,
exposure and losses only stop orders that increase risk, so a position can always be reduced.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from tradebus_common.events import DenyReason, OrderIntent, TradingState

from .protections import DENY_REASON
from .view import Denial, RiskView, before_after, increases_risk, shrinks_position

Check = Callable[[OrderIntent, RiskView], Denial | None]
_ZERO = Decimal(0)


def order_price(intent: OrderIntent, view: RiskView) -> Decimal | None:
    return intent.limit_price if intent.limit_price is not None else view.last_price


def _over(reason: DenyReason, what: str, current: Decimal, limit: Decimal) -> Denial | None:
    if current > limit:
        return Denial(reason, f"{what} {current} over {limit}", limit=limit, current=current)
    return None


# --- trading state and market data ------------------------------------------------------


def check_trading_state(intent: OrderIntent, view: RiskView) -> Denial | None:
    state = view.state
    if state is None:
        return Denial(DenyReason.STATE_UNKNOWN, "trading state not readable: failing closed")
    if state.state is TradingState.HALTED:
        return Denial(DenyReason.HALTED, f"trading halted ({state.scope}): {state.reason}")
    if state.state is TradingState.REDUCING and not shrinks_position(intent, view):
        return Denial(
            DenyReason.REDUCING_ONLY,
            f"trading is reducing-only ({state.scope}): this order does not shrink a position",
        )
    return None


def check_market_price(intent: OrderIntent, view: RiskView) -> Denial | None:
    if view.last_price is not None:
        return None
    if intent.limit_price is not None and not view.limits.deny_without_market_data:
        return None
    return Denial(DenyReason.NO_MARKET_PRICE, f"no market price for {intent.venue}/{intent.symbol}")


def check_stale_market_data(intent: OrderIntent, view: RiskView) -> Denial | None:
    if view.tick_age_s is None:
        return None  # no tick at all: check_market_price decides
    limit = Decimal(str(view.limits.stale_market_data_s))
    age = Decimal(str(round(view.tick_age_s, 3)))
    denial = _over(DenyReason.STALE_MARKET_DATA, "last tick age (s)", age, limit)
    return denial


def check_price_collar(intent: OrderIntent, view: RiskView) -> Denial | None:
    if intent.limit_price is None or not view.last_price:
        return None
    deviation = abs(intent.limit_price - view.last_price) / view.last_price * 100
    return _over(
        DenyReason.PRICE_COLLAR,
        "limit price deviation from last (%)",
        deviation,
        view.limits.price_collar_pct,
    )


# --- order size and venue rules ---------------------------------------------------------


def check_max_notional(intent: OrderIntent, view: RiskView) -> Denial | None:
    price = order_price(intent, view)
    if price is None:
        return Denial(
            DenyReason.NO_MARKET_PRICE, f"no market price for {intent.venue}/{intent.symbol}"
        )
    notional = intent.quantity * price
    return _over(DenyReason.MAX_NOTIONAL, "notional", notional, view.limits.max_notional_per_order)


def check_venue_min_notional(intent: OrderIntent, view: RiskView) -> Denial | None:
    price = order_price(intent, view)
    minimum = view.rules.min_notional
    if not minimum or price is None:
        return None
    notional = intent.quantity * price
    if notional < minimum:
        return Denial(
            DenyReason.VENUE_MIN_NOTIONAL,
            f"notional {notional} under the venue minimum {minimum}",
            limit=minimum,
            current=notional,
        )
    return None


def check_venue_precision(intent: OrderIntent, view: RiskView) -> Denial | None:
    step, tick = view.rules.qty_step, view.rules.price_tick
    if step and intent.quantity % step != 0:
        return Denial(
            DenyReason.VENUE_PRECISION,
            f"quantity {intent.quantity} is not a multiple of {step}",
            limit=step,
            current=intent.quantity,
        )
    if tick and intent.limit_price is not None and intent.limit_price % tick != 0:
        return Denial(
            DenyReason.VENUE_PRECISION,
            f"limit price {intent.limit_price} is not a multiple of {tick}",
            limit=tick,
            current=intent.limit_price,
        )
    return None


# --- throttle and open counts -----------------------------------------------------------


def check_rate(intent: OrderIntent, view: RiskView) -> Denial | None:
    per_strategy = view.limits.max_orders_per_window_per_strategy
    if view.recent_orders_strategy >= per_strategy:
        return Denial(
            DenyReason.RATE_LIMIT_STRATEGY,
            f"{intent.strategy}: {per_strategy} orders per {view.limits.rate_window_s}s reached",
            limit=Decimal(per_strategy),
            current=Decimal(view.recent_orders_strategy + 1),
        )
    total = view.limits.max_orders_per_window
    if view.recent_orders_total >= total:
        return Denial(
            DenyReason.RATE_LIMIT_TOTAL,
            f"{total} orders per {view.limits.rate_window_s}s reached (all strategies)",
            limit=Decimal(total),
            current=Decimal(view.recent_orders_total + 1),
        )
    return None


def check_max_open_orders(intent: OrderIntent, view: RiskView) -> Denial | None:
    limit = view.limits.max_open_orders
    if limit is None:
        return None
    return _over(
        DenyReason.MAX_OPEN_ORDERS, "open orders", Decimal(view.open_orders + 1), Decimal(limit)
    )


def _ledger_missing(what: str) -> Denial:
    return Denial(DenyReason.LEDGER_VIEW_MISSING, f"{what} needs a ledger snapshot: none seen")


def check_max_open_positions(intent: OrderIntent, view: RiskView) -> Denial | None:
    limit = view.limits.max_open_positions
    if limit is None:
        return None
    if view.snapshot is None:
        return _ledger_missing("max_open_positions")
    before, _ = before_after(intent, view)
    if before != 0:
        return None  # not a new position
    open_now = len({(p.venue, p.symbol) for p in view.snapshot.positions if p.quantity != 0})
    return _over(
        DenyReason.MAX_OPEN_POSITIONS, "open positions", Decimal(open_now + 1), Decimal(limit)
    )


# --- position and exposure (only for risk-increasing orders) -----------------------------


def check_max_position_qty(intent: OrderIntent, view: RiskView) -> Denial | None:
    limit = view.limits.max_position_qty
    if limit is None or not increases_risk(intent, view):
        return None
    _, after = before_after(intent, view)
    return _over(DenyReason.MAX_POSITION_QTY, "position quantity", abs(after), limit)


def check_max_position_notional(intent: OrderIntent, view: RiskView) -> Denial | None:
    limit, price = view.limits.max_position_notional, order_price(intent, view)
    if limit is None or price is None or not increases_risk(intent, view):
        return None
    _, after = before_after(intent, view)
    return _over(DenyReason.MAX_POSITION_NOTIONAL, "position notional", abs(after) * price, limit)


def gross_after(intent: OrderIntent, view: RiskView) -> Decimal:
    """Ledger gross exposure + open orders + the increase this order adds."""
    assert view.snapshot is not None
    price = order_price(intent, view) or _ZERO
    before, after = before_after(intent, view)
    added = (abs(after) - abs(before)) * price
    return view.snapshot.gross_exposure + view.pending_notional + max(added, _ZERO)


def _snapshot_check(intent: OrderIntent, view: RiskView, key: str) -> Denial | None | bool:
    """Common gate for ledger-based checks: False = skip, a Denial = fail closed, None = go."""
    if getattr(view.limits, key) in (None, False) or not increases_risk(intent, view):
        return False
    if view.snapshot is None:
        return _ledger_missing(key)
    return None


def check_max_gross_exposure(intent: OrderIntent, view: RiskView) -> Denial | None:
    gate = _snapshot_check(intent, view, "max_gross_exposure")
    if gate is not None:
        return gate or None
    limit = view.limits.max_gross_exposure
    assert limit is not None
    return _over(DenyReason.MAX_GROSS_EXPOSURE, "gross exposure", gross_after(intent, view), limit)


def check_concentration(intent: OrderIntent, view: RiskView) -> Denial | None:
    gate = _snapshot_check(intent, view, "max_concentration_pct")
    if gate is not None:
        return gate or None
    assert view.snapshot is not None and view.limits.max_concentration_pct is not None
    price = order_price(intent, view) or _ZERO
    _, after = before_after(intent, view)
    equity = view.snapshot.equity
    if equity <= 0:
        return Denial(DenyReason.MAX_CONCENTRATION, f"equity is {equity}: no room for exposure")
    pct = abs(after) * price / equity * 100
    return _over(
        DenyReason.MAX_CONCENTRATION, "position % of equity", pct, view.limits.max_concentration_pct
    )


def check_leverage(intent: OrderIntent, view: RiskView) -> Denial | None:
    gate = _snapshot_check(intent, view, "max_leverage")
    if gate is not None:
        return gate or None
    assert view.snapshot is not None and view.limits.max_leverage is not None
    equity = view.snapshot.equity
    if equity <= 0:
        return Denial(DenyReason.MAX_LEVERAGE, f"equity is {equity}: no room for leverage")
    leverage = gross_after(intent, view) / equity
    return _over(DenyReason.MAX_LEVERAGE, "leverage", leverage, view.limits.max_leverage)


def check_buying_power(intent: OrderIntent, view: RiskView) -> Denial | None:
    gate = _snapshot_check(intent, view, "check_buying_power")
    if gate is not None:
        return gate or None
    assert view.snapshot is not None
    price = order_price(intent, view) or _ZERO
    before, after = before_after(intent, view)
    needed = (abs(after) - abs(before)) * price
    free = view.snapshot.cash - view.pending_notional
    if needed > free:
        return Denial(
            DenyReason.BUYING_POWER,
            f"order needs {needed}, free balance is {free}",
            limit=free,
            current=needed,
        )
    return None


# --- losses -----------------------------------------------------------------------------


def check_daily_loss(intent: OrderIntent, view: RiskView) -> Denial | None:
    gate = _snapshot_check(intent, view, "daily_loss_limit")
    if gate is not None:
        return gate or None
    assert view.snapshot is not None and view.limits.daily_loss_limit is not None
    loss = -view.snapshot.daily_pnl
    return _over(DenyReason.DAILY_LOSS, "daily loss", loss, view.limits.daily_loss_limit)


def check_drawdown(intent: OrderIntent, view: RiskView) -> Denial | None:
    gate = _snapshot_check(intent, view, "max_drawdown_pct")
    if gate is not None:
        return gate or None
    assert view.snapshot is not None and view.limits.max_drawdown_pct is not None
    return _over(
        DenyReason.MAX_DRAWDOWN,
        "drawdown (%)",
        view.snapshot.drawdown_pct,
        view.limits.max_drawdown_pct,
    )


def check_stage_exposure(intent: OrderIntent, view: RiskView) -> Denial | None:
    """R9: gross exposure after this order within the current stage's cap (% of equity)."""
    cap = view.stage_exposure_pct
    if cap is None or not increases_risk(intent, view):
        return None
    if view.snapshot is None:
        return _ledger_missing("risk.stages.enforce_exposure")
    equity = view.snapshot.equity
    if equity <= 0:
        return Denial(DenyReason.STAGE_EXPOSURE, f"equity is {equity}: no room for exposure")
    pct = gross_after(intent, view) / equity * 100
    return _over(DenyReason.STAGE_EXPOSURE, "gross exposure % of equity (stage cap)", pct, cap)


# --- protections (R6) ------------------------------------------------------------------


def check_protection_locks(intent: OrderIntent, view: RiskView) -> Denial | None:
    """A lock stops entries (risk-increasing orders) until it expires; exits still pass."""
    if not increases_risk(intent, view):
        return None
    for lock in view.locks:
        if lock.active(view.now_s):
            left = Decimal(str(round(lock.until_s - view.now_s, 1)))
            return Denial(
                DENY_REASON[lock.kind],
                f"entries locked ({lock.kind.value}, {lock.target}) for {left}s: {lock.reason}",
            )
    return None


CHECKS: tuple[Check, ...] = (
    check_trading_state,
    check_market_price,
    check_stale_market_data,
    check_price_collar,
    check_max_notional,
    check_venue_min_notional,
    check_venue_precision,
    check_rate,
    check_max_open_orders,
    check_max_open_positions,
    check_max_position_qty,
    check_max_position_notional,
    check_max_gross_exposure,
    check_concentration,
    check_leverage,
    check_buying_power,
    check_daily_loss,
    check_drawdown,
    check_stage_exposure,
    check_protection_locks,
)


def first_denial(intent: OrderIntent, view: RiskView) -> Denial | None:
    for check in CHECKS:
        denial = check(intent, view)
        if denial is not None:
            return denial
    return None
