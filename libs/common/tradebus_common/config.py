"""One TOML file decoded into frozen msgspec Structs (unknown keys are errors that name the key).

Precedence: defaults < TOML file < environment. Any key can be overridden from the
environment as TRADEBUS__<SECTION>__<KEY> (for example TRADEBUS__BUS__URL or
TRADEBUS__DATABASE__DSN); values are converted to the key's type; lists and tables are written in TOML.
Secrets are never in the file: they come from the environment or a file named by a `*_env`
or `*_file` key.
"""

from __future__ import annotations

import os
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec

from .errors import ConfigError

ENV_PREFIX = "TRADEBUS__"
CONFIG_ENV = "TRADEBUS_CONFIG"


class _Cfg(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    pass


class BusConfig(_Cfg):
    url: str = "nats://127.0.0.1:4222"
    creds_file: str = ""  # NATS .creds file of this service's identity (`tradebus auth init`)
    tls_ca_file: str = ""  # CA to trust for tls:// URLs (`tradebus auth init --tls`: tls/ca.pem)
    # false with auth on: an admin identity created streams and buckets (`tradebus up`,
    # compose's bus-init); the service only checks they exist and never administers them.
    manage_topology: bool = True
    connect_timeout_s: float = 5.0
    duplicate_window_s: int = 600
    replicas: int = 1  # stream and KV replicas: 3 on a 3-node JetStream cluster
    trading_max_age_days: int = 365
    market_max_age_s: int = 3600
    ack_wait_s: int = 30
    max_deliver: int = 10
    nak_delay_s: float = 1.0
    fetch_batch: int = 64
    fetch_timeout_s: float = 1.0


class DatabaseConfig(_Cfg):
    dsn: str = ""  # empty: `tradebus up` starts an embedded PostgreSQL
    dsn_env: str = "TRADEBUS_DATABASE_DSN"
    min_pool: int = 1
    max_pool: int = 5


class VenueConfig(_Cfg):
    kind: str = "paper"
    symbols: list[str] = []
    quote_currency: str = "USDT"
    taker_fee_rate: Decimal = Decimal("0.001")
    maker_fee_rate: Decimal = Decimal("0.0008")
    # Paper venue only: market fills move slippage_bps against the taker; a resting order
    # takes at most participation_rate of a tick's volume (all of it when a tick has none).
    slippage_bps: Decimal = Decimal("0")
    participation_rate: Decimal = Decimal("1")
    starting_balances: dict[str, Decimal] = {}  # paper: per currency; moved by every fill
    latency_ms: int = 0  # paper: simulated round trip of each submit and cancel
    # kind = "ccxt" (docs/execution.md). Secrets only from the env vars / files named here.
    exchange: str = ""  # ccxt exchange id, e.g. "binance", "bybit", "okx"
    sandbox: bool = True  # the venue's testnet: set_sandbox_mode(True), before anything else
    demo: bool = False  # enable_demo_trading(True) (Binance futures, Bybit demo)
    market_type: str = "spot"  # ccxt defaultType: spot | swap | future
    api_key_env: str = ""
    api_key_file: str = ""
    secret_env: str = ""
    secret_file: str = ""
    password_env: str = ""  # OKX, KuCoin, ... passphrase
    password_file: str = ""
    api_urls: dict[str, str] = {}  # override entries of ccxt urls['api'] (an emulator, a proxy)
    timeout_ms: int = 10000  # per HTTP call; a create that times out becomes UNKNOWN
    rate_limit_ms: int = 0  # ccxt's per-instance limiter spacing; 0: the exchange's default
    retry_attempts: int = 4  # transient errors on reads and cancels (never on create)
    retry_base_ms: int = 200  # backoff: base x 2^n with jitter, at least Retry-After
    retry_max_ms: int = 10000
    breaker_failures: int = 5  # consecutive failed calls that open the venue's breaker
    breaker_open_s: float = 30.0  # then one probe call (HALF_OPEN)
    unknown_resolve_attempts: int = 6  # lookups by client order id per UNKNOWN order ...
    unknown_grace_s: float = 15.0  # ... and "not found" this long after the send is final
    resubmit_max_age_s: float = 30.0  # unsent (not found) younger than this: resend, same id
    order_poll_interval_ms: int = 1000  # REST polling of working orders (fills, cancels)
    watch_orders: bool = False  # ccxt.pro watch_orders pushes: an update triggers a poll now
    ws_urls: dict[str, str] = {}  # override urls['api']['ws'] entries ("ws-api.spot" = url)
    ticker_poll_interval_ms: int = 0  # md.<venue>.<symbol> from fetch_ticker; 0: off


class StrategyConfig(_Cfg):
    enabled: bool = True
    quantity: Decimal | None = None  # fixed-quantity sizing; None keeps the signal's quantity
    # S2/S3/S5, docs/signals.md. Share of the account's equity this strategy sizes from and
    # may not exceed (the weights need not sum to 1; keep them <= 1 in total to not overlap).
    allocation_weight: Decimal = Decimal("1")
    sizing_mode: str = ""  # default when a signal has no quantity: fixed_quantity | ...
    sizing_value: Decimal | None = None
    risk_per_trade_pct: Decimal = Decimal("0.5")  # risk_per_trade without a value
    risk_pct_from_stage: bool = False  # true: the risk-gate's current stage sets that %
    # Default bracket, relative to the entry price, for entries without one (None: off)
    stop_loss_pct: Decimal | None = None
    take_profit_pct: Decimal | None = None
    trailing_stop_pct: Decimal | None = None
    max_holding_s: float | None = None


class SignalConfig(_Cfg):
    """[signal]: the signal service (docs/signals.md)."""

    default_ttl_s: float = 0.0  # signals without ttl_s / expires_at: 0 never expire
    exits_enabled: bool = True  # watch md ticks and close positions at their exits (S5)


class ExampleStrategyConfig(_Cfg):
    """[example_strategy] (S6): the SMA-cross example, run by `tradebus up` when enabled."""

    enabled: bool = False
    strategy: str = "demo"  # must be in [strategies]
    venue: str = "paper"
    symbol: str = "BTC/USDT"
    fast_window: int = 10  # ticks
    slow_window: int = 30
    quantity: Decimal = Decimal("0.01")
    stop_loss_pct: Decimal = Decimal("1")  # bracket of each entry, % from the entry price
    take_profit_pct: Decimal = Decimal("2")


class RiskLimitsOverride(_Cfg):
    """[risk.strategies.<name>] / [risk.symbols.<symbol>]: any limit of [risk]; unset inherits."""

    max_notional_per_order: Decimal | None = None
    max_position_qty: Decimal | None = None
    max_position_notional: Decimal | None = None
    max_concentration_pct: Decimal | None = None
    max_orders_per_window_per_strategy: int | None = None
    price_collar_pct: Decimal | None = None
    stale_market_data_s: float | None = None
    daily_loss_limit: Decimal | None = None
    max_drawdown_pct: Decimal | None = None


class VenueSymbolRules(_Cfg):
    """[risk.venue_rules.<venue>.<symbol>] until venue metadata arrives: 0 means unchecked."""

    min_notional: Decimal = Decimal(0)
    qty_step: Decimal = Decimal(0)
    price_tick: Decimal = Decimal(0)


class BreakerConfig(_Cfg):
    """[risk.breakers]: auto-halts, latched. 0 / empty disables a breaker."""

    daily_loss_limit: Decimal = Decimal(0)  # quote currency; trips when daily P&L <= -limit
    max_drawdown_pct: Decimal = Decimal(0)
    consecutive_rejects: int = 0
    recon_drift_mismatches: int = 0  # trips when a ReconReport has at least this many
    heartbeat_services: list[str] = []  # e.g. ["execution-gateway", "position-ledger"]
    heartbeat_timeout_s: float = 15.0
    heartbeat_check_interval_s: float = 1.0
    cooldown_s: float = 300.0
    auto_resume: bool = False  # after the cooldown; otherwise an operator resumes
    max_event_age_s: float = 300.0  # older snapshots/rejects/reports (a replay) trip nothing
    venue_latency_ms: int = 2000  # submitted -> accepted round trip, from order events
    venue_latency_consecutive: int = 0  # trips after this many slow orders in a row (0: off)
    # Open positions whose returns move together (direction-adjusted) over the limit trip.
    correlation_window: int = 0  # returns compared per pair (0: off; 30 is a sensible start)
    correlation_limit: Decimal = Decimal("0.7")
    correlation_sample_s: float = 60.0  # one return per symbol per this many seconds of ticks
    # Halt when a venue's own circuit breaker opens (N consecutive failed venue calls, E3).
    venue_errors: bool = False


class ProtectionConfig(_Cfg):
    """[risk.protections]: entry locks after losing exits (Freqtrade's sense). 0 / None = off."""

    stoploss_guard_trades: int = 0  # N losing exits within the window lock all entries
    stoploss_guard_window_s: float = 3600.0
    stoploss_guard_lock_s: float = 1800.0
    cooldown_after_loss_s: float = 0.0  # per symbol, after one losing exit
    low_profit_threshold: Decimal | None = None  # quote currency, realized over the window
    low_profit_window_s: float = 86400.0
    low_profit_lock_s: float = 3600.0


class ModeConfig(_Cfg):
    """[risk.modes] (R8): what paper -> live needs, over the record since the last mode change."""

    min_trades: int = 10
    min_win_rate_pct: Decimal = Decimal("45")
    min_sharpe: Decimal = Decimal("0.5")  # per-trade P&L mean / standard deviation
    max_drawdown_pct: Decimal = Decimal("15")


def _stage_risk() -> list[Decimal]:
    return [Decimal("0.1"), Decimal("0.25"), Decimal("0.5"), Decimal("1")]


def _stage_exposure() -> list[Decimal]:
    return [Decimal("2"), Decimal("4"), Decimal("6"), Decimal("10")]


class StageConfig(_Cfg):
    """[risk.stages] (R9): progressive risk. Stage i allows risk_per_trade_pct[i] per trade and
    gross exposure up to max_exposure_pct[i] of equity (checked only when enforce = true)."""

    risk_per_trade_pct: list[Decimal] = msgspec.field(default_factory=_stage_risk)
    max_exposure_pct: list[Decimal] = msgspec.field(default_factory=_stage_exposure)
    profitable_days_to_step_up: int = 5
    enforce_exposure: bool = False


class RiskConfig(_Cfg):
    max_notional_per_order: Decimal = Decimal("50000")
    account: str = "default"  # whose LedgerSnapshot the gate reads
    # Limits left None are off; the ones needing the ledger deny LEDGER_VIEW_MISSING when on
    # and no snapshot was seen (fail closed).
    max_position_qty: Decimal | None = None
    max_position_notional: Decimal | None = None
    max_gross_exposure: Decimal | None = None
    max_concentration_pct: Decimal | None = None
    check_buying_power: bool = False
    max_leverage: Decimal | None = None
    max_open_orders: int | None = 500
    max_open_positions: int | None = None
    rate_window_s: float = 1.0
    max_orders_per_window: int = 200
    max_orders_per_window_per_strategy: int = 100
    price_collar_pct: Decimal = Decimal("10")
    stale_market_data_s: float = 30.0
    # Fail closed: with no tick at all nobody can sanity-check a limit price either.
    deny_without_market_data: bool = True
    daily_loss_limit: Decimal | None = None
    max_drawdown_pct: Decimal | None = None
    strategies: dict[str, RiskLimitsOverride] = {}
    symbols: dict[str, RiskLimitsOverride] = {}
    venue_rules: dict[str, dict[str, VenueSymbolRules]] = {}
    breakers: BreakerConfig = BreakerConfig()
    protections: ProtectionConfig = ProtectionConfig()
    modes: ModeConfig = ModeConfig()
    stages: StageConfig = StageConfig()


class AccountConfig(_Cfg):
    starting_cash: Decimal = Decimal("100000")  # in the quote currency


class LedgerConfig(_Cfg):
    default_starting_cash: Decimal = Decimal("100000")  # accounts without [accounts.<name>]
    snapshot_interval_s: float = 5.0  # a LedgerSnapshot at least this often
    snapshot_min_interval_ms: int = 1000  # and on change, at most this often
    day_timezone: str = "UTC"  # daily P&L: the day starts at day_start_hour in this zone
    day_start_hour: int = 0
    # Starting cash: "config" ([accounts.<name>] starting_cash) or "venue" (fixed by the first
    # balance of cash_currency the reconciler reports for the account; config until then).
    cash_source: str = "config"
    cash_currency: str = "USDT"


class ReconcilerConfig(_Cfg):
    """[reconciler] (C1-C4, B7): docs/reconciliation.md and docs/audit.md."""

    # C1: when true the risk-gate approves new orders only once a run is clean or accepted
    # (a missing gate key counts as RECONCILING). Off by default so a bare risk-gate (tests,
    # a first try) trades; turn it on for anything that reaches a real venue.
    startup_gate: bool = False
    open_orders_interval_s: float = 30.0  # 0: no periodic open-order runs
    positions_interval_s: float = 300.0  # positions, balances and trades; 0: off
    position_tolerance: Decimal = Decimal("0")  # base units, per symbol
    balance_tolerance: Decimal = Decimal("0.00000001")  # per currency
    drift_action: str = "halt"  # alert | reduce | halt: what unresolved drift does
    drift_min_discrepancies: int = 1  # position/balance drifts needed to act
    external_orders: str = "adopt"  # adopt (track, alert) | cancel (cancel, alert)
    unknown_order_grace_s: float = 60.0  # journal `submitting` younger than this: in flight
    trades_overlap_s: float = 300.0  # each trade check looks back this far past the checkpoint
    venue_timeout_s: float = 5.0
    end_of_day_utc: str = ""  # "HH:MM": daily report as JSON and CSV; "": off
    report_dir: str = "reports"
    audit_checkpoint_interval_s: float = 60.0  # 0: no checkpoints
    audit_checkpoint_every_msgs: int = 10000  # also after this many messages


class TelemetryConfig(_Cfg):
    log_level: str = "INFO"
    log_format: str = "json"  # json | text
    traces_exporter: str = "none"  # none | console | otlp | file
    prometheus_port: int = 0  # 0: no /metrics endpoint; compose sets one per service
    # OTLP/HTTP traces endpoint (traces_exporter = "otlp"), e.g. http://otel-collector:4318/v1/traces
    otlp_endpoint: str = ""
    traces_file: str = ""  # traces_exporter = "file": one JSON line per span (debugging, tests)
    prometheus_host: str = "0.0.0.0"  # the /metrics listen address
    metrics_sample_interval_s: float = 5.0  # how often consumer lag is sampled


class RuntimeConfig(_Cfg):
    heartbeat_interval_s: float = 5.0
    heartbeat_ttl_s: int = 30
    drain_timeout_s: float = 10.0


class FeedConfig(_Cfg):
    enabled: bool = True
    venue: str = "paper"
    seed: int = 7
    interval_ms: int = 500
    volatility_bps: Decimal = Decimal("5")
    start_prices: dict[str, Decimal] = msgspec.field(
        default_factory=lambda: {"BTC/USDT": Decimal("50000"), "ETH/USDT": Decimal("3000")}
    )
    # E8: "random" (the seeded walk above) or "replay" (the bundled sample ticks, re-stamped
    # to now, at `speed` x real time; 0 = as fast as possible), looping when replay_loop.
    source: str = "random"
    speed: float = 1.0
    replay_loop: bool = True


class ExecutionTimeouts(_Cfg):
    """[execution.strategies.<name>]: a strategy's own timeouts; unset inherits [execution]."""

    order_ttl_s: float | None = None
    unfilled_timeout_s: float | None = None


class ExecutionConfig(_Cfg):
    """[execution] (E4/E7): order timeouts and the algo scheduler. 0 disables a timeout."""

    order_ttl_s: float = 0.0  # a working order (or algo parent) is canceled this long after submit
    unfilled_timeout_s: float = 0.0  # ... or this long after submit with nothing filled
    timer_interval_ms: int = 100  # how often the gateway looks for due slices and timeouts
    algo_poll_s: float = 2.0  # re-read a working algo's children at least this often
    strategies: dict[str, ExecutionTimeouts] = {}


class WebhookSinkConfig(_Cfg):
    url: str = ""  # empty (and url_env unset): the webhook sink is off
    url_env: str = "TRADEBUS_ALERT_WEBHOOK_URL"  # Slack webhook URLs carry a token: prefer env
    format: str = "slack"  # slack | generic
    timeout_s: float = 5.0


class EmailSinkConfig(_Cfg):
    host: str = ""  # empty: the email sink is off
    port: int = 587
    starttls: bool = True
    username: str = ""  # empty: no login
    password_env: str = "TRADEBUS_SMTP_PASSWORD"
    password_file: str = ""
    sender: str = "tradebus@localhost"
    recipients: list[str] = []
    timeout_s: float = 10.0


class PagerDutySinkConfig(_Cfg):
    events_url: str = "https://events.pagerduty.com/v2/enqueue"
    routing_key_env: str = "TRADEBUS_PAGERDUTY_ROUTING_KEY"  # unset: the PagerDuty sink is off
    routing_key_file: str = ""
    timeout_s: float = 5.0


def _default_routes() -> dict[str, list[str]]:
    return {
        "info": ["log"],
        "warning": ["log", "webhook"],
        "error": ["log", "webhook"],
        "critical": ["log", "webhook", "email", "pagerduty"],
    }


class AlertingConfig(_Cfg):
    routes: dict[str, list[str]] = msgspec.field(default_factory=_default_routes)
    dedup_window_s: float = 300.0
    escalation_delay_s: float = 900.0
    escalation_max: int = 3
    escalation_sinks: list[str] = msgspec.field(
        default_factory=lambda: ["webhook", "email", "pagerduty"]
    )
    retry_initial_s: float = 0.5
    retry_max_s: float = 30.0
    retry_attempts: int = 8
    sink_unhealthy_after_failures: int = 3
    state_ttl_days: int = 30
    tick_interval_s: float = 1.0
    heartbeat_timeout_s: float = 15.0
    lag_threshold_msgs: int = 1000
    lag_check_interval_s: float = 5.0
    latency_window_s: float = 60.0
    latency_min_samples: int = 20
    latency_p99_threshold_ms: int = 2000
    webhook: WebhookSinkConfig = WebhookSinkConfig()
    email: EmailSinkConfig = EmailSinkConfig()
    pagerduty: PagerDutySinkConfig = PagerDutySinkConfig()


def _default_venues() -> dict[str, VenueConfig]:
    return {"paper": VenueConfig(symbols=["BTC/USDT", "ETH/USDT"])}


def _default_strategies() -> dict[str, StrategyConfig]:
    return {"demo": StrategyConfig()}


class Config(_Cfg):
    bus: BusConfig = BusConfig()
    database: DatabaseConfig = DatabaseConfig()
    venues: dict[str, VenueConfig] = msgspec.field(default_factory=_default_venues)
    strategies: dict[str, StrategyConfig] = msgspec.field(default_factory=_default_strategies)
    risk: RiskConfig = RiskConfig()
    telemetry: TelemetryConfig = TelemetryConfig()
    runtime: RuntimeConfig = RuntimeConfig()
    feed: FeedConfig = FeedConfig()
    execution: ExecutionConfig = ExecutionConfig()
    alerting: AlertingConfig = AlertingConfig()
    ledger: LedgerConfig = LedgerConfig()
    reconciler: ReconcilerConfig = ReconcilerConfig()
    accounts: dict[str, AccountConfig] = {}
    signal: SignalConfig = SignalConfig()
    example_strategy: ExampleStrategyConfig = ExampleStrategyConfig()

    def database_dsn(self) -> str:
        """The DSN: the config value, else the environment variable named by dsn_env."""
        return self.database.dsn or os.environ.get(self.database.dsn_env, "")


def _parse_env_value(raw: str) -> Any:
    """Lists and tables are TOML (`["BTC/USDT"]`); anything else stays a string and is
    converted to the key's type by msgspec, so `TRADEBUS__FEED__VENUE=2024` stays text."""
    if raw.strip()[:1] in ("[", "{"):
        try:
            return tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"environment value {raw!r} is not a TOML list/table: {e}") from e
    return raw


