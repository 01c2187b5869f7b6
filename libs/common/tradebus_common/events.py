"""Every event on the bus: msgspec Structs in one tagged union (tag field `type`).

Rules (see docs/architecture.md): fields are only ever added, with defaults; never renamed,
removed or retyped. Money and quantities are Decimal (strings on the wire). Times are UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

import msgspec

from .errors import ErrorCode
from .ids import new_id

SCHEMA_VERSION = 1


def utcnow() -> datetime:
    return datetime.now(UTC)


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"


class TradingState(StrEnum):
    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"
    HALTED = "HALTED"


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"


class DenyReason(StrEnum):
    HALTED = "HALTED"
    REDUCING_ONLY = "REDUCING_ONLY"
    STATE_UNKNOWN = "STATE_UNKNOWN"
    MAX_NOTIONAL = "MAX_NOTIONAL"
    NO_MARKET_PRICE = "NO_MARKET_PRICE"


class RejectReason(StrEnum):
    NO_MARKET_DATA = "NO_MARKET_DATA"
    LIMIT_NOT_MARKETABLE = "LIMIT_NOT_MARKETABLE"
    INSUFFICIENT_FUNDS = "INSUFFICIENT_FUNDS"
    INVALID_ORDER = "INVALID_ORDER"
    VENUE_REJECTED = "VENUE_REJECTED"  # the venue said no; its words are in `detail`


class CancelReason(StrEnum):
    OPERATOR = "OPERATOR"
    HALT = "HALT"
    TTL_EXPIRED = "TTL_EXPIRED"
    UNFILLED_TIMEOUT = "UNFILLED_TIMEOUT"
    VENUE = "VENUE"


class ControlAction(StrEnum):
    HALT = "halt"
    RESUME = "resume"
    RECONCILE = "reconcile"


class Liquidity(StrEnum):
    MAKER = "maker"
    TAKER = "taker"


class AlertCode(StrEnum):
    DEAD_LETTER = "DEAD_LETTER"
    TRADING_HALTED = "TRADING_HALTED"
    TRADING_RESUMED = "TRADING_RESUMED"
    RECON_MISMATCH = "RECON_MISMATCH"
    VENUE_REJECTED = "VENUE_REJECTED"


class Event(msgspec.Struct, tag_field="type", kw_only=True):
    """Base fields of every event. `id` is also the `Nats-Msg-Id` header."""

    id: str = msgspec.field(default_factory=new_id)
    ts: datetime = msgspec.field(default_factory=utcnow)
    correlation_id: str = ""
    causation_id: str = ""
    v: int = SCHEMA_VERSION


# --- signal -> intent -> approval -------------------------------------------------------


class Signal(Event, tag="signal", kw_only=True):
    """What a strategy wants. Published as plain JSON by any client on trading.signal.<strategy>."""

    id: str  # required: the strategy's own id makes retries of the same signal deduplicate
    strategy: str
    venue: str
    symbol: str
    side: Side
    quantity: Decimal
    order_type: OrderType = OrderType.MARKET
    limit_price: Decimal | None = None
    tags: dict[str, str] = {}


class OrderIntent(Event, tag="order.intent", kw_only=True):
    strategy: str
    venue: str
    symbol: str
    side: Side
    quantity: Decimal
    order_type: OrderType
    limit_price: Decimal | None = None
    signal_id: str = ""
    leg: int = 0


class OrderApproved(Event, tag="order.approved", kw_only=True):
    intent_id: str
    strategy: str
    venue: str
    symbol: str
    side: Side
    quantity: Decimal
    order_type: OrderType
    limit_price: Decimal | None = None
    client_order_id: str


class OrderDenied(Event, tag="order.denied", kw_only=True):
    intent_id: str
    strategy: str
    venue: str
    symbol: str
    reason: DenyReason
    detail: str = ""
    limit: Decimal | None = None
    current: Decimal | None = None


# --- order lifecycle --------------------------------------------------------------------


class OrderEvent(Event, kw_only=True):
    """Fields shared by every order lifecycle event (not itself on the wire)."""

    client_order_id: str
    venue: str
    symbol: str
    strategy: str = ""
    venue_order_id: str = ""


class OrderSubmitted(OrderEvent, tag="order.submitted", kw_only=True):
    side: Side
    quantity: Decimal
    order_type: OrderType
    limit_price: Decimal | None = None


class OrderAccepted(OrderEvent, tag="order.accepted", kw_only=True):
    pass


class OrderRejected(OrderEvent, tag="order.rejected", kw_only=True):
    reason: RejectReason = RejectReason.VENUE_REJECTED
    detail: str = ""


class OrderCanceled(OrderEvent, tag="order.canceled", kw_only=True):
    reason: CancelReason = CancelReason.VENUE
    detail: str = ""


class OrderExpired(OrderEvent, tag="order.expired", kw_only=True):
    pass


class OrderUnknown(OrderEvent, tag="order.unknown", kw_only=True):
    detail: str = ""


class Fill(Event, tag="order.filled", kw_only=True):
    """One execution. Unique on (venue, trade_id); `id` is derived from them."""

    venue: str
    symbol: str
    strategy: str
    account: str = "default"
    client_order_id: str
    venue_order_id: str = ""
    trade_id: str
    side: Side
    quantity: Decimal
    price: Decimal
    fee: Decimal = Decimal(0)
    fee_currency: str = ""
    liquidity: Liquidity = Liquidity.TAKER
    arrival_price: Decimal | None = None
    reconciliation: bool = False


# --- state, control, reports ------------------------------------------------------------


class PositionView(msgspec.Struct, kw_only=True):
    venue: str
    symbol: str
    strategy: str = ""
    quantity: Decimal
    avg_price: Decimal = Decimal(0)
    realized_pnl: Decimal = Decimal(0)


class PositionChanged(Event, tag="position.changed", kw_only=True):
    """The ledger committed a fill and this is the position after it."""

    account: str = "default"
    venue: str
    symbol: str
    strategy: str
    quantity: Decimal
    avg_price: Decimal
    realized_pnl: Decimal
    fees_paid: Decimal = Decimal(0)
    fill_id: str = ""


class LedgerSnapshot(Event, tag="ledger.snapshot", kw_only=True):
    account: str = "default"
    equity: Decimal = Decimal(0)
    cash: Decimal = Decimal(0)
    daily_pnl: Decimal = Decimal(0)
    drawdown: Decimal = Decimal(0)
    positions: list[PositionView] = []


class TradingStateChanged(Event, tag="risk.state_changed", kw_only=True):
    state: TradingState
    previous: TradingState | None = None
    scope: str = "global"
    reason: str = ""
    operator: str = ""


class ControlCommand(Event, tag="control.command", kw_only=True):
    """An operator's imperative: halt, resume, reconcile. Plain text bodies become one too."""

    action: ControlAction
    reason: str = ""
    operator: str = ""
    scope: str = "global"


