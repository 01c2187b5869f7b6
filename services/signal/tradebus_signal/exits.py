"""S5 exit management: one live exit set per position, persisted in KV `signal_exits`.

* An entry signal's bracket (or the strategy's default one) is stored before its intent is
  published; a later bracket for the same position replaces it with compare-and-set.
* PositionChanged (the ledger, after each committed fill) arms the set with the position's
  quantity and opening time, and removes it once the position is flat.
* Each md tick is checked against the armed sets of its symbol: the first exit hit emits a
  reduce-only market intent for the whole position, id derived from the bracket, so a
  redelivered tick (or a later one) can never send a second exit for the same bracket.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from decimal import Decimal

import msgspec
from nats.js.errors import APIError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from tradebus_common import subjects
from tradebus_common.bus import Bus
from tradebus_common.codec import encode
from tradebus_common.config import StrategyConfig
from tradebus_common.errors import TransientError
from tradebus_common.events import (
    Bracket,
    Event,
    ExitReason,
    MarketTick,
    OrderDenied,
    OrderIntent,
    OrderType,
    PositionChanged,
    Side,
)
from tradebus_common.ids import derive_id
from tradebus_common.mirror import bucket_entries

log = logging.getLogger("tradebus.signal.exits")
HUNDRED = Decimal(100)
EXIT_LEG = 1
KEYS_REFRESH_S = 5.0


class ExitSet(msgspec.Struct, kw_only=True):
    strategy: str
    venue: str
    symbol: str
    side: Side  # the entry's side: buy protects a long, sell a short
    bracket_id: str
    signal_id: str
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None
    trailing_distance: Decimal | None = None
    max_holding_s: float | None = None
    position: Decimal = Decimal(0)  # signed, from the ledger's PositionChanged
    opened_at: datetime | None = None
    extreme: Decimal | None = None  # the most favourable price since opening (trailing)
    fired: ExitReason | None = None
    exit_intent_id: str = ""
    attempt: int = 0  # bumped when the risk-gate denied the exit: the next one is a new order

    @property
    def armed(self) -> bool:
        long = self.side is Side.BUY
        return self.fired is None and (self.position > 0 if long else self.position < 0)


def key(strategy: str, venue: str, symbol: str) -> str:
    return ".".join(subjects.kv_token(x) for x in (strategy, venue, symbol))  # KV-safe


# --- pure rules -------------------------------------------------------------------------


def default_bracket(strategy: StrategyConfig, side: Side, entry: Decimal | None) -> Bracket | None:
    """The strategy's default exits, as prices around the entry (None: it has none)."""
    sign = 1 if side is Side.BUY else -1

    def at(pct: Decimal | None, direction: int) -> Decimal | None:
        if pct is None or entry is None:
            return None
        return entry * (1 + direction * sign * pct / HUNDRED)

    trailing = strategy.trailing_stop_pct
    bracket = Bracket(
        stop_loss=at(strategy.stop_loss_pct, -1),
        take_profit=at(strategy.take_profit_pct, 1),
        trailing_distance=None if trailing is None or entry is None else entry * trailing / HUNDRED,
        max_holding_s=strategy.max_holding_s,
    )
    return None if is_empty(bracket) else bracket


def is_empty(bracket: Bracket | None) -> bool:
    return bracket is None or all(
        v is None
        for v in (
            bracket.stop_loss,
            bracket.take_profit,
            bracket.trailing_distance,
            bracket.max_holding_s,
        )
    )


