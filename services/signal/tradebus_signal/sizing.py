"""S2/S3 sizing: pure functions from a signal and a market/ledger view to (side, quantity).

Quantities are rounded *down* to the venue's step (never size past the risk asked for) and
refused under the venue minimum. A strategy's sizing base is its share of the account's
equity (allocation_weight x equity of the latest LedgerSnapshot); what it adds to its
exposure never takes it past that share. Formulas: docs/signals.md#sizing.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from tradebus_common.config import StrategyConfig, VenueSymbolRules
from tradebus_common.errors import ErrorCode, PermanentError
from tradebus_common.events import Side, Signal, SignalRejectReason, SizingHint, SizingMode

HUNDRED = Decimal(100)
EQUITY_MODES = (SizingMode.EQUITY_PCT, SizingMode.RISK_PER_TRADE)
PRICE_MODES = (SizingMode.FIXED_NOTIONAL, *EQUITY_MODES)


class SizingRefused(Exception):
    """A valid signal that sizes to no order; the handler publishes a SignalRejected."""

    def __init__(self, reason: SignalRejectReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class SizingView:
    """What sizing may look at. None means "not known" (no tick, no LedgerSnapshot)."""

    price: Decimal | None = None  # entry reference: the limit price, else the last tick
    equity: Decimal | None = None
    weight: Decimal = Decimal(1)
    position: Decimal = Decimal(0)  # the strategy's signed position in this symbol
    exposure: Decimal = Decimal(0)  # sum of |quantity x mark| over the strategy's positions
    rules: VenueSymbolRules = VenueSymbolRules()
    risk_pct: Decimal = Decimal("0.5")  # risk per trade when the hint has no value
    stop: Decimal | None = None  # the entry's stop-loss price (risk per trade)

    @property
    def share(self) -> Decimal | None:
        return None if self.equity is None else self.equity * self.weight


# --- the formulas -----------------------------------------------------------------------


def fixed_notional(notional: Decimal, price: Decimal) -> Decimal:
    return notional / price


def equity_pct(pct: Decimal, share: Decimal, price: Decimal) -> Decimal:
    return share * pct / HUNDRED / price


def risk_per_trade(risk_pct: Decimal, share: Decimal, entry: Decimal, stop: Decimal) -> Decimal:
    """The quantity whose loss from entry to stop is risk_pct of the share."""
    distance = abs(entry - stop)
    if distance == 0:
        raise PermanentError(f"stop {stop} is at the entry price", ErrorCode.ZERO_STOP_DISTANCE)
    return share * risk_pct / HUNDRED / distance


def target_delta(target: Decimal, position: Decimal) -> tuple[Side, Decimal] | None:
    """The order that takes `position` to `target`; None when it is there already."""
    delta = target - position
    if delta == 0:
        return None
    return (Side.BUY if delta > 0 else Side.SELL), abs(delta)


DEFAULT_STEP = Decimal("0.00000001")  # no qty_step configured: 8 decimals, as most venues


def round_down(quantity: Decimal, step: Decimal) -> Decimal:
    step = step if step > 0 else DEFAULT_STEP
    try:
        return (quantity // step) * step
    except InvalidOperation as e:  # quantity/step past the 28-digit context (1e40 // 1e-8)
        raise PermanentError(
            f"quantity {quantity:.3e} is too large", ErrorCode.INVALID_QUANTITY
        ) from e


def cap_to_share(side: Side, quantity: Decimal, view: SizingView) -> tuple[Decimal, bool]:
    """(quantity, capped): the part that reduces the position is never capped; the part
    that adds exposure fits in what is left of the strategy's share."""
    share, price = view.share, view.price
    if share is None or price is None or price <= 0:
        return quantity, False
    opposes = (view.position > 0 and side is Side.SELL) or (view.position < 0 and side is Side.BUY)
    reducing = min(quantity, abs(view.position)) if opposes else Decimal(0)
    adding = quantity - reducing
    room = max(share - view.exposure, Decimal(0)) / price
    if adding <= room:
        return quantity, False
    return reducing + room, True


