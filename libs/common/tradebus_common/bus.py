"""NATS JetStream plumbing, written once: connect, topology, publish, and the consume loop."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import nats
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api
from nats.js.errors import (
    BadRequestError,
    BucketNotFoundError,
    KeyNotFoundError,
    NotFoundError,
)
from nats.js.kv import KeyValue
from opentelemetry import trace
from opentelemetry.context import Context

from . import metrics, subjects
from .codec import decode, decoder_for, encode
from .config import BusConfig
from .errors import ErrorCode, PermanentError, TransientError
from .events import Alert, AlertCode, Event, MarketTick, MessageDeadLettered, Severity
from .ids import derive_id
from .telemetry import correlation_id, extract_context, inject_headers, redact_url

log = logging.getLogger("tradebus.bus")

MSG_ID = "Nats-Msg-Id"
PUBLISH_ACK_TIMEOUT_S = 5.0
# Errors that mean "the server is away", logged without a traceback while it comes back.
NATS_OUTAGE_ERRORS = (
    TimeoutError,
    nats.errors.TimeoutError,
    nats.errors.ConnectionClosedError,
    nats.errors.NoRespondersError,
    nats.errors.ConnectionReconnectingError,
)
DEADLETTER_PAYLOAD_MAX = 64 * 1024

Decoder = Callable[[Msg], Any]


@dataclass(frozen=True)
class Delivery:
    """Where the message being handled sits in its stream (for handlers that record it)."""

    subject: str
    stream_seq: int
    deliveries: int


current_delivery: contextvars.ContextVar[Delivery | None] = contextvars.ContextVar(
    "current_delivery", default=None
)
Handler = Callable[[Any], Awaitable[Sequence[Event] | None]]


@dataclass(frozen=True)
class BatchItem:
    """One decoded message of a fetched batch, with where it sits in its stream."""

    event: Any
    delivery: Delivery
    # This message's handler span. A batch handler that publishes by itself (not by returning
    # events) wraps that item's work in `with trace.use_span(item.span):` so what it publishes
    # continues the message's trace.
    span: trace.Span | None = None


# A batch handler gets every decodable message of one fetch and returns, in the same order,
# the events to publish for each. It commits its effect for the whole batch at once (one
# transaction); the loop acks every message after that.
BatchHandler = Callable[[Sequence[BatchItem]], Awaitable[Sequence[Sequence[Event]]]]


async def connect(cfg: BusConfig, name: str) -> NATS:
    """Connect and keep reconnecting forever, logging every state change."""

    async def on_error(e: Exception) -> None:
        log.warning("nats error", extra={"error": repr(e)})

    async def on_disconnected() -> None:
        log.warning("nats disconnected")

    async def on_reconnected() -> None:
        log.info("nats reconnected", extra={"server": _server(nc)})

    async def on_closed() -> None:
        log.info("nats connection closed")

    opts: dict[str, Any] = {
        "name": name,
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": 1,
        "connect_timeout": cfg.connect_timeout_s,
        "allow_reconnect": True,
        "error_cb": on_error,
        "disconnected_cb": on_disconnected,
        "reconnected_cb": on_reconnected,
        "closed_cb": on_closed,
    }
    if cfg.creds_file:
        opts["user_credentials"] = cfg.creds_file
    if cfg.tls_ca_file:
        opts["tls"] = tls_context(cfg.tls_ca_file)
    nc = await _first_connect(cfg.url, opts)
    log.info("nats connected", extra={"server": _server(nc)})
    return nc


def tls_context(ca_file: str) -> ssl.SSLContext:
    """Verify the server against our own CA (`tradebus auth init --tls`)."""
    return ssl.create_default_context(cafile=ca_file)


async def _first_connect(url: str, opts: dict[str, Any]) -> NATS:
    """nats-py retries only after a first success; a service started before its server
    (compose, a reboot) keeps trying too, with a capped backoff."""
    delay = 0.5
    while True:
        try:
            return await nats.connect(url, **opts)
        except (OSError, nats.errors.NoServersError, nats.errors.TimeoutError) as e:
            raise_if_cancelling()
            log.warning(
                "nats not reachable yet, retrying",
                extra={"server": redact_url(url), "retry_in_s": delay, "error": repr(e)},
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)


def raise_if_cancelling() -> None:
    """nats-py can turn a task's cancellation into an ordinary error (ConnectionClosedError,
    TimeoutError). A loop that catches Exception calls this first, so shutdown still stops it."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _server(nc: NATS) -> str:
    url = nc.connected_url
    return f"{url.hostname}:{url.port}" if url else ""


