"""Circuit breakers (R5): latched auto-halts with a cooldown. The monitor handler reads ledger
snapshots, order events, fills and reconciliation reports on its own durable consumer; a
timer task watches the heartbeats in the `health` KV bucket and runs the auto-resume."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from tradebus_common import subjects
from tradebus_common.bus import Bus, raise_if_cancelling
from tradebus_common.codec import decode
from tradebus_common.config import BreakerConfig
from tradebus_common.errors import PermanentError
from tradebus_common.events import (
    AlertCode,
    AlgoProgress,
    AlgoStatus,
    ControlAction,
    Event,
    Fill,
    Heartbeat,
    LedgerSnapshot,
    OrderAccepted,
    OrderCanceled,
    OrderExpired,
    OrderRejected,
    OrderSubmitted,
    PositionChanged,
    ReconReport,
    Severity,
    TradingState,
    VenueBreakerChanged,
    VenueBreakerState,
    VenueLatencyObserved,
)
from tradebus_common.ids import derive_id
from tradebus_common.mirror import Mirrored, StreamMirror

from .correlation import ReturnSeries, most_correlated, open_directions
from .handlers import cancel_all, state_alert, transition
from .modes import ModeHandler, mode_alert
from .orders import OpenOrderBook
from .protections import Protections
from .scopes import GLOBAL
from .state import BreakerStore, BreakerTrip, TradingStateStore, heartbeat_breaker

log = logging.getLogger("tradebus.risk_gate.breakers")
WallClock = Callable[[], float]
BREAKER_OPERATOR = "breaker:"


# --- pure trip rules (unit-tested at their boundaries) ----------------------------------


def daily_loss_tripped(snapshot: LedgerSnapshot, cfg: BreakerConfig) -> str | None:
    loss = -snapshot.daily_pnl
    if cfg.daily_loss_limit and loss > cfg.daily_loss_limit:
        return f"daily loss {loss} over {cfg.daily_loss_limit}"
    return None


def drawdown_tripped(snapshot: LedgerSnapshot, cfg: BreakerConfig) -> str | None:
    if cfg.max_drawdown_pct and snapshot.drawdown_pct > cfg.max_drawdown_pct:
        return f"drawdown {snapshot.drawdown_pct}% over {cfg.max_drawdown_pct}%"
    return None


def recon_tripped(report: ReconReport, cfg: BreakerConfig) -> str | None:
    n = len(report.mismatches)
    if cfg.recon_drift_mismatches and n >= cfg.recon_drift_mismatches:
        return f"reconciliation drift on {report.venue}: {n} mismatch(es)"
    return None


def venue_errors_tripped(event: VenueBreakerChanged, cfg: BreakerConfig) -> str | None:
    """The gateway's breaker for a venue opened: N consecutive venue calls failed."""
    if cfg.venue_errors and event.state is VenueBreakerState.OPEN:
        return f"venue {event.venue}: {event.failures} consecutive errors ({event.reason})"
    return None


def heartbeat_lost(
    newest_ts_s: float | None, since_s: float, now_s: float, timeout_s: float
) -> bool:
    """Lost when the newest heartbeat (or, if none ever, our own start) is older than timeout."""
    last = newest_ts_s if newest_ts_s is not None else since_s
    return now_s - last > timeout_s


# --- tripping and resuming --------------------------------------------------------------


