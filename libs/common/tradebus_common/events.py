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


class AlgoKind(StrEnum):
    """E7 execution algorithms: the gateway works the parent order as child orders."""

    TWAP = "twap"
    ICEBERG = "iceberg"
    LIMIT_THEN_MARKET = "limit_then_market"


class ExitReason(StrEnum):
    """S5: why the signal service closed a position; carried intent -> approval -> fill."""

    STOP_LOSS = "STOP_LOSS"
    TAKE_PROFIT = "TAKE_PROFIT"
    TRAILING_STOP = "TRAILING_STOP"
    TIME_EXIT = "TIME_EXIT"


class SizingMode(StrEnum):
    """S2: how the signal service turns a signal into a quantity (docs/signals.md)."""

    FIXED_QUANTITY = "fixed_quantity"  # value: the quantity
    FIXED_NOTIONAL = "fixed_notional"  # value: quote currency
    EQUITY_PCT = "equity_pct"  # value: % of the strategy's share of equity
    RISK_PER_TRADE = "risk_per_trade"  # value: % of the share lost at the stop (None: config)


class SizingHint(msgspec.Struct, kw_only=True, frozen=True):
    mode: SizingMode
    value: Decimal | None = None


class Bracket(msgspec.Struct, kw_only=True, frozen=True):
    """S5: the exits of the position a signal opens. Prices absolute; unset legs are off."""

    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None
    trailing_distance: Decimal | None = None  # price units behind the favourable extreme
    max_holding_s: float | None = None


class SignalRejectReason(StrEnum):
    """A valid signal the signal service did not trade (a SignalRejected says which)."""

    EXPIRED = "EXPIRED"
    STRATEGY_PAUSED = "STRATEGY_PAUSED"
    STRATEGY_NOT_RUNNING = "STRATEGY_NOT_RUNNING"
    BELOW_MINIMUM = "BELOW_MINIMUM"  # the sized quantity rounds under the venue minimum
    ALLOCATION_EXHAUSTED = "ALLOCATION_EXHAUSTED"  # the strategy's equity share is used up
    LEDGER_VIEW_MISSING = "LEDGER_VIEW_MISSING"  # sizing needs equity; no LedgerSnapshot yet
    NO_MARKET_PRICE = "NO_MARKET_PRICE"  # sizing needs a price; no limit price, no tick
    TARGET_REACHED = "TARGET_REACHED"  # the position already is the target: no order


class StrategyRunState(StrEnum):
    """O6: a strategy run's life cycle (KV `strategy_runs`)."""

    STOPPED = "STOPPED"
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    STOPPING = "STOPPING"
    ERROR = "ERROR"


class StrategyAction(StrEnum):
    START = "start"
    STOP = "stop"
    PAUSE = "pause"
    RESUME = "resume"
    STATUS = "status"


class AlgoParams(msgspec.Struct, kw_only=True, frozen=True):
    """How to work an order (None on an order: send it as one order). Unused fields stay None.

    twap: horizon_s, interval_s, optional limit_offset_bps (children are limits that far
    through the mid; None: market children). iceberg: display_quantity (and the order's
    limit price). limit_then_market: a limit at the order's limit price, replaced by a market
    order for the remainder after timeout_s."""

    kind: AlgoKind
    horizon_s: float | None = None
    interval_s: float | None = None
    limit_offset_bps: Decimal | None = None
    display_quantity: Decimal | None = None
    timeout_s: float | None = None


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
    # risk-gate R1 checks (docs/risk.md lists each with its config key)
    VENUE_MIN_NOTIONAL = "VENUE_MIN_NOTIONAL"
    VENUE_PRECISION = "VENUE_PRECISION"
    MAX_POSITION_QTY = "MAX_POSITION_QTY"
    MAX_POSITION_NOTIONAL = "MAX_POSITION_NOTIONAL"
    MAX_GROSS_EXPOSURE = "MAX_GROSS_EXPOSURE"
    MAX_CONCENTRATION = "MAX_CONCENTRATION"
    BUYING_POWER = "BUYING_POWER"
    MAX_LEVERAGE = "MAX_LEVERAGE"
    MAX_OPEN_ORDERS = "MAX_OPEN_ORDERS"
    MAX_OPEN_POSITIONS = "MAX_OPEN_POSITIONS"
    RATE_LIMIT_STRATEGY = "RATE_LIMIT_STRATEGY"
    RATE_LIMIT_TOTAL = "RATE_LIMIT_TOTAL"
    PRICE_COLLAR = "PRICE_COLLAR"
    STALE_MARKET_DATA = "STALE_MARKET_DATA"
    DAILY_LOSS = "DAILY_LOSS"
    MAX_DRAWDOWN = "MAX_DRAWDOWN"
    DUPLICATE_INTENT = "DUPLICATE_INTENT"
    LEDGER_VIEW_MISSING = "LEDGER_VIEW_MISSING"
    STOPLOSS_GUARD = "STOPLOSS_GUARD"  # protections (R6): entries locked for a while
    SYMBOL_COOLDOWN = "SYMBOL_COOLDOWN"
    LOW_PROFIT_LOCK = "LOW_PROFIT_LOCK"
    STAGE_EXPOSURE = "STAGE_EXPOSURE"  # R9: over the current stage's exposure cap
    RECONCILING = "RECONCILING"  # C1: the startup gate is closed (not clean, not accepted)


