"""risk-gate handlers: intents become one approval or one denial; control commands latch the
scoped trading state."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

import msgspec
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue
from opentelemetry import trace
from opentelemetry.context import Context

from tradebus_common import subjects
from tradebus_common.bus import BatchItem, Bus, link_cause
from tradebus_common.codec import decode
from tradebus_common.config import Config
from tradebus_common.errors import ErrorCode, PermanentError
from tradebus_common.events import (
    Alert,
    AlertCode,
    ControlAction,
    ControlCommand,
    DenyReason,
    Event,
    LedgerSnapshot,
    MarketTick,
    OrderApproved,
    OrderDenied,
    OrderIntent,
    Severity,
    TradingMode,
    TradingState,
    TradingStateChanged,
)
from tradebus_common.ids import client_order_id, derive_id
from tradebus_common.mirror import Mirrored, StreamMirror

from .checks import first_denial, order_price
from .limits import LimitResolver, venue_rules
from .modes import ModeHandler, ModeStore, mode_alert
from .orders import OpenOrderBook
from .protections import ProtectionStore
from .recon_gate import ReconGateCheck
from .scopes import GLOBAL, Scope, parse_scope, scopes_for
from .state import BreakerStore, StateUnreadable, TradingStateStore, breaker_names
from .throttle import RateWindow
from .view import Denial, RiskView

log = logging.getLogger("tradebus.risk_gate")

MAX_OPERATOR = 100
WallClock = Callable[[], float]


def outcome_key(intent_id: str) -> str:
    # KV keys allow a narrow alphabet; an intent id may be anything, so key on a hash of it.
    return "intent." + derive_id(intent_id, "outcome")


class OutcomeRecord(msgspec.Struct, kw_only=True):
    """Written ahead of publishing: a redelivered intent republishes this very outcome (never
    a re-evaluated, possibly different one); `published` stops it once the stream has it."""

    published: bool = False
    outcome: OrderApproved | OrderDenied


_record_dec = msgspec.json.Decoder(OutcomeRecord)


class IntentHandler:
    """One outcome per intent id, ever. The outcome is recorded in KV `dedup` before it is
    published and marked published after; its id derives from the intent id alone (approved or
    denied alike), so a republish after a crash is deduplicated by JetStream."""

    recon_gate: ReconGateCheck | None = None  # C1 startup gate (set by service.build)

    def __init__(
        self,
        config: Config,
        bus: Bus,
        store: TradingStateStore,
        book: OpenOrderBook,
        seen: KeyValue,
        rate: RateWindow,
        protections: ProtectionStore,
        modes: ModeStore,
        feeds: LatestFeeds,
        wall: WallClock = time.time,
    ) -> None:
        self.config = config
        self.bus = bus
        self.feeds = feeds
        self.store = store
        self.book = book
        self.seen = seen
        self.rate = rate
        self.protections = protections
        self.modes = modes
        self.wall = wall
        self.limits = LimitResolver(config.risk)

    async def __call__(self, intent: OrderIntent) -> list[Event]:
        """One intent: a batch of one (the same record, decision and publish path)."""
        await self.batch([intent], [None])
        return []

    def _decide(
        self, intent: OrderIntent, view: RiskView, gate: Denial | None = None
    ) -> OrderApproved | OrderDenied:
        denial = first_denial(intent, view) or gate
        if denial is not None:
            outcome: OrderApproved | OrderDenied = self._deny(intent, denial)
        else:
            outcome = self._approve(intent, order_price(intent, view))
            self.rate.record(intent.strategy)
        outcome.causation_id = intent.id
        outcome.correlation_id = intent.correlation_id or intent.id
        return outcome

    async def batch(
        self, intents: Sequence[OrderIntent], contexts: Sequence[Context | None]
    ) -> None:
        """A backlog of intents in four round trips instead of four each: read their records,
        decide each in order (every decision sees the open orders approved before it in the
        batch), record the new outcomes, publish them pipelined with the open-order book,
        mark them published. Same outcome per intent id as one by one; on a failure the
        reservations not yet recorded are undone, and the caller redoes the batch one by one."""
        records = await asyncio.gather(*(self._recorded(i.id) for i in intents))
        decided: dict[str, OutcomeRecord] = {}
        fresh: list[OutcomeRecord] = []
        out: list[tuple[OutcomeRecord, Context | None]] = []
        try:
            for intent, record, ctx in zip(intents, records, contexts, strict=True):
                if intent.id in decided or (record is not None and record.published):
                    log.info("duplicate intent ignored", extra={"intent_id": intent.id})
                    continue
                if record is None:
                    view = await self.view(intent)
                    gate = await self.recon_gate.denial(intent) if self.recon_gate else None
                    record = OutcomeRecord(outcome=self._decide(intent, view, gate))
                    self._reserve(record)
                    fresh.append(record)
                decided[intent.id] = record
                out.append((record, ctx))
            await asyncio.gather(*(self._write(r) for r in fresh))
        except BaseException:
            for r in fresh:
                if isinstance(r.outcome, OrderApproved):
                    self.book.forget(r.outcome.client_order_id)
            raise
        await self._publish_all(out)

    def _reserve(self, record: OutcomeRecord) -> None:
        outcome = record.outcome
        if isinstance(outcome, OrderApproved):
            self.book.reserve(outcome, outcome.reference_price or Decimal(0))

    async def _write(self, record: OutcomeRecord) -> None:
        key = outcome_key(record.outcome.intent_id)
        await self.seen.put(key, msgspec.json.encode(record))

    async def _publish_all(self, out: list[tuple[OutcomeRecord, Context | None]]) -> None:
        approvals = [r.outcome for r, _ in out if isinstance(r.outcome, OrderApproved)]
        await asyncio.gather(
            *(self.book.add(a, a.reference_price or Decimal(0)) for a in approvals),
            self.bus.publish_all([r.outcome for r, _ in out], [c for _, c in out]),
        )
        for record, _ in out:
            record.published = True
        await asyncio.gather(*(self._write(r) for r, _ in out))

    async def _recorded(self, intent_id: str) -> OutcomeRecord | None:
        try:
            entry = await self.seen.get(outcome_key(intent_id))
        except KeyNotFoundError:
            return None
        try:
            return _record_dec.decode(entry.value or b"")
        except msgspec.DecodeError:  # an older marker (the bare outcome id): published
            return OutcomeRecord(published=True, outcome=_placeholder(intent_id))

    async def view(self, intent: OrderIntent) -> RiskView:
        states, tick, snapshot, locks, stage_cap = await asyncio.gather(
            self._states(intent),
            self.feeds.tick(intent.venue, intent.symbol),
            self.feeds.snapshot(self.config.risk.account),
            self.protections.locks_for(intent.symbol),
            self._stage_cap(),
        )
        mine, total = self.rate.counts(intent.strategy)
        limits = self.limits.for_intent(intent.strategy, intent.symbol)
        return RiskView(
            limits=limits,
            states=states,
            last_price=tick.price if tick else None,
            tick_age_s=(self.wall() - tick.ts.timestamp()) if tick else None,
            snapshot=snapshot,
            pending_qty=self.book.pending_qty(intent.venue, intent.symbol),
            pending_notional=self.book.pending_notional(),
            open_orders=self.book.count(),
            recent_orders_strategy=mine,
            recent_orders_total=total,
            rules=venue_rules(limits, intent.venue, intent.symbol),
            locks=locks,
            now_s=self.wall(),
            stage_exposure_pct=stage_cap,
        )

    async def _states(self, intent: OrderIntent) -> tuple[TradingStateChanged, ...] | None:
        try:
            return await self.store.for_scopes(
                scopes_for(intent.strategy, intent.venue, intent.symbol)
            )
        except StateUnreadable as e:
            log.warning("trading state unreadable: failing closed", extra={"error": str(e)})
            return None

    async def _stage_cap(self) -> Decimal | None:
        stages = self.config.risk.stages
        if not stages.enforce_exposure:
            return None
        current = await self.modes.stage()
        return stages.max_exposure_pct[current.stage if current else 0]

    def _approve(self, intent: OrderIntent, price: Decimal | None) -> OrderApproved:
        return OrderApproved(
            id=derive_id(intent.id, "outcome"),
            intent_id=intent.id,
            strategy=intent.strategy,
            venue=intent.venue,
            symbol=intent.symbol,
            side=intent.side,
            quantity=intent.quantity,
            order_type=intent.order_type,
            limit_price=intent.limit_price,
            client_order_id=client_order_id(intent.id, 0),
            reference_price=price,
            algo=intent.algo,
            reduce_only=intent.reduce_only,
            exit_reason=intent.exit_reason,
        )

    def _deny(self, intent: OrderIntent, denial: Denial) -> OrderDenied:
        log.info("intent denied", extra={"intent_id": intent.id, "reason": denial.reason})
        return OrderDenied(
            id=derive_id(intent.id, "outcome"),
            intent_id=intent.id,
            strategy=intent.strategy,
            venue=intent.venue,
            symbol=intent.symbol,
            reason=denial.reason,
            detail=denial.detail,
            limit=denial.limit,
            current=denial.current,
            check=denial.check,
            breach_pct=denial.breach_pct,
        )


def _placeholder(intent_id: str) -> OrderDenied:
    return OrderDenied(
        intent_id=intent_id, strategy="", venue="", symbol="", reason=DenyReason.DUPLICATE_INTENT
    )


class OrderFlow:
    """The `risk-gate` durable's handler: intents and control commands in stream order. A
    fetched backlog is taken as runs of intents (IntentHandler.batch) between commands, each
    command applied and published where it stands, so a halt still denies every intent
    after it and none before."""

    def __init__(self, intents: IntentHandler, control: ControlHandler, bus: Bus) -> None:
        self.intents = intents
        self.control = control
        self.bus = bus

    async def __call__(self, event: Any) -> Any:
        if isinstance(event, OrderIntent):
            return await self.intents(event)
        return await self.control(event)

    async def batch(self, items: Sequence[BatchItem]) -> list[list[Event]]:
        start = 0
        while start < len(items):
            end = start
            while end < len(items) and isinstance(items[end].event, OrderIntent):
                end += 1
            if end > start:
                run = items[start:end]
                await self.intents.batch([i.event for i in run], [_context(i) for i in run])
                start = end
                continue
            item = items[start]
            outs = list(await self.control(item.event) or [])
            for out in outs:
                link_cause(out, item.event)
            await self.bus.publish_all(outs, [_context(item)] * len(outs))
            start += 1
        return [[] for _ in items]


def _context(item: BatchItem) -> Context | None:
    return trace.set_span_in_context(item.span) if item.span is not None else None


class LatestFeeds:
    """The newest market tick per symbol and ledger snapshot per account, from mirrors of the
    streams (deliver last-per-subject, then live): right after a restart, never behind a
    durable consumer, and without a round trip per intent. Unreadable means None (callers
    fail closed on None)."""

    def __init__(self, market: StreamMirror, snapshots: StreamMirror) -> None:
        self.market = market
        self.snapshots = snapshots

    @classmethod
    def of(cls, bus: Bus, on_tick: Callable[[MarketTick], None] | None = None) -> LatestFeeds:
        reconnects = bus.reconnects

        def observe(_subject: str, data: bytes) -> None:
            if on_tick is not None:
                on_tick(decode(data, MarketTick))

        return cls(
            StreamMirror(bus.js, subjects.STREAM_MARKET, subjects.MARKET_ALL, reconnects, observe),
            StreamMirror(bus.js, subjects.STREAM_TRADING, subjects.LEDGER_SNAPSHOT_ALL, reconnects),
        )

    async def start(self) -> None:
        await asyncio.gather(self.market.start(), self.snapshots.start())

    async def stop(self) -> None:
        await asyncio.gather(self.market.stop(), self.snapshots.stop())

    async def tick(self, venue: str, symbol: str) -> MarketTick | None:
        return _decoded(await self.market.get(subjects.market(venue, symbol)), MarketTick)

    async def snapshot(self, account: str) -> LedgerSnapshot | None:
        found = await self.snapshots.get(subjects.ledger_snapshot(account))
        return _decoded(found, LedgerSnapshot)


def _decoded(found: Mirrored | None, type_: Any) -> Any:
    if found is None or found.data is None:
        return None
    try:
        return decode(found.data, type_)
    except PermanentError:
        log.warning("unreadable newest message", extra={"type": type_.__name__})
        return None


# --- control ----------------------------------------------------------------------------

_TARGET = {
    ControlAction.HALT: (TradingState.HALTED, Severity.CRITICAL, AlertCode.TRADING_HALTED),
    ControlAction.RESUME: (TradingState.ACTIVE, Severity.WARNING, AlertCode.TRADING_RESUMED),
    ControlAction.REDUCE: (TradingState.REDUCING, Severity.WARNING, AlertCode.TRADING_REDUCING),
}


class ControlHandler:
    def __init__(
        self,
        config: Config,
        store: TradingStateStore,
        breakers: BreakerStore,
        modes: ModeHandler,
    ) -> None:
        self.config = config
        self.store = store
        self.breakers = breakers
        self.modes = modes

    async def __call__(self, cmd: ControlCommand) -> list[Event]:
        if cmd.action is ControlAction.MODE:
            return await self._mode(cmd)
        if cmd.action is ControlAction.STAGE:
            _require_operator(cmd)
            events = await self.modes.step(cmd)
            return [*events, *(mode_alert(e) for e in events)]
        if cmd.action not in _TARGET:
            raise PermanentError(
                f"risk-gate does not handle {cmd.action}", ErrorCode.INVALID_COMMAND
            )
        scope = self._scope(cmd)
        if cmd.action is not ControlAction.HALT:
            _require_operator(cmd)
        to, severity, code = _TARGET[cmd.action]
        events = await transition(
            self.store, cmd.id, scope, to, cmd.reason, cmd.operator, cmd.action
        )
        events.append(state_alert(cmd.id, events[0], severity, code))
        if cmd.action is ControlAction.HALT:
            events.append(cancel_all(cmd.id, events[0], cmd.flatten))
        if cmd.action is ControlAction.RESUME and scope == GLOBAL:
            await self.breakers.clear_all(breaker_names(self.config.risk.breakers))
        return events

    async def _mode(self, cmd: ControlCommand) -> list[Event]:
        """R8. An emergency stop needs no operator (like a halt) and halts globally, flattening."""
        if cmd.target.strip() != TradingMode.EMERGENCY_STOP.value:
            _require_operator(cmd)
        events, halt = await self.modes.change_mode(cmd)
        events += [mode_alert(e) for e in events]
        if halt:
            reason = f"emergency stop: {cmd.reason}" if cmd.reason else "emergency stop"
            change = await transition(
                self.store, cmd.id, GLOBAL, TradingState.HALTED, reason, cmd.operator, cmd.action
            )
            events += change
            events.append(
                state_alert(cmd.id, change[0], Severity.CRITICAL, AlertCode.TRADING_HALTED)
            )
            events.append(cancel_all(cmd.id, change[0], flatten=True))
        return events

    def _scope(self, cmd: ControlCommand) -> Scope:
        if len(cmd.scope) > 200:
            raise PermanentError("scope too long", ErrorCode.INVALID_COMMAND)
        return parse_scope(cmd.scope, self.config)


def _require_operator(cmd: ControlCommand) -> None:
    operator = cmd.operator.strip()
    if not operator:
        raise PermanentError(f"{cmd.action.value} needs an operator", ErrorCode.OPERATOR_REQUIRED)
    if len(operator) > MAX_OPERATOR or not operator.isprintable():
        raise PermanentError("operator name too long or not printable", ErrorCode.INVALID_COMMAND)


async def transition(
    store: TradingStateStore,
    cause_id: str,
    scope: Scope,
    to: TradingState,
    reason: str,
    operator: str,
    action: ControlAction | str,
) -> list[Event]:
    """Latch the new state of one scope (durable before anyone is told) and return the
    TradingStateChanged. Its id derives from the cause, so a redelivery republishes the same."""
    try:
        previous = await store.current(scope)
    except PermanentError:  # an unreadable latch must not block a halt: it is overwritten
        previous = None
    action_name = getattr(action, "value", action)
    change = TradingStateChanged(
        id=derive_id(cause_id, "state"),
        state=to,
        previous=previous.state if previous else (None if scope == GLOBAL else TradingState.ACTIVE),
        scope=str(scope),
        reason=reason or f"{action_name} (no reason given)",
        operator=(operator.strip()[:MAX_OPERATOR] or "unknown"),
    )
    await store.latch(change, scope)
    log.warning(
        "trading state changed",
        extra={
            "state": to,
            "scope": str(scope),
            "reason": change.reason,
            "operator": change.operator,
        },
    )
    return [change]


def state_alert(cause_id: str, change: Event, severity: Severity, code: AlertCode) -> Alert:
    assert isinstance(change, TradingStateChanged)
    return Alert(
        id=derive_id(cause_id, "alert"),
        severity=severity,
        source="risk-gate",
        code=code,
        message=(
            f"trading {change.state.value} ({change.scope}): {change.reason} (by {change.operator})"
        ),
        context={"scope": change.scope, "previous": change.previous},
        dedup_key=f"risk-gate:state:{change.scope}:{change.state.value}",
    )


def cancel_all(cause_id: str, change: Event, flatten: bool) -> ControlCommand:
    """What the execution-gateway acts on: cancel every open order in scope,
    and with `flatten`, close positions with reduce-only market orders."""
    assert isinstance(change, TradingStateChanged)
    return ControlCommand(
        id=derive_id(cause_id, "cancel-all"),
        action=ControlAction.CANCEL_ALL,
        reason=change.reason,
        operator=change.operator,
        scope=change.scope,
        flatten=flatten,
    )
