"""Who may publish and subscribe what: one NATS identity per service, the operator, a
read-only observer, one per strategy, the bootstrap admin and the auth monitor.

Derived from subjects.CATALOGUE (who publishes what) and each service's consumers. JetStream
reads need API subjects too; the rule is: services may read streams and create/fetch their
OWN durable consumers, never create, update, purge or delete a stream (only `admin`, which
`tradebus up` and compose's `bus-init` use to create the topology before services start).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .. import subjects as s

INBOX = "_INBOX.>"
# Stream administration: nobody but admin. Listed as explicit denies so a future allow
# pattern can never widen into them.
STREAM_ADMIN = [
    "$JS.API.STREAM.CREATE.>",
    "$JS.API.STREAM.UPDATE.>",
    "$JS.API.STREAM.DELETE.>",
    "$JS.API.STREAM.PURGE.>",
    "$JS.API.STREAM.MSG.DELETE.>",
    "$JS.API.STREAM.SNAPSHOT.>",
    "$JS.API.STREAM.RESTORE.>",
    "$JS.API.CONSUMER.DELETE.>",
]
JS_READ = [
    "$JS.API.INFO",
    "$JS.API.STREAM.INFO.>",
    "$JS.API.STREAM.NAMES",
    "$JS.API.STREAM.LIST",
    "$JS.API.STREAM.MSG.GET.>",
    "$JS.API.DIRECT.GET.>",
    "$JS.API.CONSUMER.INFO.>",
    "$JS.API.CONSUMER.NAMES.>",
    "$JS.API.CONSUMER.LIST.>",
    "$JS.FC.>",  # flow-control replies of push consumers
]
# `$JS.API.CONSUMER.CREATE.<stream>` makes an ephemeral (ordered) consumer: KV keys/watch,
# mirrors, `tradebus tail`. Caution: the server accepts a consumer NAME in that request and
# then updates an existing durable of that name, so on TRADING/MARKET it is granted only to
# identities that need it (risk-gate's mirrors, the paper venue's tick mirror in the gateway,
# the reconciler's audit, operator, observer).
# KV streams hold no durables: every service may open ephemeral consumers there.
ANY_EPHEMERAL = "$JS.API.CONSUMER.CREATE.*"


def kv_buckets() -> list[str]:
    """Every bucket subjects.py names (BUCKET_*)."""
    return sorted({v for k, v in vars(s).items() if k.startswith("BUCKET_") and isinstance(v, str)})


def ephemeral_consumers(streams: list[str]) -> list[str]:
    return [f"$JS.API.CONSUMER.CREATE.{stream}" for stream in streams]


CONTROL_ANYONE = [s.CONTROL_HALT]  # stopping must always be easy


def durable_consumer(durable: str) -> list[str]:
    """Create/update, fetch from and ack one named durable, on any stream."""
    return [
        f"$JS.API.CONSUMER.CREATE.*.{durable}",
        f"$JS.API.CONSUMER.CREATE.*.{durable}.>",
        f"$JS.API.CONSUMER.DURABLE.CREATE.*.{durable}",
        f"$JS.API.CONSUMER.MSG.NEXT.*.{durable}",
        f"$JS.ACK.*.{durable}.>",
    ]


def kv_write(bucket: str, key_prefix: str = ">") -> list[str]:
    return [f"$KV.{bucket}.{key_prefix}"]


@dataclass(frozen=True)
class Identity:
    name: str
    description: str
    pub: list[str]
    sub: list[str]
    pub_deny: list[str] = field(default_factory=list)
    respond: bool = False  # may reply to requests it received (RPC responders)


@dataclass(frozen=True)
class ServiceGrant:
    """What subjects.CATALOGUE cannot say about a service: its durables, the KV buckets (or
    `bucket.key-prefix.>`) it writes, and subjects it publishes outside the catalogue."""

    durables: list[str]
    kv_writes: list[str] = field(default_factory=list)
    extra_publishes: list[str] = field(default_factory=list)
    extra_requests: list[str] = field(default_factory=list)
    ephemeral_on: list[str] = field(default_factory=list)  # TRADING/MARKET ordered consumers


SERVICES: dict[str, ServiceGrant] = {
    "signal": ServiceGrant(
        durables=["signal", "signal-runs", "signal-positions", "signal-md"],
        kv_writes=[s.BUCKET_DEDUP, s.BUCKET_STRATEGY_RUNS, s.BUCKET_EXITS],
        extra_publishes=[s.DENIED_ALL],
    ),
    "risk-gate": ServiceGrant(
        durables=["risk-gate", "risk-gate-monitor"],
        ephemeral_on=[s.STREAM_MARKET, s.STREAM_TRADING],  # the market/snapshot mirrors
        kv_writes=[
            s.BUCKET_CONTROL,
            s.BUCKET_DEDUP,
            s.BUCKET_RISK_ORDERS,
            s.BUCKET_RISK_PROTECTIONS,
        ],
    ),
    "execution-gateway": ServiceGrant(
        durables=["execution-gateway", "execution-gateway-md"],
        ephemeral_on=[s.STREAM_MARKET],  # the paper venue's last-tick mirror
        # execution_state: algo parents, resting-order timers, modify progress (E5, E7)
        kv_writes=[
            s.BUCKET_ORDER_JOURNAL,
            s.BUCKET_PAPER_VENUE,
            s.BUCKET_DEDUP,
            s.BUCKET_EXECUTION,
        ],
    ),
    "position-ledger": ServiceGrant(
        durables=["position-ledger", "position-ledger-md", "position-ledger-recon"]
    ),
    "reconciler": ServiceGrant(
        durables=["reconciler"],
        ephemeral_on=[s.STREAM_TRADING],  # the audit hash chain reads the stream
        kv_writes=[f"{s.BUCKET_CONTROL}.reconcile.>"],  # the C1 startup gate key
        extra_requests=["rpc.ledger.>"],
    ),
    # alerting re-publishes escalations of alerts from any source
    "alerting": ServiceGrant(
        durables=["alerting"], kv_writes=[s.BUCKET_ALERTS], extra_publishes=[s.ALERT_ALL]
    ),
    "demo-feed": ServiceGrant(durables=[]),
    # S6's SMA example runs on the service runtime; it publishes the signals of ONE strategy
    # ([example_strategy] strategy), added by service_identity.
    "example-strategy": ServiceGrant(durables=["example-strategy", "example-strategy-fills"]),
}
SERVICE_IDENTITIES = tuple(SERVICES)
MONITOR_SOURCE = "nats-auth"  # Alert.source of permission-violation alerts
# Catalogue publisher labels that name a process other than their first word.
_LABEL_ALIASES = {"execution-gateway (demo feed)": "demo-feed"}


def wildcard(pattern: str) -> str:
    """A catalogue pattern as a NATS subject filter: `trading.fill.<venue>.<symbol>` ->
    `trading.fill.*.*`."""
    return ".".join("*" if t.startswith("<") else t for t in pattern.split("."))


def _is(label: str, service: str) -> bool:
    alias = _LABEL_ALIASES.get(label)
    if alias is not None:
        return alias == service
    return label == service or label.startswith(f"{service} ")


def catalogue_grants(service: str) -> tuple[list[str], list[str], list[str]]:
    """(publishes, serves, requests) of a service according to subjects.CATALOGUE. Alerts and
    dead letters ("all services") are granted per source separately."""
    pub, serves, requests = [], [], []
    for spec in s.CATALOGUE:
        subject = wildcard(spec.pattern)
        publishes = any(_is(p, service) for p in spec.publishers)
        consumes = any(_is(c, service) for c in spec.consumers)
        if spec.stream is None:  # core request/reply
            if publishes:
                requests.append(subject)
            if consumes:
                serves.append(subject)
        elif publishes:
            pub.append(subject)
    return pub, serves, requests


def service_identity(name: str, example_strategy: str = "demo") -> Identity:
    g = SERVICES[name]
    tok = s.token(name)
    pub, serves, requests = catalogue_grants(name)
    if name == "example-strategy":
        pub.append(s.signal(example_strategy))
    allow = [
        *pub,
        *g.extra_publishes,
        *CONTROL_ANYONE,
        f"trading.alert.*.{tok}",
        s.deadletter(name),
        *JS_READ,
        *ephemeral_consumers([f"KV_{b}" for b in kv_buckets()] + g.ephemeral_on),
        *[p for d in g.durables for p in durable_consumer(d)],
        *kv_write(s.BUCKET_HEALTH, f"{tok}.>"),  # its own heartbeat key only
        *[f"$KV.{w}" if "." in w else f"$KV.{w}.>" for w in g.kv_writes],
        *requests,
        *g.extra_requests,
    ]
    return Identity(
        name=name,
        description=f"the {name} service",
        pub=_unique(allow),
        sub=_unique([INBOX, *serves]),
        pub_deny=STREAM_ADMIN,
        respond=bool(serves),
    )


def operator_identity() -> Identity:
    """A human with every operational right (control, signals, queries), no stream admin."""
    return Identity(
        name="operator",
        description="operator: halt/resume/mode/accept, queries, reads",
        pub=[
            s.CONTROL_ALL,
            s.SIGNAL_ALL,
            s.ORDER_CANCEL,  # `tradebus order cancel|modify`
            s.ORDER_MODIFY,
            "rpc.>",
            "$KV.>",
            *JS_READ,
            "$JS.API.CONSUMER.CREATE.>",  # includes ANY_EPHEMERAL
            "$JS.API.CONSUMER.DURABLE.CREATE.>",
            "$JS.API.CONSUMER.MSG.NEXT.>",
            "$JS.ACK.>",
        ],
        sub=[INBOX, s.TRADING_ALL, s.MARKET_ALL],
        pub_deny=STREAM_ADMIN,
    )


def observer_identity() -> Identity:
    """Read-only dashboards and `tradebus status|tail|dash`; may still halt."""
    return Identity(
        name="observer",
        description="read-only: status, tail, dash, ledger queries; may halt",
        pub=[
            *CONTROL_ANYONE,
            s.ALERTS_RPC_STATUS,
            s.ALERTS_RPC_LIST,
            "rpc.ledger.>",
            *JS_READ,
            ANY_EPHEMERAL,  # tail, dash (see the caution above)
        ],
        sub=[INBOX, s.TRADING_ALL, s.MARKET_ALL],
        pub_deny=STREAM_ADMIN,
    )


def strategy_identity(strategy: str) -> Identity:
    return Identity(
        name=f"strategy-{s.token(strategy)}",
        description=f"strategy {strategy}: publishes only its own signals",
        pub=[s.signal(strategy), *CONTROL_ANYONE],
        # its feedback (the SDK's my_events): fills (by venue/symbol, so every strategy's),
        # its own denials and signal rejections
        sub=[INBOX, s.FILL_ALL, s.denied(strategy), s.strategy_rejected(strategy)],
        pub_deny=STREAM_ADMIN,
    )


def admin_identity() -> Identity:
    """Bootstrap only: creates streams and buckets (`tradebus up`, compose's bus-init)."""
    return Identity(
        name="admin", description="bootstrap: stream and bucket admin", pub=[">"], sub=[">"]
    )


def monitor_identity() -> Identity:
    """Turns the server's permission-violation log lines into alerts."""
    return Identity(
        name="auth-monitor",
        description="publishes permission-violation alerts",
        pub=[f"trading.alert.*.{MONITOR_SOURCE}", *CONTROL_ANYONE],
        sub=[INBOX],
        pub_deny=STREAM_ADMIN,
    )


def all_identities(strategies: list[str], example_strategy: str = "demo") -> list[Identity]:
    return [
        *(service_identity(n, example_strategy) for n in SERVICE_IDENTITIES),
        operator_identity(),
        observer_identity(),
        admin_identity(),
        monitor_identity(),
        *(strategy_identity(x) for x in strategies),
    ]


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))