class RejectReason(StrEnum):
    NO_MARKET_DATA = "NO_MARKET_DATA"
    INSUFFICIENT_FUNDS = "INSUFFICIENT_FUNDS"
    INVALID_ORDER = "INVALID_ORDER"
    VENUE_REJECTED = "VENUE_REJECTED"  # the venue said no; its words are in `detail`
    VENUE_UNAVAILABLE = "VENUE_UNAVAILABLE"  # not sent: the venue's circuit breaker is open
    # an UNKNOWN order the venue never saw (not found past the grace) and too old to resend
    NOT_SENT = "NOT_SENT"


class CancelReason(StrEnum):
    OPERATOR = "OPERATOR"
    HALT = "HALT"
    TTL_EXPIRED = "TTL_EXPIRED"
    UNFILLED_TIMEOUT = "UNFILLED_TIMEOUT"
    VENUE = "VENUE"
    RECONCILIATION = "RECONCILIATION"  # the reconciler canceled an external order (policy)
    REPLACED = "REPLACED"  # modify (cancel-confirm-replace) or an algo replacing its child


class ControlAction(StrEnum):
    HALT = "halt"
    RESUME = "resume"
    RECONCILE = "reconcile"
    REDUCE = "reduce"
    CANCEL_ALL = "cancel-all"  # published by risk-gate on a halt; the gateway cancels/flattens
    MODE = "mode"  # target: paper | live-minimal | live-scaled | emergency-stop
    STAGE = "stage"  # target: up | down


class Liquidity(StrEnum):
    MAKER = "maker"
    TAKER = "taker"


class AlertCode(StrEnum):
    DEAD_LETTER = "DEAD_LETTER"
    TRADING_HALTED = "TRADING_HALTED"
    TRADING_RESUMED = "TRADING_RESUMED"
    RECON_MISMATCH = "RECON_MISMATCH"
    VENUE_REJECTED = "VENUE_REJECTED"
    TRADING_REDUCING = "TRADING_REDUCING"
    BREAKER_TRIPPED = "BREAKER_TRIPPED"
    PROTECTION_LOCKED = "PROTECTION_LOCKED"
    MODE_CHANGED = "MODE_CHANGED"
    MODE_REFUSED = "MODE_REFUSED"
    STAGE_CHANGED = "STAGE_CHANGED"
    UNKNOWN_FILL = "UNKNOWN_FILL"  # the ledger booked a fill for an unknown strategy/order
    # execution-gateway venues (docs/execution.md)
    VENUE_BREAKER_OPEN = "VENUE_BREAKER_OPEN"
    VENUE_BREAKER_HALF_OPEN = "VENUE_BREAKER_HALF_OPEN"
    VENUE_BREAKER_CLOSED = "VENUE_BREAKER_CLOSED"
    ORDER_UNKNOWN = "ORDER_UNKNOWN"  # a create's outcome is unknown; being resolved
    ORDER_UNKNOWN_RESOLVED = "ORDER_UNKNOWN_RESOLVED"
    # reconciler (docs/reconciliation.md) and audit trail (docs/audit.md)
    RECON_EXTERNAL_ORDER = "RECON_EXTERNAL_ORDER"
    RECON_MISSING_FILL = "RECON_MISSING_FILL"
    RECON_ORDER_RESOLVED = "RECON_ORDER_RESOLVED"
    RECON_BALANCE_DRIFT = "RECON_BALANCE_DRIFT"
    RECON_GATE_BLOCKED = "RECON_GATE_BLOCKED"
    RECON_GATE_ACCEPTED = "RECON_GATE_ACCEPTED"
    AUDIT_CHAIN_BROKEN = "AUDIT_CHAIN_BROKEN"
    # alerting's own monitors (docs/alerting.md has a runbook line for each)
    HEARTBEAT_MISSING = "HEARTBEAT_MISSING"
    HEARTBEAT_RECOVERED = "HEARTBEAT_RECOVERED"
    CONSUMER_LAG = "CONSUMER_LAG"
    CONSUMER_LAG_RECOVERED = "CONSUMER_LAG_RECOVERED"
    VENUE_LATENCY = "VENUE_LATENCY"
    VENUE_LATENCY_RECOVERED = "VENUE_LATENCY_RECOVERED"
    # the NATS server refused an identity a subject (tradebus auth monitor; docs/operations.md)
    PERMISSION_VIOLATION = "PERMISSION_VIOLATION"


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
    quantity: Decimal | None = None
    order_type: OrderType = OrderType.MARKET
    limit_price: Decimal | None = None
    tags: dict[str, str] = {}
    algo: AlgoParams | None = None
    # S2-S5 (docs/signals.md). quantity may be left out when sizing or target_position says
    # how much; with target_position the order side comes from the delta, not from `side`.
    target_position: Decimal | None = None
    sizing: SizingHint | None = None
    bracket: Bracket | None = None
    priority: int = 0  # under backlog, higher first
    ttl_s: float | None = None  # dropped (SignalRejected EXPIRED) once ts + ttl_s has passed
    expires_at: datetime | None = None