def check_minimum(quantity: Decimal, view: SizingView) -> bool:
    """True when the venue would take it: positive and at least min_notional."""
    if quantity <= 0:
        return False
    minimum = view.rules.min_notional
    return not (minimum > 0 and view.price is not None and quantity * view.price < minimum)


# --- a signal to an order ---------------------------------------------------------------


def sizing_of(signal: Signal, strategy: StrategyConfig) -> SizingHint | None:
    """Which sizing applies (target_position aside), first found: the signal's hint, the
    strategy's fixed quantity, the signal's quantity, the strategy's default mode."""
    if signal.sizing is not None:
        return signal.sizing
    if strategy.quantity is not None:
        return SizingHint(mode=SizingMode.FIXED_QUANTITY, value=strategy.quantity)
    if signal.quantity is not None:
        return SizingHint(mode=SizingMode.FIXED_QUANTITY, value=signal.quantity)
    if strategy.sizing_mode:
        return SizingHint(mode=SizingMode(strategy.sizing_mode), value=strategy.sizing_value)
    return None


def needs_equity(signal: Signal, strategy: StrategyConfig) -> bool:
    hint = sizing_of(signal, strategy)
    return signal.target_position is not None or (hint is not None and hint.mode in EQUITY_MODES)


def needs_price(signal: Signal, strategy: StrategyConfig) -> bool:
    hint = sizing_of(signal, strategy)
    return hint is not None and hint.mode in PRICE_MODES


def raw_quantity(hint: SizingHint, view: SizingView) -> Decimal:
    if hint.mode is SizingMode.FIXED_QUANTITY:
        assert hint.value is not None  # validation
        return hint.value
    price = _need(view.price, SignalRejectReason.NO_MARKET_PRICE, "no limit price and no tick")
    if hint.mode is SizingMode.FIXED_NOTIONAL:
        assert hint.value is not None
        return fixed_notional(hint.value, price)
    share = _need(view.share, SignalRejectReason.LEDGER_VIEW_MISSING, "no LedgerSnapshot yet")
    if hint.mode is SizingMode.EQUITY_PCT:
        assert hint.value is not None
        return equity_pct(hint.value, share, price)
    stop = view.stop
    if stop is None:
        raise PermanentError("risk_per_trade needs a stop_loss", ErrorCode.INVALID_SIZING)
    pct = hint.value if hint.value is not None else view.risk_pct
    return risk_per_trade(pct, share, price, stop)


def size_order(signal: Signal, strategy: StrategyConfig, view: SizingView) -> tuple[Side, Decimal]:
    """The order's side and quantity, or SizingRefused (or PermanentError: a bad signal)."""
    if signal.target_position is not None:
        if view.equity is None:
            raise SizingRefused(SignalRejectReason.LEDGER_VIEW_MISSING, "target needs the ledger")
        found = target_delta(signal.target_position, view.position)
        if found is None:
            raise SizingRefused(
                SignalRejectReason.TARGET_REACHED, f"position already {view.position}"
            )
        side, quantity = found
    else:
        hint = sizing_of(signal, strategy)
        if hint is None:
            raise PermanentError("no quantity, sizing or target", ErrorCode.INVALID_SIZING)
        side, quantity = signal.side, raw_quantity(hint, view)
    quantity, capped = cap_to_share(side, quantity, view)
    quantity = round_down(quantity, view.rules.qty_step)
    if not check_minimum(quantity, view):
        reason = (
            SignalRejectReason.ALLOCATION_EXHAUSTED if capped else SignalRejectReason.BELOW_MINIMUM
        )
        raise SizingRefused(reason, f"sized to {quantity}, under the venue minimum")
    return side, quantity


def _need(value: Decimal | None, reason: SignalRejectReason, detail: str) -> Decimal:
    if value is None:
        raise SizingRefused(reason, detail)
    return value