def env_overrides(environ: dict[str, str] | os._Environ[str]) -> dict[str, Any]:
    """TRADEBUS__A__B=x  ->  {"a": {"b": x}}."""
    tree: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        path = [p.lower() for p in name[len(ENV_PREFIX) :].split("__") if p]
        if not path:
            continue
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = _parse_env_value(raw)
    return tree


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def load_config(path: str | Path | None = None, environ: Any = None) -> Config:
    """Load the config; raise ConfigError naming the bad key or the unreadable file."""
    environ = os.environ if environ is None else environ
    path = path or environ.get(CONFIG_ENV) or None
    raw: dict[str, Any] = {}
    if path:
        try:
            raw = tomllib.loads(Path(path).read_text())
        except FileNotFoundError as e:
            raise ConfigError(f"config file not found: {path}") from e
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"config file {path} is not valid TOML: {e}") from e
        except (OSError, UnicodeDecodeError) as e:  # a directory, no permission, not UTF-8
            raise ConfigError(f"config file {path} is unreadable: {e}") from e
    raw = _merge(raw, env_overrides(environ))
    try:
        return check_finite(msgspec.convert(raw, Config, strict=False))
    except msgspec.ValidationError as e:
        raise ConfigError(f"invalid config{f' in {path}' if path else ''}: {e}") from e


