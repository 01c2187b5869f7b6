"""Metrics through the OpenTelemetry SDK, served to Prometheus on `/metrics` per service.

Most figures come from the events a service publishes, observed once in `Bus.publish` (so no
handler needs a metrics line): fills, denials by reason, dead letters, order submit latency,
equity and P&L, open positions, the trading state, the venue circuit-breaker state. What no event carries is
sampled: consumer lag (by the runner) and open orders (`watch_open_orders`, in the gateway).

Gauges hold floats: Prometheus knows no decimals. They are for dashboards, never for accounting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import msgspec
from opentelemetry import metrics as otel_metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from prometheus_client import CollectorRegistry

from . import events as ev
from . import subjects

log = logging.getLogger("tradebus.metrics")

# Until setup() installs the SDK provider these are the API's proxies: recording is a no-op
# then, and every instrument becomes real once a provider is set.
_meter = otel_metrics.get_meter("tradebus")
LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

order_submit_latency = _meter.create_histogram(
    "tradebus_order_submit_latency",
    unit="s",
    description="Venue round trip of an order submission (create_order)",
    explicit_bucket_boundaries_advisory=LATENCY_BUCKETS_S,
)
fills = _meter.create_counter("tradebus_fills", description="Fills published")
denials = _meter.create_counter("tradebus_denials", description="Orders denied, by reason")
dead_letters = _meter.create_counter(
    "tradebus_dead_letters", description="Messages dead-lettered, by service and reason"
)
equity = _meter.create_gauge("tradebus_equity", description="Account equity (quote currency)")
pnl = _meter.create_gauge(
    "tradebus_pnl", description="P&L by kind: realized, unrealized, daily (quote currency)"
)
drawdown = _meter.create_gauge("tradebus_drawdown", description="High-water mark minus equity")
open_positions = _meter.create_gauge("tradebus_open_positions", description="Non-flat positions")
open_orders = _meter.create_gauge("tradebus_open_orders", description="Working orders per venue")
consumer_pending = _meter.create_gauge(
    "tradebus_consumer_pending", description="Messages not yet delivered to a durable consumer"
)
consumer_ack_pending = _meter.create_gauge(
    "tradebus_consumer_ack_pending", description="Messages delivered but not yet acked"
)
breaker_state = _meter.create_gauge(
    "tradebus_venue_breaker_state",
    description="Venue circuit breaker: 0 closed, 1 half-open, 2 open",
)
trading_state = _meter.create_gauge(
    "tradebus_trading_state", description="Trading state by scope: 0 active, 1 reducing, 2 halted"
)
handler_seconds = _meter.create_histogram(
    "tradebus_handler_duration",
    unit="s",
    description="Time to handle one message (or one batch), by durable consumer",
    explicit_bucket_boundaries_advisory=LATENCY_BUCKETS_S,
)

BREAKER_STATES = {"closed": 0, "half_open": 1, "half-open": 1, "open": 2}
TRADING_STATES = {
    ev.TradingState.ACTIVE: 0,
    ev.TradingState.REDUCING: 1,
    ev.TradingState.HALTED: 2,
}

# --- the provider and the endpoint -------------------------------------------------------

registry = CollectorRegistry()  # ours, not prometheus_client's global: no process metrics twice
_lock = threading.Lock()
_servers: dict[int, list[Any]] = {}  # port -> [httpd, users]


def setup(service: str) -> None:
    """Install the SDK MeterProvider with a Prometheus reader, once per process."""
    if isinstance(otel_metrics.get_meter_provider(), MeterProvider):
        return
    from opentelemetry.exporter.prometheus import PrometheusMetricReader

    # No otel_scope_* labels: every series here has one scope, and shorter queries read better.
    reader = PrometheusMetricReader(registry=registry, scope_info_enabled=False)
    provider = MeterProvider(
        resource=Resource.create({"service.name": service}), metric_readers=[reader]
    )
    otel_metrics.set_meter_provider(provider)


def serve(port: int, host: str = "0.0.0.0") -> None:
    """Serve /metrics on port. Services of one process (the in-process stack) share it."""
    from prometheus_client import start_http_server

    with _lock:
        if port in _servers:
            _servers[port][1] += 1
            return
        httpd, _ = start_http_server(port, addr=host, registry=registry)
        _servers[port] = [httpd, 1]
    log.info("metrics endpoint up", extra={"port": port, "host": host})


def release(port: int) -> None:
    """The caller stops using the endpoint; the last one shuts it down."""
    with _lock:
        entry = _servers.get(port)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] > 0:
            return
        del _servers[port]
    entry[0].shutdown()
    entry[0].server_close()


# --- what events say ---------------------------------------------------------------------


def _fill(e: ev.Fill) -> None:
    fills.add(1, {"venue": e.venue, "symbol": e.symbol, "side": e.side.value})


def _denied(e: ev.OrderDenied) -> None:
    denials.add(1, {"reason": e.reason.value, "strategy": e.strategy})


def _dead(e: ev.MessageDeadLettered) -> None:
    dead_letters.add(1, {"service": e.service, "reason": e.reason.value})


def _latency(e: ev.VenueLatencyObserved) -> None:
    if e.operation == "create_order":
        order_submit_latency.record(
            e.latency_ms / 1000, {"venue": e.venue, "ok": str(e.ok).lower()}
        )


def _snapshot(e: ev.LedgerSnapshot) -> None:
    account = {"account": e.account}
    equity.set(float(e.equity), account)
    drawdown.set(float(e.drawdown), account)
    for kind, value in (
        ("realized", e.realized_pnl),
        ("unrealized", e.unrealized_pnl),
        ("daily", e.daily_pnl),
    ):
        pnl.set(float(value), {**account, "kind": kind})
    open_positions.set(sum(1 for p in e.positions if p.quantity != 0), account)


def _state(e: ev.TradingStateChanged) -> None:
    trading_state.set(TRADING_STATES.get(e.state, -1), {"scope": e.scope})


def _breaker(e: ev.VenueBreakerChanged) -> None:
    venue_breaker_state(e.venue, e.state.value)


_OBSERVERS: dict[type, Callable[[Any], None]] = {
    ev.Fill: _fill,
    ev.OrderDenied: _denied,
    ev.MessageDeadLettered: _dead,
    ev.VenueLatencyObserved: _latency,
    ev.LedgerSnapshot: _snapshot,
    ev.TradingStateChanged: _state,
    ev.VenueBreakerChanged: _breaker,
}


def observe_published(events: Iterable[ev.Event]) -> None:
    """Count what a service has just published (called by the bus after the publish ack)."""
    for event in events:
        observer = _OBSERVERS.get(type(event))
        if observer is not None:
            try:
                observer(event)
            except Exception:  # a metric must never fail a publish that has happened
                log.exception("metric observer failed", extra={"type": type(event).__name__})


# --- what is set or sampled --------------------------------------------------------------


def venue_breaker_state(venue: str, state: str) -> None:
    """The breaker's state as a number. Set from every VenueBreakerChanged the gateway
    publishes; a breaker that publishes no event calls this itself (closed|half_open|open)."""
    breaker_state.set(BREAKER_STATES.get(state.lower(), -1), {"venue": venue})


def record_handler(durable: str, seconds: float) -> None:
    handler_seconds.record(seconds, {"durable": durable})


async def sample_consumers(
    js: Any, consumers: Sequence[tuple[str, str]], interval_s: float
) -> None:
    """Consumer lag every interval: num_pending and num_ack_pending from consumer info."""
    while True:
        for stream, durable in consumers:
            await _sample_consumer(js, stream, durable)
        await asyncio.sleep(interval_s)


async def _sample_consumer(js: Any, stream: str, durable: str) -> None:
    try:
        info = await js.consumer_info(stream, durable)
    except Exception as e:  # the server is away or the consumer is being rebuilt: next time
        _raise_if_cancelling()
        log.debug("consumer info failed", extra={"durable": durable, "error": repr(e)})
        return
    labels = {"stream": stream, "durable": durable}
    consumer_pending.set(info.num_pending or 0, labels)
    consumer_ack_pending.set(info.num_ack_pending or 0, labels)


def watch_open_orders(ctx: Any, venues: Iterable[str]) -> None:
    """Gateway hook: tradebus_open_orders per venue, every interval. Counted from the
    risk-gate's open-order book (KV `risk_orders`: approved and not yet done, what its
    MAX_OPEN_ORDERS check counts), not by asking the venues: a real exchange would spend its
    rate limit (and trip its breaker) on a gauge."""
    names = list(venues)
    interval_s = ctx.config.telemetry.metrics_sample_interval_s

    async def sample_forever() -> None:
        while True:
            counts = await _open_orders_by_venue(ctx.bus.js)
            if counts is not None:
                for venue in set(names) | counts.keys():
                    open_orders.set(counts.get(venue, 0), {"venue": venue})
            await asyncio.sleep(interval_s)

    ctx.tasks.append(sample_forever)


async def _open_orders_by_venue(js: Any) -> dict[str, int] | None:
    """Working orders per venue, or None when the book cannot be read now (keep the last)."""
    from nats.js.errors import KeyNotFoundError, NoKeysError

    counts: dict[str, int] = {}
    try:
        kv = await js.key_value(subjects.BUCKET_RISK_ORDERS)
        try:
            keys = await kv.keys()
        except NoKeysError:
            return counts
        for key in keys:
            with contextlib.suppress(KeyNotFoundError):  # done since the listing
                entry = await kv.get(key)
                venue = msgspec.json.decode(entry.value or b"{}").get("venue", "")
                counts[venue] = counts.get(venue, 0) + 1
    except Exception as e:  # no bucket yet (the risk-gate makes it), or the server is away
        _raise_if_cancelling()
        log.debug("open orders not readable", extra={"error": repr(e)})
        return None
    return counts


def _raise_if_cancelling() -> None:
    """nats-py can turn a cancellation into an ordinary error: don't swallow a shutdown."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
