"""What the checks may look at: one immutable RiskView per intent, and the Denial they return."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from tradebus_common.config import RiskConfig, VenueSymbolRules
from tradebus_common.events import (
    DenyReason,
    LedgerSnapshot,
    OrderIntent,
    Side,
    TradingState,
    TradingStateChanged,
)

from .limits import NO_RULES
from .protections import Lock

_CENT = Decimal("0.01")


@dataclass(frozen=True)
class RiskView:
    """Built by the handler from the latched states, the last tick, the ledger snapshot, the
    open-order book and the throttle. `states is None` means "not read": fail closed."""

    limits: RiskConfig
    states: tuple[TradingStateChanged, ...] | None = ()
    last_price: Decimal | None = None
    tick_age_s: float | None = None  # None: no tick at all
    snapshot: LedgerSnapshot | None = None
    pending_qty: Decimal = Decimal(0)  # signed remaining qty of open orders, this venue/symbol
    pending_notional: Decimal = Decimal(0)  # |remaining| x price of every open order
    open_orders: int = 0
    recent_orders_strategy: int = 0
    recent_orders_total: int = 0
    rules: VenueSymbolRules = field(default=NO_RULES)
    locks: tuple[Lock, ...] = ()  # protection locks on this symbol or on all entries
    now_s: float = 0.0  # wall clock, for lock expiry
    stage_exposure_pct: Decimal | None = None  # R9 cap, when risk.stages.enforce_exposure

    @property
    def state(self) -> TradingStateChanged | None:
        """The most severe state among the intent's scopes (HALTED > REDUCING > ACTIVE)."""
        if self.states is None:
            return None
        rank = {TradingState.HALTED: 2, TradingState.REDUCING: 1, TradingState.ACTIVE: 0}
        return max(self.states, key=lambda s: rank[s.state], default=None)


@dataclass(frozen=True)
class Denial:
    reason: DenyReason
    detail: str
    limit: Decimal | None = None
    current: Decimal | None = None

    @property
    def check(self) -> str:
        return self.reason.value.lower()

    @property
    def breach_pct(self) -> Decimal | None:
        """How far over the limit, in % of it: (current - limit) / limit x 100."""
        if self.limit is None or self.current is None or self.limit == 0:
            return None
        return ((self.current - self.limit) / self.limit * 100).quantize(_CENT)


def signed(intent: OrderIntent) -> Decimal:
    return intent.quantity if intent.side is Side.BUY else -intent.quantity


def position_qty(view: RiskView, venue: str, symbol: str) -> Decimal:
    """Net ledger position for venue/symbol (all strategies), 0 without a snapshot."""
    if view.snapshot is None:
        return Decimal(0)
    return sum(
        (p.quantity for p in view.snapshot.positions if p.venue == venue and p.symbol == symbol),
        Decimal(0),
    )


def before_after(intent: OrderIntent, view: RiskView) -> tuple[Decimal, Decimal]:
    """The projected position (ledger + open orders) before and after this intent."""
    before = position_qty(view, intent.venue, intent.symbol) + view.pending_qty
    return before, before + signed(intent)


def increases_risk(intent: OrderIntent, view: RiskView) -> bool:
    before, after = before_after(intent, view)
    return abs(after) > abs(before)


def shrinks_position(intent: OrderIntent, view: RiskView) -> bool:
    """Strictly reducing: opposite side and never past zero (no flip)."""
    before, after = before_after(intent, view)
    return before != 0 and abs(after) < abs(before) and (after == 0 or (after > 0) == (before > 0))
