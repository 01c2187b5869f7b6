from __future__ import annotations

import logging
from typing import Any

from nats.aio.msg import Msg

from tradebus_common import subjects
from tradebus_common.bus import Subscription, ensure_kv
from tradebus_common.codec import decode, require_positive
from tradebus_common.control import control_decoder
from tradebus_common.errors import PermanentError
from tradebus_common.events import (
    AlgoProgress,
    AnyEvent,
    Fill,
    LedgerSnapshot,
    OrderAccepted,
    OrderCanceled,
    OrderExpired,
    OrderIntent,
    OrderRejected,
    OrderSubmitted,
    PositionChanged,
    ReconReport,
    VenueBreakerChanged,
    VenueLatencyObserved,
)
from tradebus_common.mirror import StreamMirror
from tradebus_common.runtime import ServiceContext, ServiceSpec

from .breakers import Breakers, CorrelationWatch, HeartbeatWatch, MonitorHandler
from .correlation import ReturnSeries
from .handlers import ControlHandler, IntentHandler, LatestFeeds, OrderFlow
from .modes import ModeHandler, ModeStore
from .orders import OpenOrderBook
from .protections import Protections, ProtectionStore
from .recon_gate import ReconGateCheck
from .state import BreakerStore, TradingStateStore
from .throttle import RateWindow

log = logging.getLogger("tradebus.risk_gate")

CONTROL_SUBJECTS = [
    subjects.CONTROL_HALT,
    subjects.CONTROL_RESUME,
    subjects.CONTROL_REDUCE,
    subjects.CONTROL_MODE,
    subjects.CONTROL_STAGE,
]
MONITOR_SUBJECTS = [
    subjects.LEDGER_SNAPSHOT_ALL,
    subjects.ORDER_EVENT_ALL,
    subjects.FILL_ALL,
    subjects.RECON_REPORT,
    subjects.POSITION_ALL,
    subjects.VENUE_LATENCY_ALL,
    subjects.VENUE_BREAKER_ALL,
]
_MONITORED = (
    AlgoProgress,
    LedgerSnapshot,
    OrderRejected,
    OrderCanceled,
    OrderExpired,
    OrderAccepted,
    OrderSubmitted,
    Fill,
    ReconReport,
    PositionChanged,
    VenueLatencyObserved,
    VenueBreakerChanged,
)


def decode_message(msg: Msg) -> Any:
    if msg.subject.startswith(subjects.CONTROL_PREFIX):
        return control_decoder(msg)
    return require_positive(decode(msg.data, OrderIntent), "quantity", "limit_price")


def decode_monitored(msg: Msg) -> Any:
    try:
        event = decode(msg.data, AnyEvent)
    except PermanentError as e:
        # Not the gate's input to judge: the subject's own consumer dead-letters it. Logged,
        # acked, and still in the stream.
        log.warning("unreadable monitored event", extra={"subject": msg.subject, "error": str(e)})
        return None
    return event if isinstance(event, _MONITORED) else None  # others: ack, nothing to do


async def build(ctx: ServiceContext) -> None:
    control_kv = await ctx.bus.kv(subjects.BUCKET_CONTROL)
    control_mirror = StreamMirror.of_bucket(ctx.bus.js, subjects.BUCKET_CONTROL, ctx.bus.reconnects)
    await control_mirror.start()
    cfg = ctx.config.risk.breakers
    series = ReturnSeries(cfg.correlation_sample_s, cfg.correlation_window)
    feeds = LatestFeeds.of(ctx.bus, series.add if cfg.correlation_window else None)
    await feeds.start()
    ctx.cleanups += [control_mirror.stop, feeds.stop]
    store = TradingStateStore(control_kv, control_mirror)
    # Fail closed: the intent consumer starts only after the latched state is read here.
    initial = await store.initialize()
    if initial is not None:
        await ctx.bus.publish(initial)
    book = OpenOrderBook(await ensure_kv(ctx.bus.js, subjects.BUCKET_RISK_ORDERS, history=1))
    await book.load()
    trips = BreakerStore(control_kv)
    modes = ModeStore(control_kv)
    locks = ProtectionStore(
        await ensure_kv(ctx.bus.js, subjects.BUCKET_RISK_PROTECTIONS, history=1)
    )
    risk = ctx.config.risk
    intents = IntentHandler(
        ctx.config,
        ctx.bus,
        store,
        book,
        await ctx.bus.kv(subjects.BUCKET_DEDUP),
        RateWindow(risk.rate_window_s),
        locks,
        modes,
        feeds,
    )
    gate_on = ctx.config.reconciler.startup_gate
    intents.recon_gate = ReconGateCheck.of_mirror(gate_on, control_mirror)  # C1
    stages = ModeHandler(modes, risk.modes, risk.stages)
    control = ControlHandler(ctx.config, store, trips, stages)
    breakers = Breakers(risk.breakers, store, trips, stages)

    flow = OrderFlow(intents, control, ctx.bus)
    ctx.subscriptions.append(
        Subscription(
            durable="risk-gate",
            filter_subjects=[subjects.INTENT_ALL, *CONTROL_SUBJECTS],
            decoder=decode_message,
            handler=flow,
            batch_handler=flow.batch,
        )
    )
    ctx.subscriptions.append(
        Subscription(
            durable="risk-gate-monitor",
            filter_subjects=MONITOR_SUBJECTS,
            decoder=decode_monitored,
            handler=MonitorHandler(breakers, book, Protections(risk.protections, locks, modes)),
        )
    )
    correlation = None
    if cfg.correlation_window:
        account = ctx.config.risk.account
        correlation = CorrelationWatch(series, lambda: feeds.snapshot(account))
    ctx.tasks.append(HeartbeatWatch(ctx.bus, breakers, correlation=correlation).run)


SPEC = ServiceSpec(name="risk-gate", build=build)
