"""Signal -> OrderIntent, once per signal id: validate, check TTL and the strategy's run, size,
store the exit set, publish. Under backlog a fetched batch is handled by priority."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from decimal import Decimal

from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue
from opentelemetry import trace

from tradebus_common import subjects
from tradebus_common.bus import BatchItem, Bus, get_struct
from tradebus_common.config import Config, StrategyConfig, VenueSymbolRules
from tradebus_common.errors import ErrorCode, PermanentError
from tradebus_common.events import (
    Bracket,
    Event,
    LedgerSnapshot,
    OrderIntent,
    OrderType,
    RiskStageChanged,
    Side,
    Signal,
    SignalRejected,
    SignalRejectReason,
    StrategyRunState,
    utcnow,
)
from tradebus_common.ids import derive_id

from . import exits
from .runs import UNMANAGED, RunStore, effective_config, refusal
from .sizing import SizingRefused, SizingView, needs_equity, needs_price, size_order, sizing_of
from .validation import check_bracket, is_expired, validate

log = logging.getLogger("tradebus.signal")


def size(signal: Signal, config: Config) -> OrderIntent:
    """Fixed-quantity sizing with no market or ledger view (kept for callers and tests)."""
    strategy = config.strategies[signal.strategy]
    side, quantity = size_order(signal, strategy, SizingView())
    return make_intent(signal, side, quantity)


def make_intent(signal: Signal, side: Side, quantity: Decimal) -> OrderIntent:
    return OrderIntent(
        id=derive_id(signal.id, "intent", 0),
        correlation_id=signal.id,
        causation_id=signal.id,
        strategy=signal.strategy,
        venue=signal.venue,
        symbol=signal.symbol,
        side=side,
        quantity=quantity,
        order_type=signal.order_type,
        limit_price=signal.limit_price,
        signal_id=signal.id,
        leg=0,
        algo=signal.algo,
    )


def rejected(signal: Signal, reason: SignalRejectReason, detail: str = "") -> SignalRejected:
    return SignalRejected(
        id=derive_id(signal.id, "rejected"),
        correlation_id=signal.id,
        causation_id=signal.id,
        signal_id=signal.id,
        strategy=signal.strategy,
        venue=signal.venue,
        symbol=signal.symbol,
        reason=reason,
        detail=detail,
    )


def dedup_key(signal_id: str) -> str:
    # KV keys allow a narrow alphabet; a client's id may be anything, so key on a hash of it.
    return "signal." + derive_id(signal_id, "seen")


def _continuing(item: BatchItem) -> contextlib.AbstractContextManager[object]:
    if item.span is None:
        return contextlib.nullcontext()
    return trace.use_span(item.span, end_on_exit=False)


def by_priority(items: Sequence[BatchItem]) -> list[int]:
    """Indexes of a batch in handling order: higher priority first, then older first (then
    stream order, so equal signals keep theirs)."""

    def rank(i: int) -> tuple[int, object, int]:
        event = items[i].event
        return (-getattr(event, "priority", 0), event.ts, items[i].delivery.stream_seq)

    return sorted(range(len(items)), key=rank)


def position_of(snapshot: LedgerSnapshot, signal: Signal) -> tuple[Decimal, Decimal]:
    """The strategy's signed position in the signal's symbol, and its gross exposure."""
    position, exposure = Decimal(0), Decimal(0)
    for p in snapshot.positions:
        if p.strategy != signal.strategy:
            continue
        exposure += abs(p.quantity * (p.mark_price or p.avg_price))
        if p.venue == signal.venue and p.symbol == signal.symbol:
            position += p.quantity
    return position, exposure


class SignalHandler:
    def __init__(
        self,
        config: Config,
        bus: Bus,
        seen: KeyValue,
        runs: RunStore | None = None,
        exit_store: exits.ExitStore | None = None,
        control: KeyValue | None = None,
    ) -> None:
        self.config = config
        self.bus = bus
        self.seen = seen
        self.runs = runs
        self.exits = exit_store
        self.control = control

    async def __call__(self, signal: Signal) -> list[Event]:
        if await self._already_seen(signal.id):
            log.info("duplicate signal ignored", extra={"signal_id": signal.id})
            return []
        outcome = await self._decide(signal)
        # Publish before marking: a crash in between republishes the same id, which
        # JetStream deduplicates; marking first could lose the intent.
        await self.bus.publish(outcome)
        await self.seen.put(dedup_key(signal.id), outcome.id.encode())
        return []

    async def batch(self, items: Sequence[BatchItem]) -> list[list[Event]]:
        """A backlog, by priority. An invalid signal cannot be dead-lettered from here: the
        rest go on, then the batch fails, and the loop redoes it one by one (the handled
        ones are duplicates by then, the invalid one is dead-lettered alone)."""
        invalid = None
        for i in by_priority(items):
            try:
                with _continuing(items[i]):  # its intent continues this signal's trace
                    await self(items[i].event)
            except PermanentError as e:
                invalid = e
        if invalid is not None:
            raise invalid
        return [[] for _ in items]

    async def _decide(self, signal: Signal) -> OrderIntent | SignalRejected:
        state, strategy = await self._run(signal)
        validate(signal, self.config, strategy)
        assert strategy is not None  # validate refused an unknown strategy
        if is_expired(signal, utcnow(), self.config.signal.default_ttl_s):
            return rejected(signal, SignalRejectReason.EXPIRED, f"ts {signal.ts.isoformat()}")
        refused = refusal(state)
        if refused is not None:
            return rejected(signal, refused, f"strategy run is {state.value}")
        try:
            view = await self._view(signal, strategy)
            if signal.target_position is None:
                check_bracket(signal.bracket, signal.side, view.price)
            side, quantity = size_order(signal, strategy, view)
            if signal.target_position is not None:
                check_bracket(signal.bracket, side, view.price)
        except SizingRefused as e:
            return rejected(signal, e.reason, e.detail)
        intent = make_intent(signal, side, quantity)
        await self._store_exits(signal, strategy, side, view.price)
        return intent

    async def _run(self, signal: Signal) -> tuple[StrategyRunState, StrategyConfig | None]:
        base = self.config.strategies.get(signal.strategy)
        if self.runs is None or base is None:
            return UNMANAGED, base
        record, _ = await self.runs.get(signal.strategy)
        if record is None:
            return UNMANAGED, base
        try:
            return record.state, effective_config(base, record.overrides)
        except Exception as e:  # checked at start; a record edited by hand is still bad input
            raise PermanentError(f"run overrides: {e}", ErrorCode.CONFIG_INVALID) from e

    async def _view(self, signal: Signal, strategy: StrategyConfig) -> SizingView:
        price = await self._price(signal, strategy)
        equity, position, exposure = None, Decimal(0), Decimal(0)
        if needs_equity(signal, strategy) or strategy.allocation_weight < 1:
            snapshot = await self._snapshot()
            if snapshot is not None:
                equity = snapshot.equity
                position, exposure = position_of(snapshot, signal)
        stop = None
        if signal.target_position is None:
            bracket = signal.bracket or exits.default_bracket(strategy, signal.side, price)
            stop = bracket.stop_loss if bracket else None
        return SizingView(
            price=price,
            equity=equity,
            weight=strategy.allocation_weight,
            position=position,
            exposure=exposure,
            rules=self._rules(signal),
            risk_pct=await self._risk_pct(signal, strategy),
            stop=stop,
        )

    async def _price(self, signal: Signal, strategy: StrategyConfig) -> Decimal | None:
        if signal.order_type is OrderType.LIMIT and signal.limit_price is not None:
            return signal.limit_price
        wanted = (
            needs_price(signal, strategy)
            or signal.bracket is not None
            or not exits.is_empty(exits.default_bracket(strategy, Side.BUY, Decimal(1)))
            or strategy.allocation_weight < 1
            or self._rules(signal).min_notional > 0
        )
        if not wanted:
            return None
        tick = await self.bus.last_tick(signal.venue, signal.symbol)
        return tick.price if tick else None

    async def _snapshot(self) -> LedgerSnapshot | None:
        found = await self.bus.last_event(
            subjects.STREAM_TRADING,
            subjects.ledger_snapshot(self.config.risk.account),
            LedgerSnapshot,
        )
        return found[0] if found else None

    async def _risk_pct(self, signal: Signal, strategy: StrategyConfig) -> Decimal:
        """risk_per_trade without a value: the risk-gate's current stage when configured so
        (stage 0 until the gate has set one), else the strategy's own percentage."""
        hint = sizing_of(signal, strategy)
        if not strategy.risk_pct_from_stage or hint is None or hint.value is not None:
            return strategy.risk_per_trade_pct
        found = await get_struct(self.control, "stage", RiskStageChanged) if self.control else None
        if found is not None:
            return found.risk_per_trade_pct
        return self.config.risk.stages.risk_per_trade_pct[0]

    def _rules(self, signal: Signal) -> VenueSymbolRules:
        return self.config.risk.venue_rules.get(signal.venue, {}).get(
            signal.symbol, VenueSymbolRules()
        )

    async def _store_exits(
        self, signal: Signal, strategy: StrategyConfig, side: Side, entry: Decimal | None
    ) -> None:
        if self.exits is None or not self.config.signal.exits_enabled:
            return
        explicit = signal.bracket is not None
        bracket: Bracket | None = signal.bracket or exits.default_bracket(strategy, side, entry)
        if exits.is_empty(bracket):
            return
        assert bracket is not None
        await self.exits.store(
            exits.ExitSet(
                strategy=signal.strategy,
                venue=signal.venue,
                symbol=signal.symbol,
                side=side,
                bracket_id=derive_id(signal.id, "bracket"),
                signal_id=signal.id,
                stop_loss=bracket.stop_loss,
                take_profit=bracket.take_profit,
                trailing_distance=bracket.trailing_distance,
                max_holding_s=bracket.max_holding_s,
            ),
            explicit,
        )

    async def _already_seen(self, signal_id: str) -> bool:
        try:
            await self.seen.get(dedup_key(signal_id))
            return True
        except KeyNotFoundError:
            return False
