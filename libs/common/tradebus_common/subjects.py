"""The one catalogue of subject, stream, consumer and bucket names. Nothing else spells them.

proto-schemas/subjects.json is generated from CATALOGUE; a test fails when they drift.
"""

from __future__ import annotations

import re

import msgspec

from . import events as ev
from .ids import derive_id

STREAM_TRADING = "TRADING"
STREAM_MARKET = "MARKET"
BUCKET_CONTROL = "control"
BUCKET_HEALTH = "health"
BUCKET_ORDER_JOURNAL = "order_journal"
BUCKET_PAPER_VENUE = "paper_venue"
BUCKET_DEDUP = "dedup"
BUCKET_ALERTS = "alerts"  # alerting: alert records, deliveries per sink, dedup windows
BUCKET_RISK_ORDERS = "risk_orders"  # risk-gate: approved orders not yet terminal
BUCKET_RISK_PROTECTIONS = "risk_protections"  # risk-gate: entry locks and recent exits
BUCKET_EXECUTION = "execution_state"  # gateway: algo parents, working orders' timers/quality
BUCKET_STRATEGY_RUNS = "strategy_runs"  # signal: one record per strategy run (O6)
BUCKET_EXITS = "signal_exits"  # signal: the live exit set of each position (S5)
KEY_RECON_GATE = "reconcile.gate"  # in BUCKET_CONTROL: events.ReconGate (C1 startup gate)

TRADING_ALL = "trading.>"
MARKET_ALL = "md.>"

ORDER_ALL = "trading.order.>"
SIGNAL_ALL = "trading.signal.>"
INTENT_ALL = "trading.intent.>"
APPROVED_ALL = "trading.order.approved.>"
DENIED_ALL = "trading.order.denied.>"
ORDER_EVENT_ALL = "trading.order.event.>"
ORDER_CANCEL = "trading.order.cancel"  # command: cancel by client order id
ORDER_MODIFY = "trading.order.modify"  # command: cancel-confirm-replace
FILL_ALL = "trading.fill.>"
CONTROL_ALL = "trading.control.>"
CONTROL_HALT = "trading.control.halt"
CONTROL_RESUME = "trading.control.resume"
CONTROL_RECONCILE = "trading.control.reconcile"
CONTROL_REDUCE = "trading.control.reduce"
CONTROL_CANCEL_ALL = "trading.control.cancel-all"
CONTROL_MODE = "trading.control.mode"
CONTROL_STAGE = "trading.control.stage"
RISK_STATE = "trading.risk.state"
RISK_MODE = "trading.risk.mode"
RISK_STAGE = "trading.risk.stage"
RECON_REPORT = "trading.recon.report"
RECON_GATE = "trading.recon.gate"
AUDIT_CHECKPOINT = "trading.audit.checkpoint"
ALERT_ALL = "trading.alert.>"
DEADLETTER_ALL = "trading.deadletter.>"
ALERT_ACKED = "trading.alerting.acked"
VENUE_LATENCY_ALL = "trading.venue.latency.>"
VENUE_BREAKER_ALL = "trading.venue.breaker.>"
ALERTS_RPC_LIST = "rpc.alerts.list"
ALERTS_RPC_ACK = "rpc.alerts.ack"
ALERTS_RPC_STATUS = "rpc.alerts.status"
LEDGER_SNAPSHOT_ALL = "trading.ledger.snapshot.>"
POSITION_ALL = "trading.position.>"
CONTROL_PREFIX = "trading.control."
STRATEGY_COMMAND_ALL = "trading.strategy.*.command"
STRATEGY_ALL = "trading.strategy.>"

CONTROL_STATE_KEY = "state.global"
_SUBJECT_UNSAFE = {ord(c): "_" for c in "\t\r\n"}
_KV_SAFE = re.compile(r"[-/_=a-zA-Z0-9]+")
_MAX_TOKEN = 128  # characters