class SignalRejected(Event, tag="signal.rejected", kw_only=True):
    """A valid signal that was not traded, and why (invalid ones are dead-lettered instead)."""

    signal_id: str
    strategy: str
    venue: str = ""
    symbol: str = ""
    reason: SignalRejectReason
    detail: str = ""


class StrategyCommand(Event, tag="strategy.command", kw_only=True):
    """O6: an operator's start/stop/pause/resume/status of a strategy run."""

    strategy: str
    action: StrategyAction
    request_id: str = ""
    operator: str = ""
    reason: str = ""
    overrides: dict[str, str] = {}  # start only: [strategies.<name>] keys for this run


class StrategyRunChanged(Event, tag="strategy.run_changed", kw_only=True):
    """O6: one transition of a strategy run."""

    strategy: str
    state: StrategyRunState
    previous: StrategyRunState | None = None
    action: StrategyAction
    request_id: str = ""
    run_id: str = ""
    operator: str = ""
    reason: str = ""
    overrides: dict[str, str] = {}


class StrategyCommandAnswered(Event, tag="strategy.answered", kw_only=True):
    """O6: the answer to a status request, or to a command that changed nothing (refused)."""

    strategy: str
    action: StrategyAction
    request_id: str = ""
    ok: bool = True
    state: StrategyRunState
    run_id: str = ""
    detail: str = ""
    overrides: dict[str, str] = {}


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
    algo: AlgoParams | None = None
    reduce_only: bool = False  # only ever shrinks a position (exits, flatten)
    exit_reason: ExitReason | None = None  # set on exits (S5); rides on to the fill


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
    reference_price: Decimal | None = None  # the price the risk checks judged the order at
    algo: AlgoParams | None = None
    reduce_only: bool = False
    exit_reason: ExitReason | None = None


class OrderDenied(Event, tag="order.denied", kw_only=True):
    intent_id: str
    strategy: str
    venue: str
    symbol: str
    reason: DenyReason
    detail: str = ""
    limit: Decimal | None = None
    current: Decimal | None = None
    check: str = ""  # which check denied (the `type` of R7's {type, limit, current, breach_pct})
    breach_pct: Decimal | None = None  # (current - limit) / limit x 100


# --- order lifecycle --------------------------------------------------------------------


class OrderEvent(Event, kw_only=True):
    """Fields shared by every order lifecycle event (not itself on the wire)."""

    client_order_id: str
    venue: str
    symbol: str
    strategy: str = ""
    venue_order_id: str = ""
    parent_id: str = ""  # an algo child: the parent order's client_order_id (E7)


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
    exit_reason: ExitReason | None = None  # copied from the approval: the ledger's exit stats
    parent_id: str = ""  # an algo child's fill: the parent order's client_order_id (E7)


# --- state, control, reports ------------------------------------------------------------