# --- topology ---------------------------------------------------------------------------


def trading_stream_config(cfg: BusConfig) -> api.StreamConfig:
    return api.StreamConfig(
        name=subjects.STREAM_TRADING,
        subjects=[subjects.TRADING_ALL],
        storage=api.StorageType.FILE,
        retention=api.RetentionPolicy.LIMITS,
        max_age=cfg.trading_max_age_days * 86400,
        duplicate_window=cfg.duplicate_window_s,
        deny_delete=True,
        deny_purge=True,
        allow_direct=True,
        num_replicas=cfg.replicas,
    )


def market_stream_config(cfg: BusConfig) -> api.StreamConfig:
    return api.StreamConfig(
        name=subjects.STREAM_MARKET,
        subjects=[subjects.MARKET_ALL],
        storage=api.StorageType.FILE,
        retention=api.RetentionPolicy.LIMITS,
        max_age=cfg.market_max_age_s,
        max_msgs_per_subject=1000,
        duplicate_window=min(120, cfg.market_max_age_s),
        allow_direct=True,
        num_replicas=cfg.replicas,
    )


async def ensure_stream(js: JetStreamContext, config: api.StreamConfig) -> None:
    """Create the stream, or bring an existing one to this config. Safe to call every start."""
    try:
        await js.stream_info(config.name)  # type: ignore[arg-type]
    except NotFoundError:
        try:
            await js.add_stream(config)
            log.info("stream created", extra={"stream": config.name})
            return
        except BadRequestError:  # created concurrently by another service
            pass
    await js.update_stream(config)


KV_BUCKETS: dict[str, dict[str, Any]] = {
    subjects.BUCKET_CONTROL: {"history": 16},
    subjects.BUCKET_ORDER_JOURNAL: {"history": 8},
    subjects.BUCKET_PAPER_VENUE: {"history": 1},
    subjects.BUCKET_DEDUP: {"history": 1},
    subjects.BUCKET_STRATEGY_RUNS: {"history": 8},
    subjects.BUCKET_EXITS: {"history": 4},
    subjects.BUCKET_EXECUTION: {"history": 4},
}


async def get_struct(kv: KeyValue, key: str, type_: Any) -> Any | None:
    """A KV value decoded as `type_`, or None when the key is absent (or holds nothing)."""
    try:
        entry = await kv.get(key)
    except KeyNotFoundError:
        return None
    return decoder_for(type_).decode(entry.value) if entry.value else None


async def ensure_kv(js: JetStreamContext, bucket: str, **params: Any) -> KeyValue:
    try:
        return await js.key_value(bucket)
    except (BucketNotFoundError, NotFoundError):
        return await js.create_key_value(bucket=bucket, storage=api.StorageType.FILE, **params)


async def ensure_health_bucket(js: JetStreamContext, ttl_s: int, replicas: int) -> None:
    """The health bucket's TTL is its stream's max_age; keep it in step with the config."""
    await ensure_kv(js, subjects.BUCKET_HEALTH, history=1, ttl=ttl_s, replicas=replicas)
    info = await js.stream_info(f"KV_{subjects.BUCKET_HEALTH}")
    if info.config.max_age != ttl_s:
        info.config.max_age = ttl_s
        info.config.duplicate_window = min(ttl_s, 120)
        await js.update_stream(info.config)


async def ensure_topology(js: JetStreamContext, cfg: BusConfig, heartbeat_ttl_s: int) -> None:
    await ensure_stream(js, trading_stream_config(cfg))
    await ensure_stream(js, market_stream_config(cfg))
    for bucket, params in KV_BUCKETS.items():
        await ensure_kv(js, bucket, replicas=cfg.replicas, **params)
    await ensure_health_bucket(js, heartbeat_ttl_s, cfg.replicas)


def topology_streams() -> list[str]:
    """The streams ensure_topology creates (a KV bucket is stream KV_<bucket>)."""
    buckets = [*KV_BUCKETS, subjects.BUCKET_HEALTH]
    return [subjects.STREAM_TRADING, subjects.STREAM_MARKET, *(f"KV_{b}" for b in buckets)]