def token(value: str) -> str:
    """Make a value safe as one subject token: `BTC/USDT` -> `BTC-USDT`."""
    cleaned = value.replace("/", "-").replace(".", "_").replace(" ", "_")
    cleaned = cleaned.replace("*", "_").replace(">", "_") or "_"
    # A tab, CR or LF makes nats-py refuse the whole subject (BadSubjectError), so an event
    # naming one (an outsider's fill account) could never be published. And the server
    # closes the connection of a client whose protocol line passes 4 KB: a long name keeps a
    # prefix and gets a hash, so it stays one short, stable token.
    cleaned = cleaned.translate(_SUBJECT_UNSAFE)
    if len(cleaned) > _MAX_TOKEN:
        cleaned = cleaned[:64] + "_" + derive_id(value, "token").replace("-", "")
    return cleaned


def kv_token(value: str) -> str:
    """A value as one KV key token. KV keys allow only `[-/_=.a-zA-Z0-9]` (nats-py raises
    InvalidKeyError on anything else, e.g. a homoglyph symbol from a hostile message): a
    plain name keeps its `token`, anything else becomes a stable hash of it."""
    tok = token(value)
    return tok if _KV_SAFE.fullmatch(tok) else "h" + derive_id(value, "kv").replace("-", "")


def signal(strategy: str) -> str:
    return f"trading.signal.{token(strategy)}"


def strategy_command(strategy: str) -> str:
    return f"trading.strategy.{token(strategy)}.command"


def strategy_run(strategy: str) -> str:
    return f"trading.strategy.{token(strategy)}.run"


def strategy_rejected(strategy: str) -> str:
    return f"trading.strategy.{token(strategy)}.rejected"


def intent(strategy: str) -> str:
    return f"trading.intent.{token(strategy)}"


def approved(venue: str) -> str:
    return f"trading.order.approved.{token(venue)}"


def denied(strategy: str) -> str:
    return f"trading.order.denied.{token(strategy)}"


def order_event(venue: str) -> str:
    return f"trading.order.event.{token(venue)}"


def fill(venue: str, symbol: str) -> str:
    return f"trading.fill.{token(venue)}.{token(symbol)}"


def position(account: str) -> str:
    return f"trading.position.{token(account)}"


def ledger_snapshot(account: str) -> str:
    return f"trading.ledger.snapshot.{token(account)}"


def alert(severity: str, source: str) -> str:
    return f"trading.alert.{token(severity)}.{token(source)}"


def deadletter(service: str) -> str:
    return f"trading.deadletter.{token(service)}"


def control(action: str) -> str:
    return f"{CONTROL_PREFIX}{token(action)}"


def market(venue: str, symbol: str) -> str:
    return f"md.{token(venue)}.{token(symbol)}"


def market_all(venue: str) -> str:
    return f"md.{token(venue)}.>"


def venue_positions_rpc(venue: str) -> str:
    """Request/reply (core NATS, not stored): the venue's current positions."""
    return f"rpc.venue.{token(venue)}.positions"


def venue_rpc(venue: str, query: str) -> str:
    """Request/reply (core NATS): open_orders | order | trades | balances | cancel (docs/
    reconciliation.md); served by the execution-gateway for the reconciler."""
    return f"rpc.venue.{token(venue)}.{token(query)}"


def ledger_rpc(endpoint: str) -> str:
    """Request/reply (core NATS, not stored): the ledger's query API (positions, pnl, ...)."""
    return f"rpc.ledger.{token(endpoint)}"


def venue_latency(venue: str) -> str:
    return f"trading.venue.latency.{token(venue)}"


def venue_breaker(venue: str) -> str:
    return f"trading.venue.breaker.{token(venue)}"


def health_key(service: str, instance: str) -> str:
    return f"{token(service)}.{token(instance)}"


