"""alerting: routes alerts by severity to sinks, throttles, escalates, and runs the monitors."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from functools import partial

from nats.js.errors import NotFoundError

from tradebus_common import subjects
from tradebus_common.bus import Subscription, raise_if_cancelling, typed_decoder
from tradebus_common.codec import decode
from tradebus_common.errors import PermanentError
from tradebus_common.events import Alert, Event, Heartbeat, VenueLatencyObserved, utcnow
from tradebus_common.mirror import bucket_entries
from tradebus_common.runtime import ServiceContext, ServiceSpec

from .delivery import Dispatcher
from .engine import AlertEngine
from .monitors.heartbeat import HeartbeatMonitor
from .monitors.lag import LagMonitor
from .monitors.latency import LatencyMonitor
from .rpc import AlertsRpc
from .sinks import build_sinks
from .store import AlertStore, open_bucket

log = logging.getLogger("tradebus.alerting")


async def read_heartbeats(ctx: ServiceContext) -> list[Heartbeat]:
    kv = await ctx.bus.kv(subjects.BUCKET_HEALTH)
    beats = []
    for found in (await bucket_entries(kv)).values():
        with contextlib.suppress(PermanentError):
            beats.append(decode(found.data or b"", Heartbeat))
    return beats


async def read_pending(ctx: ServiceContext) -> dict[str, int]:
    try:
        infos = await ctx.bus.js.consumers_info(subjects.STREAM_TRADING)
    except NotFoundError:
        return {}
    return {i.name: i.num_pending or 0 for i in infos}


def open_heartbeat_losses(engine: AlertEngine) -> dict[str, str]:
    prefix = "heartbeat:"
    return {
        key.removeprefix(prefix): state.alert_id
        for key, state in engine.dedup.items()
        if key.startswith(prefix)
    }


async def every(interval_s: float, what: str, step: Callable[[], Awaitable[None]]) -> None:
    """Run `step` forever; an error is logged and the next round goes on."""
    while True:
        try:
            await step()
        except Exception as e:
            raise_if_cancelling()
            log.warning("alerting %s failed", what, extra={"error": repr(e)})
        await asyncio.sleep(interval_s)


async def build(ctx: ServiceContext) -> None:
    cfg = ctx.config.alerting
    store = AlertStore(await open_bucket(ctx.bus.js, cfg.state_ttl_days, ctx.config.bus.replicas))
    sinks = build_sinks(cfg)
    dispatcher = Dispatcher(sinks, store, cfg)
    engine = AlertEngine(cfg, store, dispatcher, ctx.bus.publish)
    await engine.load()
    heartbeats = HeartbeatMonitor(cfg.heartbeat_timeout_s)
    # Losses still open from before a restart: their recovery must still resolve the page.
    heartbeats.missing = open_heartbeat_losses(engine)
    lag = LagMonitor(cfg.lag_threshold_msgs, cfg.dedup_window_s)
    latency = LatencyMonitor(
        cfg.latency_window_s, cfg.latency_min_samples, cfg.latency_p99_threshold_ms
    )
    for name, sink in sinks.items():
        if not sink.configured and any(name in r for r in cfg.routes.values()):
            log.warning("alert sink routed but not configured; it is skipped", extra={"sink": name})

    async def on_event(event: Alert | VenueLatencyObserved) -> list[Event]:
        if isinstance(event, VenueLatencyObserved):
            latency.observe(event)
        else:
            await engine.handle(event)
        return []

    async def publish_all(alerts: list[Alert]) -> None:
        for alert in alerts:
            await ctx.bus.publish(alert)

    async def tick() -> None:
        await engine.tick()
        heartbeats.observe(await read_heartbeats(ctx))
        await publish_all(heartbeats.evaluate(utcnow()) + latency.evaluate(utcnow()))

    async def check_lag() -> None:
        await publish_all(lag.evaluate(await read_pending(ctx), utcnow()))

    ctx.subscriptions.append(
        Subscription(
            durable="alerting",
            filter_subjects=[subjects.ALERT_ALL, subjects.VENUE_LATENCY_ALL],
            decoder=typed_decoder(Alert | VenueLatencyObserved),
            handler=on_event,
        )
    )
    ctx.tasks.append(partial(every, cfg.tick_interval_s, "tick", tick))
    ctx.tasks.append(partial(every, cfg.lag_check_interval_s, "lag check", check_lag))
    await serve_rpc(ctx, AlertsRpc(engine, dispatcher))
    ctx.cleanups.append(dispatcher.close)


async def serve_rpc(ctx: ServiceContext, rpc: AlertsRpc) -> None:
    routes = {
        subjects.ALERTS_RPC_LIST: rpc.list,
        subjects.ALERTS_RPC_ACK: rpc.ack,
        subjects.ALERTS_RPC_STATUS: rpc.status,
    }
    for subject, method in routes.items():

        async def on_msg(msg, method=method) -> None:  # noqa: ANN001
            await rpc.serve(msg, method)

        sub = await ctx.bus.nc.subscribe(subject, queue="alerting", cb=on_msg)
        ctx.cleanups.append(sub.unsubscribe)


SPEC = ServiceSpec(name="alerting", build=build)