_S = msgspec.structs


def check_finite(cfg: Any, path: str = "$") -> Any:
    """TOML has nan and inf, and msgspec turns "NaN" into a Decimal: a limit or a weight like
    that makes every comparison with it raise (or pass). Raise ValidationError naming the key
    (as msgspec does) for a NaN or infinite number anywhere in a config; return the config."""
    if isinstance(cfg, msgspec.Struct):
        items: Any = ((f.name, getattr(cfg, f.name)) for f in _S.fields(cfg))
    elif isinstance(cfg, dict):
        items = cfg.items()
    elif isinstance(cfg, list):
        items = enumerate(cfg)
    else:
        if isinstance(cfg, Decimal | float) and not Decimal(cfg).is_finite():
            raise msgspec.ValidationError(f"{cfg} is not a finite number - at `{path}`")
        return cfg
    for key, value in items:
        check_finite(value, f"{path}[{key}]" if isinstance(key, int) else f"{path}.{key}")
    return cfg


def config_paths(type_: type[msgspec.Struct] = Config, prefix: str = "") -> set[str]:
    """Every settable key as `section.key` (dict-valued sections as `section.*`)."""
    paths: set[str] = set()
    for field in msgspec.structs.fields(type_):
        name = f"{prefix}{field.name}"
        ftype = field.type
        if isinstance(ftype, type) and issubclass(ftype, msgspec.Struct):
            paths |= config_paths(ftype, f"{name}.")
        else:
            paths.add(name)
    return paths


def env_name(path: str) -> str:
    return ENV_PREFIX + "__".join(p.upper() for p in path.split("."))