class PositionView(msgspec.Struct, kw_only=True):
    venue: str
    symbol: str
    strategy: str = ""
    quantity: Decimal
    avg_price: Decimal = Decimal(0)
    realized_pnl: Decimal = Decimal(0)
    mark_price: Decimal | None = None  # the last market price (None: no tick seen yet)
    unrealized_pnl: Decimal = Decimal(0)
    account: str = "default"


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
    drawdown: Decimal = Decimal(0)  # high_water_mark - equity, in the quote currency
    positions: list[PositionView] = []
    realized_pnl: Decimal = Decimal(0)
    unrealized_pnl: Decimal = Decimal(0)
    starting_cash: Decimal = Decimal(0)
    high_water_mark: Decimal = Decimal(0)
    drawdown_pct: Decimal = Decimal(0)  # drawdown / high_water_mark x 100
    gross_exposure: Decimal = Decimal(0)  # sum of |quantity x mark|
    net_exposure: Decimal = Decimal(0)  # sum of quantity x mark
    trading_day: str = ""  # the day daily_pnl belongs to (YYYY-MM-DD, configured timezone)


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
    flatten: bool = False  # halt only: also close positions in scope (reduce-only market orders)
    target: str = ""  # mode / stage commands: the mode wanted, or "up" / "down"


class TradingMode(StrEnum):
    PAPER = "paper"
    LIVE_MINIMAL = "live-minimal"
    LIVE_SCALED = "live-scaled"
    EMERGENCY_STOP = "emergency-stop"


class ModeChanged(Event, tag="risk.mode_changed", kw_only=True):
    """R8: the trading mode moved (risk-gate, latched in KV `control` key `mode`)."""

    mode: TradingMode
    previous: TradingMode | None = None
    reason: str = ""
    operator: str = ""
    criteria: dict[str, str] = {}  # the validation figures, when one was needed


class ModeChangeRefused(Event, tag="risk.mode_refused", kw_only=True):
    """R8: a mode change that failed validation; `failed` lists the criteria not met."""

    mode: TradingMode
    current: TradingMode
    operator: str = ""
    failed: list[str] = []


class RiskStageChanged(Event, tag="risk.stage_changed", kw_only=True):
    """R9: the progressive-risk stage (KV `control` key `stage`); the signal service sizes
    risk per trade from it."""

    stage: int
    previous: int | None = None
    risk_per_trade_pct: Decimal
    max_exposure_pct: Decimal
    reason: str = ""
    operator: str = ""


class ReconGateState(StrEnum):
    """C1 startup gate (KV `control` key `reconcile.gate`). The risk-gate approves new orders
    only when it is CLEAN or ACCEPTED; a missing key counts as RECONCILING (fail closed)."""

    RECONCILING = "RECONCILING"  # a run is due or under way (start, gateway restart)
    BLOCKED = "BLOCKED"  # the last run found differences; an operator must accept
    CLEAN = "CLEAN"
    ACCEPTED = "ACCEPTED"  # an operator accepted a report with differences


class ReconGate(msgspec.Struct, kw_only=True):
    """The value stored under KV `control` / `reconcile.gate`."""

    state: ReconGateState
    reason: str = ""
    report_id: str = ""
    operator: str = ""
    ts: datetime = msgspec.field(default_factory=utcnow)


class ReconMismatch(msgspec.Struct, kw_only=True):
    venue: str
    symbol: str
    ledger_quantity: Decimal
    venue_quantity: Decimal


class ReconDiscrepancyKind(StrEnum):
    """C2/C4: what a reconciliation run found (docs/reconciliation.md)."""

    ORDER_NOT_AT_VENUE = "ORDER_NOT_AT_VENUE"  # open in our journal, not open at the venue
    ORDER_UNKNOWN = "ORDER_UNKNOWN"  # ... and the venue does not know its client order id
    EXTERNAL_ORDER = "EXTERNAL_ORDER"  # open at the venue, not ours
    MISSING_FILL = "MISSING_FILL"  # a venue trade the ledger has not booked
    POSITION_DRIFT = "POSITION_DRIFT"
    BALANCE_DRIFT = "BALANCE_DRIFT"
    VENUE_UNAVAILABLE = "VENUE_UNAVAILABLE"  # a query the venue did not answer


class ReconDiscrepancy(msgspec.Struct, kw_only=True):
    kind: ReconDiscrepancyKind
    key: str  # client order id, trade id, symbol or currency
    ours: Decimal | None = None
    theirs: Decimal | None = None
    detail: str = ""
    resolution: str = ""  # what the policy did ("" = unresolved: the gate stays BLOCKED)