class ReconMismatch(msgspec.Struct, kw_only=True):
    venue: str
    symbol: str
    ledger_quantity: Decimal
    venue_quantity: Decimal


class ReconReport(Event, tag="recon.report", kw_only=True):
    venue: str
    clean: bool
    of_total: int = 1  # reports answering the same request (one per venue)
    positions_compared: int = 0
    mismatches: list[ReconMismatch] = []


class Alert(Event, tag="alert", kw_only=True):
    severity: Severity
    source: str
    code: AlertCode
    message: str
    context: dict[str, Any] = {}
    dedup_key: str = ""


class Heartbeat(Event, tag="health.heartbeat", kw_only=True):
    service: str
    instance: str
    version: str
    started_at: datetime
    uptime_s: float
    detail: dict[str, Any] = {}


class MarketTick(Event, tag="md.tick", kw_only=True):
    venue: str
    symbol: str
    price: Decimal
    bid: Decimal | None = None
    ask: Decimal | None = None
    volume: Decimal | None = None


class MessageDeadLettered(Event, tag="deadletter", kw_only=True):
    """A message a service could not process, kept whole (as text) with the reason."""

    service: str
    reason: ErrorCode
    error: str
    subject: str
    stream_seq: int = 0
    deliveries: int = 0
    payload: str = ""
    headers: dict[str, str] = {}


AnyEvent = (
    Signal
    | OrderIntent
    | OrderApproved
    | OrderDenied
    | OrderSubmitted
    | OrderAccepted
    | OrderRejected
    | OrderCanceled
    | OrderExpired
    | OrderUnknown
    | Fill
    | PositionChanged
    | LedgerSnapshot
    | TradingStateChanged
    | ControlCommand
    | ReconReport
    | Alert
    | Heartbeat
    | MarketTick
    | MessageDeadLettered
)

ALL_EVENTS: tuple[type[Event], ...] = AnyEvent.__args__  # type: ignore[attr-defined]