def subject_for(event: ev.Event) -> str:
    """Where an event is published. Handlers return events; the bus asks this for the subject."""
    match event:
        case ev.Signal():
            return signal(event.strategy)
        case ev.OrderIntent():
            return intent(event.strategy)
        case ev.OrderApproved():
            return approved(event.venue)
        case ev.OrderDenied():
            return denied(event.strategy)
        case ev.CancelOrder():
            return ORDER_CANCEL
        case ev.ModifyOrder():
            return ORDER_MODIFY
        case ev.OrderEvent():
            return order_event(event.venue)
        case ev.Fill():
            return fill(event.venue, event.symbol)
        case ev.PositionChanged():
            return position(event.account)
        case ev.LedgerSnapshot():
            return ledger_snapshot(event.account)
        case ev.TradingStateChanged():
            return RISK_STATE
        case ev.ModeChanged() | ev.ModeChangeRefused():
            return RISK_MODE
        case ev.RiskStageChanged():
            return RISK_STAGE
        case ev.ControlCommand():
            return control(event.action.value)
        case ev.ReconReport():
            return RECON_REPORT
        case ev.ReconGateChanged():
            return RECON_GATE
        case ev.AuditCheckpoint():
            return AUDIT_CHECKPOINT
        case ev.Alert():
            return alert(event.severity.value, event.source)
        case ev.MarketTick():
            return market(event.venue, event.symbol)
        case ev.MessageDeadLettered():
            return deadletter(event.service)
        case ev.AlertAcknowledged():
            return ALERT_ACKED
        case ev.VenueLatencyObserved():
            return venue_latency(event.venue)
        case ev.VenueBreakerChanged():
            return venue_breaker(event.venue)
        case ev.SignalRejected():
            return strategy_rejected(event.strategy)
        case ev.StrategyCommand():
            return strategy_command(event.strategy)
        case ev.StrategyRunChanged() | ev.StrategyCommandAnswered():
            return strategy_run(event.strategy)
    raise ValueError(f"no subject for event type {type(event).__name__}")


class SubjectSpec(msgspec.Struct, kw_only=True):
    pattern: str
    stream: str | None
    events: list[str]
    publishers: list[str]
    consumers: list[str]
    description: str


def _tags(*types: type[ev.Event]) -> list[str]:
    return [t.__struct_config__.tag for t in types]