async def wait_for_topology(js: JetStreamContext, retry_s: float = 1.0) -> None:
    """With auth on a service may not create streams (bus.manage_topology = false): wait
    until the admin has (`tradebus up`, compose's bus-init), checking, never changing them."""
    for name in topology_streams():
        while True:
            try:
                await js.stream_info(name)
                break
            except NotFoundError:
                raise_if_cancelling()
                log.warning(
                    "stream missing; waiting for the admin to create it (tradebus auth bootstrap)",
                    extra={"stream": name},
                )
                await asyncio.sleep(retry_s)


# --- publishing -------------------------------------------------------------------------


class Bus:
    """A connected service's view of the bus. Publishing always sets Nats-Msg-Id = event.id."""

    def __init__(self, nc: NATS, cfg: BusConfig, service: str) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self.cfg = cfg
        self.service = service
        self._kv: dict[str, KeyValue] = {}

    def reconnects(self) -> int:
        """How many times the connection has been re-established (caches compare it)."""
        return int(self.nc.stats["reconnects"])

    async def publish(self, event: Event, subject: str | None = None) -> api.PubAck:
        headers = inject_headers({MSG_ID: event.id})
        subject = subject or subjects.subject_for(event)
        try:
            ack = await self.js.publish(subject, encode(event), headers=headers)
        except (
            nats.errors.TimeoutError,
            nats.errors.NoRespondersError,
            nats.errors.ConnectionClosedError,
        ) as e:
            raise TransientError(f"publish to {subject} failed: {e!r}") from e
        metrics.observe_published((event,))
        return ack

    async def publish_all(
        self, events: Sequence[Event], parents: Sequence[Context | None] | None = None
    ) -> None:
        """Publish in order, pipelined: every message is sent before any ack is awaited, so
        n events cost one round trip, not n. One connection keeps their order on the wire.
        Any missing ack raises TransientError: a retry republishes the same ids, and the
        stream drops the copies of those that did land. `parents` gives each event the trace
        context it continues (a batch's outputs each follow their own input's trace)."""
        if len(events) <= 1 and parents is None:
            for event in events:
                await self.publish(event)
            return
        pending: list[asyncio.Future[api.PubAck]] = []
        try:
            for i, event in enumerate(events):
                headers = inject_headers({MSG_ID: event.id}, parents[i] if parents else None)
                subject = subjects.subject_for(event)
                pending.append(await self.js.publish_async(subject, encode(event), headers=headers))
            await asyncio.wait_for(asyncio.gather(*pending), PUBLISH_ACK_TIMEOUT_S)
        except (TimeoutError, nats.errors.Error) as e:
            for fut in pending:
                fut.cancel()
            raise TransientError(f"publishing {len(events)} events failed: {e!r}") from e
        metrics.observe_published(events)

    async def last_tick(self, venue: str, symbol: str) -> MarketTick | None:
        """The newest tick on md.<venue>.<symbol>, or None if there is none (or it is unreadable)."""
        found = await self.last_event(
            subjects.STREAM_MARKET, subjects.market(venue, symbol), MarketTick
        )
        return found[0] if found else None

    async def last_event(self, stream: str, subject: str, type_: Any) -> tuple[Any, int] | None:
        """The newest message on a subject, decoded, with its stream sequence; None when there
        is none or it is unreadable (callers fail closed on None). A lookup that fails is a
        TransientError, so the message that needed it is retried."""
        try:
            raw = await self.js.get_last_msg(stream, subject)
        except NotFoundError:
            return None
        except nats.errors.Error as e:
            raise TransientError(f"lookup of the last {subject} failed: {e!r}") from e
        try:
            return decode(raw.data or b"", type_), raw.seq or 0
        except PermanentError:
            log.warning("unreadable last message", extra={"subject": subject})
            return None

    async def kv(self, bucket: str) -> KeyValue:
        if bucket not in self._kv:
            self._kv[bucket] = await self.js.key_value(bucket)
        return self._kv[bucket]

    async def alert(
        self,
        severity: Severity,
        code: AlertCode,
        message: str,
        correlation: str = "",
        **context: Any,
    ) -> None:
        await self.publish(
            Alert(
                severity=severity,
                source=self.service,
                code=code,
                message=message,
                context=context,
                correlation_id=correlation,
                dedup_key=f"{self.service}:{code}",
            )
        )