class ReconAction(msgspec.Struct, kw_only=True):
    kind: str  # fill_generated | order_canceled | order_rejected | order_filled | adopted | ...
    key: str
    event_id: str = ""


class ReconReport(Event, tag="recon.report", kw_only=True):
    venue: str
    clean: bool
    of_total: int = 1  # reports answering the same request (one per venue)
    positions_compared: int = 0
    mismatches: list[ReconMismatch] = []
    trigger: str = ""  # startup | gateway_restart | on_demand | periodic | end_of_day
    scope: str = "full"  # full | orders | positions (what this run compared)
    orders_compared: int = 0
    trades_compared: int = 0
    balances_compared: int = 0
    discrepancies: list[ReconDiscrepancy] = []
    actions: list[ReconAction] = []
    resolved: bool = True  # every discrepancy was resolved by policy (the gate may open)
    duration_ms: int = 0
    # The venue's balances seen by this run, currency -> total, and whose they are: the
    # ledger's cash when [ledger] cash_source = "venue" (docs/ledger.md, "Cash from the venue").
    account: str = "default"
    balances: dict[str, Decimal] = {}


class ReconGateChanged(Event, tag="recon.gate_changed", kw_only=True):
    """C1: the startup gate moved (KV `control` / `reconcile.gate`), who and why."""

    state: ReconGateState
    previous: ReconGateState | None = None
    reason: str = ""
    report_id: str = ""
    operator: str = ""


class AuditCheckpoint(Event, tag="audit.checkpoint", kw_only=True):
    """B7: the SHA-256 chain over TRADING up to `stream_seq` (docs/audit.md)."""

    stream: str = "TRADING"
    stream_seq: int
    chain_hash: str  # hex
    messages: int = 0  # messages hashed since the previous checkpoint


class VenueOrderView(msgspec.Struct, kw_only=True):
    """An order as the venue reports it (rpc.venue.<venue>.*; not a bus event)."""

    client_order_id: str
    venue_order_id: str = ""
    symbol: str
    side: Side
    quantity: Decimal
    filled: Decimal = Decimal(0)
    status: str  # open | partially_filled | filled | canceled | rejected
    order_type: OrderType = OrderType.MARKET
    limit_price: Decimal | None = None
    strategy: str = ""


class VenueTradeView(msgspec.Struct, kw_only=True):
    """One execution as the venue reports it (rpc.venue.<venue>.trades)."""

    trade_id: str
    client_order_id: str = ""
    venue_order_id: str = ""
    symbol: str
    side: Side
    quantity: Decimal
    price: Decimal
    fee: Decimal = Decimal(0)
    fee_currency: str = ""
    liquidity: Liquidity = Liquidity.TAKER
    strategy: str = ""
    ts: datetime | None = None
    correlation_id: str = ""  # the signal behind the order, when the venue record keeps it


class BalanceView(msgspec.Struct, kw_only=True):
    currency: str
    total: Decimal
    free: Decimal | None = None


class Alert(Event, tag="alert", kw_only=True):
    severity: Severity
    source: str
    code: AlertCode
    message: str
    context: dict[str, Any] = {}
    dedup_key: str = ""
    resolved: bool = False  # True: the condition under `dedup_key` is over (PagerDuty resolve)


class Heartbeat(Event, tag="health.heartbeat", kw_only=True):
    service: str
    instance: str
    version: str
    started_at: datetime
    uptime_s: float
    detail: dict[str, Any] = {}


class AlertAcknowledged(Event, tag="alert.acknowledged", kw_only=True):
    """An operator took ownership of an alert: it no longer escalates. Kept for the audit."""

    alert_id: str
    operator: str
    dedup_key: str = ""


class VenueLatencyObserved(Event, tag="venue.latency", kw_only=True):
    """One venue API call's round trip, published by the gateway; alerting keeps p50/p99."""

    venue: str
    operation: str  # create_order | cancel_order | fetch_order | ...
    latency_ms: int
    ok: bool = True


class VenueBreakerState(StrEnum):
    CLOSED = "CLOSED"  # calls flow
    OPEN = "OPEN"  # calls refused (orders rejected VENUE_UNAVAILABLE) until a probe
    HALF_OPEN = "HALF_OPEN"  # one probe call in flight