class Breakers:
    def __init__(
        self,
        cfg: BreakerConfig,
        store: TradingStateStore,
        trips: BreakerStore,
        stages: ModeHandler | None = None,
        wall: WallClock = time.time,
    ) -> None:
        self.cfg = cfg
        self.store = store
        self.trips = trips
        self.stages = stages
        self.wall = wall

    async def trip(self, name: str, reason: str, cause_id: str, replay: bool = True) -> list[Event]:
        """Latch a global HALT for this breaker. A redelivery of the same cause re-emits the
        same events (same ids, deduplicated) unless `replay` is off (the timer); a breaker
        already latched by another cause stays quiet."""
        existing = await self.trips.get(name)
        if existing is not None and (existing.cause_id != cause_id or not replay):
            return []
        now = self.wall()
        await self.trips.put(
            BreakerTrip(
                name=name,
                reason=reason,
                tripped_at_s=now,
                cooldown_until_s=now + self.cfg.cooldown_s,
                cause_id=cause_id,
            )
        )
        log.error("circuit breaker tripped", extra={"breaker": name, "reason": reason})
        events = await transition(
            self.store,
            cause_id,
            GLOBAL,
            TradingState.HALTED,
            f"breaker {name}: {reason}",
            BREAKER_OPERATOR + name,
            ControlAction.HALT,
        )
        events.append(
            state_alert(cause_id, events[0], Severity.CRITICAL, AlertCode.BREAKER_TRIPPED)
        )
        events.append(cancel_all(cause_id, events[0], flatten=False))
        return events + await self._step_down(name, cause_id)

    async def _step_down(self, name: str, cause_id: str) -> list[Event]:
        """R9: a tripped breaker lowers the risk stage by one."""
        current = await self.stages.modes.stage() if self.stages else None
        if self.stages is None or current is None:
            return []
        if current.id == derive_id(cause_id, "stage"):  # a replay: already stepped down
            return [current, mode_alert(current)]
        if current.stage == 0:
            return []
        changed = await self.stages.set_stage(
            cause_id, current.stage - 1, f"breaker {name} tripped", BREAKER_OPERATOR + name
        )
        return [*changed, *(mode_alert(e) for e in changed)]

    async def auto_resume(self, still_failing: frozenset[str] = frozenset()) -> list[Event]:
        """After the cooldown, and only if configured, the halt is still the breaker's own and
        its cause is gone."""
        if not self.cfg.auto_resume:
            return []
        state = await self.store.current(GLOBAL)
        if state is None or state.state is not TradingState.HALTED:
            return []
        name = state.operator.removeprefix(BREAKER_OPERATOR)
        trip = await self.trips.get(name) if state.operator.startswith(BREAKER_OPERATOR) else None
        if trip is None or self.wall() < trip.cooldown_until_s or name in still_failing:
            return []
        await self.trips.clear(name)
        cause = f"auto-resume:{trip.cause_id}"
        events = await transition(
            self.store,
            cause,
            GLOBAL,
            TradingState.ACTIVE,
            f"cooldown over after {name}",
            "auto-resume",
            ControlAction.RESUME,
        )
        events.append(state_alert(cause, events[0], Severity.WARNING, AlertCode.TRADING_RESUMED))
        return events


class MonitorHandler:
    """Handler of the `risk-gate-monitor` durable: breakers and the open-order book."""

    def __init__(self, breakers: Breakers, book: OpenOrderBook, protections: Protections) -> None:
        self.breakers = breakers
        self.book = book
        self.protections = protections
        self.cfg = breakers.cfg
        self.consecutive_rejects = 0
        self.latency = LatencyTracker(self.cfg)

    def _fresh(self, event: Event) -> bool:
        # A new monitor consumer replays history: old facts update the book but trip nothing.
        return self.breakers.wall() - event.ts.timestamp() <= self.cfg.max_event_age_s

    async def _trip(self, name: str, reason: str | None, event: Event) -> list[Event]:
        if reason is None or not self._fresh(event):
            return []
        return await self.breakers.trip(name, reason, event.id)

    async def __call__(self, event: Any) -> list[Event]:
        match event:
            case LedgerSnapshot():
                return await self._snapshot(event)
            case OrderRejected():
                await self.book.close(event.client_order_id)
                return await self._rejected(event)
            case OrderCanceled() | OrderExpired():
                await self.book.close(event.client_order_id)
            case OrderSubmitted():
                self.latency.submitted(event)
            case OrderAccepted():
                self.consecutive_rejects = 0
                return await self._trip("venue_latency", self.latency.accepted(event), event)
            case VenueLatencyObserved():
                return await self._trip("venue_latency", self.latency.observed(event), event)
            case PositionChanged():
                if self._fresh(event):
                    return await self.protections.on_position(event)
                await self.protections.remember(event)
            case Fill():
                self.consecutive_rejects = 0
                # An algo child's fill counts against the parent the gate approved.
                order_id = event.parent_id or event.client_order_id
                await self.book.fill(order_id, event.id, event.quantity)
            case AlgoProgress() if event.status is not AlgoStatus.WORKING:
                await self.book.close(event.client_order_id)
            case ReconReport():
                return await self._trip("recon_drift", recon_tripped(event, self.cfg), event)
            case VenueBreakerChanged():
                return await self._trip(
                    "venue_errors", venue_errors_tripped(event, self.cfg), event
                )
        return []

    async def _snapshot(self, snapshot: LedgerSnapshot) -> list[Event]:
        if self.breakers.stages is not None:
            await self.breakers.stages.modes.observe(snapshot)
        for name, rule in (("daily_loss", daily_loss_tripped), ("drawdown", drawdown_tripped)):
            reason = rule(snapshot, self.cfg)
            if reason:
                return await self._trip(name, reason, snapshot)
        return []

    async def _rejected(self, event: OrderRejected) -> list[Event]:
        self.consecutive_rejects += 1
        limit = self.cfg.consecutive_rejects
        if limit and self.consecutive_rejects >= limit:
            reason = f"{self.consecutive_rejects} consecutive rejects (last: {event.reason.value})"
            return await self._trip("consecutive_rejects", reason, event)
        return []