def evaluate(xs: ExitSet, price: Decimal, ts: datetime) -> tuple[ExitSet, ExitReason | None]:
    """The set after this tick (the trailing extreme ratchets) and the exit it hits, if any.
    Checked in this order: stop-loss, trailing stop, take-profit, time."""
    long = xs.side is Side.BUY
    better = (lambda a, b: a > b) if long else (lambda a, b: a < b)
    extreme = price if xs.extreme is None or better(price, xs.extreme) else xs.extreme
    updated = msgspec.structs.replace(xs, extreme=extreme)

    def hit_against(level: Decimal | None) -> bool:  # price moved against us to level
        return level is not None and (price <= level if long else price >= level)

    if hit_against(xs.stop_loss):
        return updated, ExitReason.STOP_LOSS
    if xs.trailing_distance is not None:
        trail = extreme - xs.trailing_distance if long else extreme + xs.trailing_distance
        if hit_against(trail):
            return updated, ExitReason.TRAILING_STOP
    tp = xs.take_profit
    if tp is not None and (price >= tp if long else price <= tp):
        return updated, ExitReason.TAKE_PROFIT
    if xs.max_holding_s is not None and xs.opened_at is not None:
        if ts - xs.opened_at >= timedelta(seconds=xs.max_holding_s):
            return updated, ExitReason.TIME_EXIT
    return updated, None


def exit_intent(xs: ExitSet, reason: ExitReason) -> OrderIntent:
    """Closes the whole position, reduce-only; one id per bracket, whatever tick fired it."""
    return OrderIntent(
        id=derive_id(xs.bracket_id, "exit", *([xs.attempt] if xs.attempt else [])),
        correlation_id=xs.signal_id,
        causation_id=xs.bracket_id,
        strategy=xs.strategy,
        venue=xs.venue,
        symbol=xs.symbol,
        side=Side.SELL if xs.position > 0 else Side.BUY,
        quantity=abs(xs.position),
        order_type=OrderType.MARKET,
        signal_id=xs.signal_id,
        leg=EXIT_LEG,
        reduce_only=True,
        exit_reason=reason,
    )


def replacement(current: ExitSet | None, new: ExitSet, explicit: bool) -> ExitSet | None:
    """What to store when a new bracket arrives (None: keep the current set).

    The same bracket again (a redelivered signal) changes nothing. A fired set stays until
    its position is flat, so a new bracket cannot fire a second exit. Only a signal's own
    bracket replaces the exits of an open position: the strategy's defaults (a signal without
    one, e.g. a scale-in or a partial close) leave them alone."""
    if current is None:
        return new
    if current.bracket_id == new.bracket_id or current.fired is not None:
        return None
    if not explicit and current.position != 0:
        return None
    same_side = current.side is new.side
    return msgspec.structs.replace(
        new,
        position=current.position,
        opened_at=current.opened_at,
        extreme=current.extreme if same_side else None,
    )


def on_denied(xs: ExitSet, denied: OrderDenied) -> ExitSet | None:
    """A denied exit never reached the venue: re-arm the set (None: not our exit)."""
    if xs.fired is None or denied.intent_id != xs.exit_intent_id:
        return None
    return msgspec.structs.replace(xs, fired=None, exit_intent_id="", attempt=xs.attempt + 1)


def on_position(xs: ExitSet, change: PositionChanged) -> ExitSet | None:
    """The set after the ledger's position update (None: the position is flat; drop it)."""
    was_open = xs.position != 0
    if change.quantity == 0:
        return None if was_open or xs.fired is not None else xs
    opened_at = xs.opened_at if was_open and xs.opened_at is not None else change.ts
    return msgspec.structs.replace(xs, position=change.quantity, opened_at=opened_at)


# --- the store and the handlers ----------------------------------------------------------