class VenueBreakerChanged(Event, tag="venue.breaker", kw_only=True):
    """E3: a venue's circuit breaker moved (execution-gateway). The risk-gate may halt the
    venue on OPEN; every change also raises an Alert."""

    venue: str
    state: VenueBreakerState
    previous: VenueBreakerState
    failures: int = 0  # consecutive failed calls when it moved
    reason: str = ""


class MarketTick(Event, tag="md.tick", kw_only=True):
    venue: str
    symbol: str
    price: Decimal
    bid: Decimal | None = None
    ask: Decimal | None = None
    volume: Decimal | None = None


# --- order management and algorithms (E4, E7, E9) ---------------------------------------


class AlgoStatus(StrEnum):
    WORKING = "WORKING"
    COMPLETED = "COMPLETED"  # every unit of the parent filled
    CANCELED = "CANCELED"  # stopped by a halt, cancel-all, an operator or a timeout
    FAILED = "FAILED"  # a child was rejected, or canceled outside the algo


class CommandRejectReason(StrEnum):
    UNKNOWN_ORDER = "UNKNOWN_ORDER"
    NOT_WORKING = "NOT_WORKING"  # already filled, canceled or rejected
    NOTHING_TO_REPLACE = "NOTHING_TO_REPLACE"  # modify: the fills already reached the new size
    NOT_SUPPORTED = "NOT_SUPPORTED"  # e.g. modify of an algo parent


class CancelOrder(Event, tag="order.cancel", kw_only=True):
    """Command: cancel one order (or an algo parent and its children) by client order id."""

    client_order_id: str
    venue: str = ""  # empty: every configured venue is asked
    reason: CancelReason = CancelReason.OPERATOR
    operator: str = ""
    detail: str = ""


class ModifyOrder(Event, tag="order.modify", kw_only=True):
    """Command: cancel-confirm-replace. `quantity` is the new total (fills so far count
    against it); unset fields keep the order's own."""

    client_order_id: str
    venue: str = ""
    quantity: Decimal | None = None
    limit_price: Decimal | None = None
    operator: str = ""
    detail: str = ""


class OrderCommandRejected(OrderEvent, tag="order.command_rejected", kw_only=True):
    """A cancel or modify command the gateway could not carry out, and why."""

    command: str  # cancel | modify
    command_id: str = ""
    reason: CommandRejectReason
    detail: str = ""


class AlgoProgress(OrderEvent, tag="order.algo", kw_only=True):
    """An algo parent's state, derived from its children; client_order_id is the parent's."""

    kind: AlgoKind
    status: AlgoStatus
    side: Side
    quantity: Decimal
    filled_quantity: Decimal = Decimal(0)
    working_quantity: Decimal = Decimal(0)
    children: int = 0
    detail: str = ""


class ExecutionQuality(OrderEvent, tag="order.quality", kw_only=True):
    """E9: how well one order (or one algo parent, children > 0) was executed; published
    once, when it is finished. Costs are positive when they hurt the order."""

    side: Side
    quantity: Decimal
    filled_quantity: Decimal
    avg_price: Decimal | None = None
    arrival_price: Decimal | None = None  # market price when the order reached the gateway
    decision_price: Decimal | None = None  # the approval's reference price, else arrival
    slippage_bps: Decimal | None = None  # avg fill price against arrival, signed by side
    fill_rate: Decimal = Decimal(0)  # filled / quantity
    time_to_first_fill_ms: int | None = None
    time_to_last_fill_ms: int | None = None
    fees: Decimal = Decimal(0)
    implementation_shortfall: Decimal | None = None  # quote currency: price + fees + unfilled
    implementation_shortfall_bps: Decimal | None = None  # of decision price x quantity
    children: int = 0


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
    | ModeChanged
    | ModeChangeRefused
    | RiskStageChanged
    | ControlCommand
    | ReconReport
    | Alert
    | AlertAcknowledged
    | VenueLatencyObserved
    | VenueBreakerChanged
    | Heartbeat
    | MarketTick
    | MessageDeadLettered
    | ReconGateChanged
    | AuditCheckpoint
    | SignalRejected
    | StrategyCommand
    | StrategyRunChanged
    | StrategyCommandAnswered
    | CancelOrder
    | ModifyOrder
    | OrderCommandRejected
    | AlgoProgress
    | ExecutionQuality
)

ALL_EVENTS: tuple[type[Event], ...] = AnyEvent.__args__  # type: ignore[attr-defined]