# --- consuming --------------------------------------------------------------------------


@dataclass
class Subscription:
    """One durable pull consumer: what it reads, how to decode it, and the handler."""

    durable: str
    filter_subjects: list[str]
    decoder: Decoder
    handler: Handler
    stream: str = subjects.STREAM_TRADING
    max_deliver: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # Optional: handle a whole fetch at once. If it raises, the batch falls back to `handler`
    # one message at a time, so one poison message is dead-lettered alone and cannot block
    # the rest. Both must therefore be idempotent (they are: the same effect twice is a no-op).
    batch_handler: BatchHandler | None = None
    fetch_batch: int | None = None  # most messages per fetch; None: [bus] fetch_batch


def typed_decoder(type_: Any) -> Decoder:
    """A decoder for one event type (or Union), built once."""
    return lambda msg: decode(msg.data, type_)


def consumer_config(sub: Subscription, cfg: BusConfig) -> api.ConsumerConfig:
    return api.ConsumerConfig(
        name=sub.durable,
        durable_name=sub.durable,
        filter_subjects=sub.filter_subjects,
        ack_policy=api.AckPolicy.EXPLICIT,
        deliver_policy=api.DeliverPolicy.ALL,
        ack_wait=cfg.ack_wait_s,
        max_deliver=sub.max_deliver or cfg.max_deliver,
        max_ack_pending=1000,
    )