class ExitStore:
    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv
        self._keys: set[str] = set()
        self._keys_at = 0.0

    async def get(self, k: str) -> tuple[ExitSet | None, int]:
        try:
            entry = await self.kv.get(k)
        except KeyNotFoundError:
            return None, 0
        if not entry.value:
            return None, entry.revision or 0
        return msgspec.json.decode(entry.value, type=ExitSet), entry.revision or 0

    async def put(self, k: str, xs: ExitSet, revision: int) -> None:
        """Compare-and-set: a concurrent change makes this a TransientError (redo)."""
        try:
            if revision:
                await self.kv.update(k, encode(xs), last=revision)
            else:
                await self.kv.create(k, encode(xs))
        except KeyWrongLastSequenceError as e:
            raise TransientError(f"exit set {k} changed meanwhile") from e
        self._keys.add(k)

    async def remove(self, k: str, revision: int) -> None:
        try:
            await self.kv.delete(k, last=revision)
        except APIError as e:  # nats-py does not translate a wrong last revision on delete
            raise TransientError(f"exit set {k} changed meanwhile") from e
        self._keys.discard(k)

    async def store(self, new: ExitSet, explicit: bool) -> None:
        k = key(new.strategy, new.venue, new.symbol)
        current, revision = await self.get(k)
        chosen = replacement(current, new, explicit)
        if chosen is not None:
            await self.put(k, chosen, revision)

    async def keys_for(self, venue: str, symbol: str) -> list[str]:
        """Keys of the exit sets on this symbol: a cache, re-listed every few seconds so
        sets written by another replica are seen too."""
        if time.monotonic() - self._keys_at > KEYS_REFRESH_S:
            self._keys = set(await bucket_entries(self.kv))
            self._keys_at = time.monotonic()
        suffix = f".{subjects.kv_token(venue)}.{subjects.kv_token(symbol)}"
        return [k for k in self._keys if k.endswith(suffix)]


class PositionHandler:
    """PositionChanged -> arm, update or drop the position's exit set. OrderDenied of an exit
    (a rate limit, a halt) -> re-arm it, so the next tick tries again."""

    def __init__(self, store: ExitStore, account: str) -> None:
        self.store = store
        self.account = account

    async def __call__(self, event: PositionChanged | OrderDenied) -> list[Event]:
        if isinstance(event, OrderDenied):
            return await self._denied(event)
        return await self._position(event)

    async def _denied(self, denied: OrderDenied) -> list[Event]:
        k = key(denied.strategy, denied.venue, denied.symbol)
        xs, revision = await self.store.get(k)
        rearmed = None if xs is None else on_denied(xs, denied)
        if rearmed is not None:
            log.warning("exit denied; re-armed", extra={"key": k, "reason": denied.reason.value})
            await self.store.put(k, rearmed, revision)
        return []

    async def _position(self, change: PositionChanged) -> list[Event]:
        if change.account != self.account:
            return []
        k = key(change.strategy, change.venue, change.symbol)
        xs, revision = await self.store.get(k)
        if xs is None:
            return []
        after = on_position(xs, change)
        if after is None:
            await self.store.remove(k, revision)
        elif after != xs:
            await self.store.put(k, after, revision)
        return []


class ExitTickHandler:
    """md tick -> the exits it hits. Publish first, then mark fired: a crash in between
    republishes the same intent id, which the stream drops."""

    def __init__(self, store: ExitStore, bus: Bus) -> None:
        self.store = store
        self.bus = bus

    async def __call__(self, tick: MarketTick) -> list[Event]:
        for k in await self.store.keys_for(tick.venue, tick.symbol):
            await self._check(k, tick)
        return []

    async def _check(self, k: str, tick: MarketTick) -> None:
        xs, revision = await self.store.get(k)
        if xs is None or not xs.armed:
            return
        if xs.opened_at is not None and tick.ts < xs.opened_at:
            return  # a price from before the position opened (a replay) says nothing
        updated, reason = evaluate(xs, tick.price, tick.ts)
        if reason is None:
            if updated.extreme != xs.extreme:
                try:
                    await self.store.put(k, updated, revision)
                except TransientError:
                    pass  # changed meanwhile; the next tick ratchets from the new state
            return
        intent = exit_intent(updated, reason)
        log.info(
            "exit fired",
            extra={"key": k, "reason": reason.value, "price": str(tick.price), "id": intent.id},
        )
        await self.bus.publish(intent)
        fired = msgspec.structs.replace(updated, fired=reason, exit_intent_id=intent.id)
        await self.store.put(k, fired, revision)