class LatencyTracker:
    """Venue round trips from order events (submitted -> accepted) or the gateway's own
    VenueLatencyObserved: N slow ones in a row trip the breaker."""

    MAX_TRACKED = 10_000

    def __init__(self, cfg: BreakerConfig) -> None:
        self.cfg = cfg
        self.sent: dict[str, float] = {}
        self.slow_in_a_row = 0

    def submitted(self, event: OrderSubmitted) -> None:
        if len(self.sent) >= self.MAX_TRACKED:  # accepts that never come must not leak
            self.sent.pop(next(iter(self.sent)))
        self.sent[event.client_order_id] = event.ts.timestamp()

    def accepted(self, event: OrderAccepted) -> str | None:
        sent = self.sent.pop(event.client_order_id, None)
        if sent is None:
            return None
        return self._observe(event.venue, round((event.ts.timestamp() - sent) * 1000))

    def observed(self, event: VenueLatencyObserved) -> str | None:
        return self._observe(event.venue, event.latency_ms)

    def _observe(self, venue: str, latency_ms: int) -> str | None:
        n = self.cfg.venue_latency_consecutive
        if not n:
            return None
        slow = latency_ms > self.cfg.venue_latency_ms
        self.slow_in_a_row = self.slow_in_a_row + 1 if slow else 0
        if self.slow_in_a_row >= n:
            return f"{n} venue round trips over {self.cfg.venue_latency_ms} ms ({venue}: {latency_ms} ms)"
        return None


# --- the timer: heartbeats and auto-resume ----------------------------------------------


class CorrelationWatch:
    """Trips `correlation` when two open positions' returns move together over the limit.
    The series are fed by every market tick (ReturnSeries.add); the check runs on the timer."""

    def __init__(
        self, series: ReturnSeries, snapshot: Callable[[], Awaitable[LedgerSnapshot | None]]
    ) -> None:
        self.series = series
        self.snapshot = snapshot

    async def check(self, breakers: Breakers) -> list[Event]:
        directions = open_directions(await self.snapshot())
        found = most_correlated(self.series, directions, float(breakers.cfg.correlation_limit))
        if found is None:
            return []
        reason = f"{found.describe()}, over {breakers.cfg.correlation_limit}"
        cause = f"corr:{found.a}:{found.b}:{found.bucket}"
        return await breakers.trip("correlation", reason, cause, replay=False)


class HeartbeatWatch:
    def __init__(
        self,
        bus: Bus,
        breakers: Breakers,
        wall: WallClock = time.time,
        correlation: CorrelationWatch | None = None,
    ) -> None:
        self.bus = bus
        self.breakers = breakers
        self.cfg = breakers.cfg
        self.wall = wall
        self.started_s = wall()
        self.correlation = correlation
        # The health bucket, kept current by a watch: no copy of it taken every round.
        self.health = StreamMirror.of_bucket(bus.js, subjects.BUCKET_HEALTH, bus.reconnects)

    async def run(self) -> None:
        while True:
            try:
                await self.bus.publish_all(await self.iterate())
            except Exception as e:  # the watch must never die; a missed round is retried
                raise_if_cancelling()
                log.warning("breaker watch failed", extra={"error": repr(e)})
            await asyncio.sleep(self.cfg.heartbeat_check_interval_s)

    async def iterate(self) -> list[Event]:
        events: list[Event] = []
        lost: set[str] = set()
        if self.cfg.heartbeat_services:
            beats = await self.health.current()
            for service in self.cfg.heartbeat_services:
                newest = newest_heartbeat(beats, service)
                if heartbeat_lost(
                    newest, self.started_s, self.wall(), self.cfg.heartbeat_timeout_s
                ):
                    lost.add(heartbeat_breaker(service))
                    events += await self._trip(service, newest)
        if self.correlation is not None:
            events += await self.correlation.check(self.breakers)
        # A breaker whose cause persists (a service still silent) does not auto-resume.
        return events + await self.breakers.auto_resume(still_failing=frozenset(lost))

    async def _trip(self, service: str, newest: float | None) -> list[Event]:
        seen = f"{newest:.3f}" if newest is not None else "never"
        reason = f"no heartbeat from {service} for over {self.cfg.heartbeat_timeout_s}s"
        return await self.breakers.trip(
            heartbeat_breaker(service),
            reason,
            f"hb:{service}:{seen}:{self.wall():.0f}",
            replay=False,
        )


def newest_heartbeat(beats: dict[str, Mirrored], service: str) -> float | None:
    """The newest heartbeat time of any instance of `service`, from a complete copy of the
    health bucket (subject -> value): a short read would look like a lost heartbeat and halt
    trading. A beat that expired from the bucket stays here with its old time: still lost."""
    prefix = f"$KV.{subjects.BUCKET_HEALTH}.{subjects.token(service)}."
    newest: float | None = None
    for key, found in beats.items():
        if not key.startswith(prefix):
            continue
        try:
            beat = decode(found.data or b"", Heartbeat)
        except PermanentError:
            continue
        ts = beat.ts.timestamp()
        newest = ts if newest is None else max(newest, ts)
    return newest