class ConsumeLoop:
    """fetch a batch -> decode -> handler -> publish outputs -> ack. Nothing is dropped:

    * decode/validation failure or PermanentError: dead-letter + alert, then term;
    * any other error: nak with a delay, until the last delivery, which dead-letters.
    """

    def __init__(self, bus: Bus, sub: Subscription, tracer: trace.Tracer) -> None:
        self.bus = bus
        self.sub = sub
        self.tracer = tracer
        self.cfg = bus.cfg
        self.max_deliver = sub.max_deliver or self.cfg.max_deliver
        self._psub: JetStreamContext.PullSubscription | None = None
        self._stopping = asyncio.Event()
        self._reconnects_seen = 0
        self._psub_stale = False
        self.processed = 0

    async def ensure_consumer(self) -> None:
        """Create (or update) the durable and bind a fresh pull subscription to it."""
        await self.bus.js.add_consumer(self.sub.stream, consumer_config(self.sub, self.cfg))
        old, self._psub = self._psub, None
        if old is not None:
            with contextlib.suppress(Exception):
                await old.unsubscribe()
        self._psub = await self.bus.js.pull_subscribe_bind(self.sub.durable, stream=self.sub.stream)
        self._reconnects_seen = self.bus.nc.stats["reconnects"]

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.iterate()
            except Exception as e:  # the loop itself must never die: back off, rebind, go on
                raise_if_cancelling()
                log.warning(
                    "consume loop error; retrying",
                    extra={"durable": self.sub.durable, "error": repr(e)},
                    exc_info=not isinstance(e, NATS_OUTAGE_ERRORS),
                )
                self._psub_stale = True
                await asyncio.sleep(self.cfg.nak_delay_s)
        if self._psub is not None:
            with contextlib.suppress(Exception):
                await self._psub.unsubscribe()

    async def iterate(self) -> None:
        # A pull subscription can go quiet after a server restart (nats.py #504): rebind.
        if self._psub is None or self._psub_stale or self._reconnected():
            await self.ensure_consumer()
            self._psub_stale = False
        assert self._psub is not None
        msgs = await self._fetch()
        if not msgs:
            return
        if self.sub.batch_handler is not None and len(msgs) > 1:
            await self.process_batch(msgs)
            return
        for msg in msgs:
            await self.process(msg)

    async def _fetch(self) -> list[Msg]:
        """Wait for one message, then take what is already pending, up to a batch.

        A plain fetch(batch) keeps its pull open until the batch fills or the timeout passes,
        so at a trickle every message would wait for the ones after it. The first message's
        num_pending says how many more are there now; asking for exactly those returns at once.
        """
        assert self._psub is not None
        try:
            msgs = await self._psub.fetch(1, timeout=self.cfg.fetch_timeout_s)
        except (nats.errors.TimeoutError, TimeoutError):  # nothing to fetch: the normal case
            return []
        pending = msgs[-1].metadata.num_pending if msgs else 0
        if pending:
            with contextlib.suppress(nats.errors.TimeoutError, TimeoutError):
                more = min(pending, (self.sub.fetch_batch or self.cfg.fetch_batch) - 1)
                msgs += await self._psub.fetch(more, timeout=self.cfg.fetch_timeout_s)
        return msgs

    def _reconnected(self) -> bool:
        return self.bus.nc.stats["reconnects"] != self._reconnects_seen

    def _span(self, msg: Msg) -> trace.Span:
        """A span per handled message, child of the span that published it (W3C headers)."""
        meta = msg.metadata
        return self.tracer.start_span(
            f"consume {self.sub.durable}",
            context=extract_context(msg.headers),
            kind=trace.SpanKind.CONSUMER,
            attributes={
                "tradebus.service": self.bus.service,
                "messaging.system": "nats",
                "messaging.destination.name": msg.subject,
                "messaging.consumer.group.name": self.sub.durable,
                "messaging.message.id": message_id(msg),
                "tradebus.stream_seq": meta.sequence.stream,
                "tradebus.deliveries": meta.num_delivered,
            },
        )

    async def process(self, msg: Msg) -> None:
        started = time.perf_counter()
        with trace.use_span(self._span(msg), end_on_exit=True):
            try:
                event = self.sub.decoder(msg)
            except PermanentError as e:
                await self._dead_letter(msg, e.code, str(e))
                return
            except Exception as e:  # a decoder bug is still the message's verdict
                await self._dead_letter(msg, ErrorCode.SCHEMA_VIOLATION, repr(e))
                return
            if event is None:  # the decoder says: nothing to do (e.g. a foreign message)
                await msg.ack()
                return
            _describe_span(trace.get_current_span(), event)
            await self._handle(msg, event)
        metrics.record_handler(self.sub.durable, time.perf_counter() - started)

    async def process_batch(self, msgs: list[Msg]) -> None:
        """Decode each (bad ones dead-letter alone), hand the rest to the batch handler, publish
        its outputs, then ack each. Any failure of the batch: redo it one message at a time."""
        assert self.sub.batch_handler is not None
        started = time.perf_counter()
        decoded = [(msg, ev) for msg in msgs if (ev := await self._decode(msg)) is not None]
        if not decoded:
            return
        # One span per message, each in its own trace; each output continues its input's.
        spans = [self._span(msg) for msg, _ in decoded]
        for span in spans:
            span.set_attribute("tradebus.batch_size", len(decoded))
        try:
            items = [
                BatchItem(ev, _delivery(msg), span)
                for (msg, ev), span in zip(decoded, spans, strict=True)
            ]
            try:
                outputs = await self.sub.batch_handler(items)
                ordered, parents = [], []
                for (_, event), outs, span in zip(decoded, outputs, spans, strict=True):
                    for out in outs:
                        _link(out, event)
                        ordered.append(out)
                        parents.append(trace.set_span_in_context(span))
                await self.bus.publish_all(ordered, parents)
            except Exception as e:
                log.warning(
                    "batch failed; processing its messages one by one",
                    extra={"durable": self.sub.durable, "size": len(items), "error": repr(e)},
                )
                for (msg, event), span in zip(decoded, spans, strict=True):
                    with trace.use_span(span):
                        await self._handle(msg, event)
                return
        finally:
            for span, (_, event) in zip(spans, decoded, strict=True):
                _describe_span(span, event)
                span.end()
        for msg, _ in decoded:
            await msg.ack()
            self.processed += 1
        metrics.record_handler(self.sub.durable, time.perf_counter() - started)

    async def _decode(self, msg: Msg) -> Any:
        """The decoded event, or None once the message is settled (dead-lettered or acked)."""
        try:
            event = self.sub.decoder(msg)
        except PermanentError as e:
            await self._dead_letter(msg, e.code, str(e))
            return None
        except Exception as e:
            await self._dead_letter(msg, ErrorCode.SCHEMA_VIOLATION, repr(e))
            return None
        if event is None:
            await msg.ack()
        return event

    async def _handle(self, msg: Msg, event: Any) -> None:
        token = correlation_id.set(getattr(event, "correlation_id", "") or getattr(event, "id", ""))
        current_delivery.set(_delivery(msg))
        try:
            outputs = list(await self.sub.handler(event) or ())
            for out in outputs:
                _link(out, event)
            await self.bus.publish_all(outputs)
        except PermanentError as e:
            await self._dead_letter(msg, e.code, str(e))
            return
        except Exception as e:
            await self._retry_or_dead_letter(msg, e)
            return
        finally:
            correlation_id.reset(token)
        await msg.ack()
        self.processed += 1

    async def _retry_or_dead_letter(self, msg: Msg, error: Exception) -> None:
        deliveries = msg.metadata.num_delivered
        if deliveries >= self.max_deliver:
            await self._dead_letter(msg, ErrorCode.MAX_DELIVERIES, repr(error))
            return
        log.warning(
            "handler failed, will retry",
            extra={
                "durable": self.sub.durable,
                "subject": msg.subject,
                "deliveries": deliveries,
                "error": repr(error),
            },
        )
        await msg.nak(delay=self.cfg.nak_delay_s * deliveries)

    async def _dead_letter(self, msg: Msg, reason: ErrorCode, error: str) -> None:
        meta = msg.metadata
        dead = MessageDeadLettered(
            service=self.bus.service,
            reason=reason,
            error=error[:2000],
            subject=msg.subject,
            stream_seq=meta.sequence.stream,
            deliveries=meta.num_delivered,
            payload=msg.data[:DEADLETTER_PAYLOAD_MAX].decode("utf-8", errors="backslashreplace"),
            headers={k: v for k, v in (msg.headers or {}).items() if isinstance(v, str)},
        )
        # Derived id: a redelivered poison message dead-letters once (stream dedup).
        dead.id = _seq_id(self.sub.stream, self.sub.durable, meta.sequence.stream, "dead")
        log.error(
            "message dead-lettered",
            extra={
                "durable": self.sub.durable,
                "subject": msg.subject,
                "reason": reason.value,
                "stream_seq": meta.sequence.stream,
                "error": error[:500],
            },
        )
        try:
            await self.bus.publish(dead)
            alert = Alert(
                severity=Severity.ERROR,
                source=self.bus.service,
                code=AlertCode.DEAD_LETTER,
                message=f"{reason.value}: {error[:300]}",
                causation_id=dead.id,
                context={
                    "subject": msg.subject,
                    "stream_seq": meta.sequence.stream,
                    "reason": reason.value,
                },
                dedup_key=f"{self.bus.service}:deadletter:{reason.value}",
            )
            alert.id = _seq_id(self.sub.stream, self.sub.durable, meta.sequence.stream, "alert")
            await self.bus.publish(alert)
        except Exception as e:  # the copy is not durable: keep the original for a retry
            log.error("dead-letter publish failed", extra={"error": repr(e)})
            await msg.nak(delay=self.cfg.nak_delay_s)
            return
        await msg.term()