CATALOGUE: list[SubjectSpec] = [
    SubjectSpec(
        pattern="trading.order.cancel",
        stream=STREAM_TRADING,
        events=_tags(ev.CancelOrder),
        publishers=["operators", "tradebus order cancel", "execution-gateway (TTL timers)"],
        consumers=["execution-gateway"],
        description="Cancel one order, or an algo parent and its children, by client order id.",
    ),
    SubjectSpec(
        pattern="trading.order.modify",
        stream=STREAM_TRADING,
        events=_tags(ev.ModifyOrder),
        publishers=["operators", "tradebus order modify"],
        consumers=["execution-gateway"],
        description="Modify an order: cancel, confirm, replace the remainder (new client id).",
    ),
    SubjectSpec(
        pattern="trading.recon.gate",
        stream=STREAM_TRADING,
        events=_tags(ev.ReconGateChanged),
        publishers=["reconciler"],
        consumers=["users"],
        description="Startup-gate transitions (RECONCILING, BLOCKED, CLEAN, ACCEPTED), who and why.",
    ),
    SubjectSpec(
        pattern="trading.audit.checkpoint",
        stream=STREAM_TRADING,
        events=_tags(ev.AuditCheckpoint),
        publishers=["reconciler"],
        consumers=["tradebus audit verify"],
        description="Hash-chain checkpoints (stream sequence, SHA-256) over TRADING.",
    ),
    SubjectSpec(
        pattern="rpc.venue.<venue>.<query>",
        stream=None,
        events=[],
        publishers=["reconciler"],
        consumers=["execution-gateway"],
        description="Request/reply: open_orders, order, trades, balances, cancel at the venue "
        "(core NATS, not stored).",
    ),
    SubjectSpec(
        pattern="trading.strategy.<strategy>.rejected",
        stream=STREAM_TRADING,
        events=_tags(ev.SignalRejected),
        publishers=["signal"],
        consumers=["strategies (tradebus_common.sdk)", "users"],
        description="Valid signals not traded (expired, paused, under the minimum...), why.",
    ),
    SubjectSpec(
        pattern="trading.strategy.<strategy>.command",
        stream=STREAM_TRADING,
        events=_tags(ev.StrategyCommand),
        publishers=["operators", "tradebus strategy"],
        consumers=["signal"],
        description="Strategy run commands: start, stop, pause, resume, status.",
    ),
    SubjectSpec(
        pattern="trading.strategy.<strategy>.run",
        stream=STREAM_TRADING,
        events=_tags(ev.StrategyRunChanged, ev.StrategyCommandAnswered),
        publishers=["signal"],
        consumers=["tradebus strategy", "users"],
        description="Strategy run transitions, and answers to status and refused commands.",
    ),
    SubjectSpec(
        pattern="trading.signal.<strategy>",
        stream=STREAM_TRADING,
        events=_tags(ev.Signal),
        publishers=["strategies", "tradebus signal"],
        consumers=["signal"],
        description="Signals from strategies, plain JSON.",
    ),
    SubjectSpec(
        pattern="trading.intent.<strategy>",
        stream=STREAM_TRADING,
        events=_tags(ev.OrderIntent),
        publishers=["signal"],
        consumers=["risk-gate"],
        description="Sized order intents awaiting the pre-trade checks.",
    ),
    SubjectSpec(
        pattern="trading.order.approved.<venue>",
        stream=STREAM_TRADING,
        events=_tags(ev.OrderApproved),
        publishers=["risk-gate"],
        consumers=["execution-gateway"],
        description="Orders cleared to send.",
    ),
    SubjectSpec(
        pattern="trading.order.denied.<strategy>",
        stream=STREAM_TRADING,
        events=_tags(ev.OrderDenied),
        publishers=["risk-gate"],
        consumers=["users"],
        description="Intents the risk-gate refused, with a reason code.",
    ),
    SubjectSpec(
        pattern="trading.order.event.<venue>",
        stream=STREAM_TRADING,
        events=_tags(
            ev.OrderSubmitted,
            ev.OrderAccepted,
            ev.OrderRejected,
            ev.OrderCanceled,
            ev.OrderExpired,
            ev.OrderUnknown,
            ev.OrderCommandRejected,
            ev.AlgoProgress,
            ev.ExecutionQuality,
        ),
        publishers=["execution-gateway"],
        consumers=["users"],
        description="Order lifecycle events.",
    ),
    SubjectSpec(
        pattern="trading.fill.<venue>.<symbol>",
        stream=STREAM_TRADING,
        events=_tags(ev.Fill),
        publishers=["execution-gateway"],
        consumers=["position-ledger", "users"],
        description="Executions.",
    ),
    SubjectSpec(
        pattern="trading.position.<account>",
        stream=STREAM_TRADING,
        events=_tags(ev.PositionChanged),
        publishers=["position-ledger"],
        consumers=["users"],
        description="A position after each committed fill.",
    ),
    SubjectSpec(
        pattern="trading.ledger.snapshot.<account>",
        stream=STREAM_TRADING,
        events=_tags(ev.LedgerSnapshot),
        publishers=["position-ledger"],
        consumers=["users"],
        description="Equity and positions.",
    ),
    SubjectSpec(
        pattern="trading.control.halt",
        stream=STREAM_TRADING,
        events=_tags(ev.ControlCommand),
        publishers=["operators", "tradebus halt"],
        consumers=["risk-gate"],
        description="Emergency halt. Body: JSON, plain-text reason, or empty.",
    ),
    SubjectSpec(
        pattern="trading.control.resume",
        stream=STREAM_TRADING,
        events=_tags(ev.ControlCommand),
        publishers=["operators", "tradebus resume"],
        consumers=["risk-gate"],
        description="Resume trading; needs an operator.",
    ),
    SubjectSpec(
        pattern="trading.control.reduce",
        stream=STREAM_TRADING,
        events=_tags(ev.ControlCommand),
        publishers=["operators", "tradebus reduce"],
        consumers=["risk-gate"],
        description="Set REDUCING in a scope: only position-shrinking orders pass.",
    ),
    SubjectSpec(
        pattern="trading.control.cancel-all",
        stream=STREAM_TRADING,
        events=_tags(ev.ControlCommand),
        publishers=["risk-gate (on halt)"],
        consumers=["execution-gateway"],
        description="Cancel every open order in scope (and flatten if set); derived from a halt.",
    ),
    SubjectSpec(
        pattern="trading.control.reconcile",
        stream=STREAM_TRADING,
        events=_tags(ev.ControlCommand),
        publishers=["operators", "tradebus reconcile"],
        consumers=["reconciler"],
        description="Run a reconciliation now.",
    ),
    SubjectSpec(
        pattern="trading.control.mode",
        stream=STREAM_TRADING,
        events=_tags(ev.ControlCommand),
        publishers=["operators", "tradebus mode"],
        consumers=["risk-gate"],
        description="Change the trading mode (target); needs an operator.",
    ),
    SubjectSpec(
        pattern="trading.control.stage",
        stream=STREAM_TRADING,
        events=_tags(ev.ControlCommand),
        publishers=["operators", "tradebus stage"],
        consumers=["risk-gate"],
        description="Step the progressive-risk stage up or down (target); needs an operator.",
    ),
    SubjectSpec(
        pattern="trading.risk.mode",
        stream=STREAM_TRADING,
        events=_tags(ev.ModeChanged, ev.ModeChangeRefused),
        publishers=["risk-gate"],
        consumers=["users"],
        description="Mode transitions and refusals (with the failed criteria).",
    ),
    SubjectSpec(
        pattern="trading.risk.stage",
        stream=STREAM_TRADING,
        events=_tags(ev.RiskStageChanged),
        publishers=["risk-gate"],
        consumers=["signal", "users"],
        description="Progressive-risk stage changes.",
    ),
    SubjectSpec(
        pattern="trading.risk.state",
        stream=STREAM_TRADING,
        events=_tags(ev.TradingStateChanged),
        publishers=["risk-gate"],
        consumers=["users"],
        description="Every trading-state transition, who and why.",
    ),
    SubjectSpec(
        pattern="trading.recon.report",
        stream=STREAM_TRADING,
        events=_tags(ev.ReconReport),
        publishers=["reconciler"],
        consumers=["users"],
        description="Ledger against venue.",
    ),
    SubjectSpec(
        pattern="trading.alert.<severity>.<source>",
        stream=STREAM_TRADING,
        events=_tags(ev.Alert),
        publishers=["all services"],
        consumers=["alerting"],
        description="Alerts, routed by severity.",
    ),
    SubjectSpec(
        pattern="trading.alerting.acked",
        stream=STREAM_TRADING,
        events=_tags(ev.AlertAcknowledged),
        publishers=["alerting"],
        consumers=["users"],
        description="An operator acknowledged an alert (it stops escalating).",
    ),
    SubjectSpec(
        pattern="trading.venue.latency.<venue>",
        stream=STREAM_TRADING,
        events=_tags(ev.VenueLatencyObserved),
        publishers=["execution-gateway"],
        consumers=["alerting"],
        description="Round trip of one venue API call, for the p50/p99 latency monitor.",
    ),
    SubjectSpec(
        pattern="trading.venue.breaker.<venue>",
        stream=STREAM_TRADING,
        events=_tags(ev.VenueBreakerChanged),
        publishers=["execution-gateway"],
        consumers=["risk-gate", "users"],
        description="A venue's circuit breaker moved (CLOSED/OPEN/HALF_OPEN); OPEN can halt it.",
    ),
    SubjectSpec(
        pattern="rpc.alerts.<query>",
        stream=None,
        events=[],
        publishers=["tradebus alerts", "tradebus status"],
        consumers=["alerting"],
        description="Request/reply: list, ack (acknowledge) and status (unacked, sink health) "
        "(core NATS, not stored).",
    ),
    SubjectSpec(
        pattern="trading.deadletter.<service>",
        stream=STREAM_TRADING,
        events=_tags(ev.MessageDeadLettered),
        publishers=["all services"],
        consumers=["operators"],
        description="Messages a service could not process.",
    ),
    SubjectSpec(
        pattern="md.<venue>.<symbol>",
        stream=STREAM_MARKET,
        events=_tags(ev.MarketTick),
        publishers=["execution-gateway (demo feed)", "execution-gateway (ccxt tickers)"],
        consumers=["execution-gateway", "risk-gate"],
        description="Market data.",
    ),
    SubjectSpec(
        pattern="rpc.venue.<venue>.positions",
        stream=None,
        events=[],
        publishers=["reconciler"],
        consumers=["execution-gateway"],
        description="Request/reply: the venue's positions (core NATS, not stored).",
    ),
    SubjectSpec(
        pattern="rpc.ledger.<endpoint>",
        stream=None,
        events=[],
        publishers=["tradebus positions|pnl|stats|report", "users"],
        consumers=["position-ledger"],
        description="Request/reply: the ledger's query API: positions, pnl, stats, fills "
        "(core NATS, not stored).",
    ),
]