def _describe_span(span: trace.Span, event: Any) -> None:
    """What was handled, so a trace can be found by event or correlation (signal) id."""
    span.set_attribute("tradebus.event_type", type(event).__name__)
    span.set_attribute("tradebus.event_id", getattr(event, "id", "") or "")
    span.set_attribute("tradebus.correlation_id", getattr(event, "correlation_id", "") or "")


def _delivery(msg: Msg) -> Delivery:
    meta = msg.metadata
    return Delivery(msg.subject, meta.sequence.stream, meta.num_delivered)


def _seq_id(stream: str, durable: str, seq: int, kind: str) -> str:
    return derive_id(f"{stream}:{durable}:{seq}", kind)


def message_id(msg: Msg) -> str:
    """The message's Nats-Msg-Id, else an id derived from its stream position (stable across
    redeliveries), for bodies published without one (e.g. by the `nats` CLI)."""
    given = (msg.headers or {}).get(MSG_ID)
    if given:
        return given
    meta = msg.metadata
    return derive_id(f"{meta.stream}:seq:{meta.sequence.stream}")


def link_cause(out: Event, cause: Any) -> None:
    """Derived events carry the originating signal id and the id of the event that caused them.
    (A batch handler that publishes by itself calls it, as the loop does for returned events.)"""
    if not out.causation_id:
        out.causation_id = getattr(cause, "id", "")
    if not out.correlation_id:
        out.correlation_id = getattr(cause, "correlation_id", "") or getattr(cause, "id", "")


_link = link_cause
