"""Protections (R6): entry locks after losing exits, kept in KV `risk_protections` so they
survive restarts and `tradebus status` can list them.

* stop-loss guard: N losing exits (any symbol) within a window lock all entries;
* cooldown: one losing exit locks entries on that symbol;
* low-profit lock: a symbol whose realized P&L over a window is under a threshold.

A losing exit is a PositionChanged whose realized P&L went down since the last one seen."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from decimal import Decimal
from enum import StrEnum

import msgspec
from nats.js.errors import NoKeysError
from nats.js.kv import KeyValue

from tradebus_common import subjects
from tradebus_common.bus import get_struct
from tradebus_common.config import ProtectionConfig
from tradebus_common.events import (
    Alert,
    AlertCode,
    DenyReason,
    Event,
    PositionChanged,
    Severity,
)
from tradebus_common.ids import derive_id

from .modes import ModeStore

log = logging.getLogger("tradebus.risk_gate.protections")
WallClock = Callable[[], float]
GLOBAL_TARGET = "global"


class LockKind(StrEnum):
    STOPLOSS_GUARD = "stoploss_guard"
    COOLDOWN = "cooldown"
    LOW_PROFIT = "low_profit"


DENY_REASON = {
    LockKind.STOPLOSS_GUARD: DenyReason.STOPLOSS_GUARD,
    LockKind.COOLDOWN: DenyReason.SYMBOL_COOLDOWN,
    LockKind.LOW_PROFIT: DenyReason.LOW_PROFIT_LOCK,
}


class Lock(msgspec.Struct, kw_only=True):
    kind: LockKind
    target: str  # "global" or a symbol
    reason: str
    until_s: float  # wall clock (epoch seconds)

    def active(self, now_s: float) -> bool:
        return now_s < self.until_s


class PositionMemo(msgspec.Struct, kw_only=True):
    """The last PositionChanged seen per position: tells an exit from an entry."""

    quantity: Decimal
    realized: Decimal


class Exit(msgspec.Struct, kw_only=True):
    event_id: str
    at_s: float
    pnl: Decimal


def lock_key(kind: LockKind, target: str) -> str:
    return f"lock.{kind.value}.{subjects.kv_token(target)}"


# --- pure rules -------------------------------------------------------------------------


def is_exit(before: Decimal, after: Decimal) -> bool:
    """The position got smaller, or flipped (an exit plus a new entry)."""
    return before != 0 and (
        abs(after) < abs(before) or (after != 0 and (after > 0) != (before > 0))
    )


def recent(exits: list[Exit], now_s: float, window_s: float) -> list[Exit]:
    return [e for e in exits if now_s - e.at_s <= window_s]


def stoploss_guard(exits: list[Exit], now_s: float, cfg: ProtectionConfig) -> bool:
    losses = [e for e in recent(exits, now_s, cfg.stoploss_guard_window_s) if e.pnl < 0]
    return bool(cfg.stoploss_guard_trades) and len(losses) >= cfg.stoploss_guard_trades


def low_profit(exits: list[Exit], now_s: float, cfg: ProtectionConfig) -> Decimal | None:
    """The symbol's realized P&L over the window when it is under the threshold, else None."""
    if cfg.low_profit_threshold is None:
        return None
    window = recent(exits, now_s, cfg.low_profit_window_s)
    total = sum((e.pnl for e in window), Decimal(0))
    return total if window and total < cfg.low_profit_threshold else None


# --- the store and the monitor side -----------------------------------------------------


class ProtectionStore:
    """KV `risk_protections`, read through an in-process cache. This process is the bucket's
    only writer (one risk-gate replica, as the rate window already requires), so after the
    first read of a key every read is local: the gate no longer pays a round trip per
    intent and per position change. Writes go to KV first, then to the cache."""

    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv
        self._cache: dict[str, object | None] = {}

    async def _get(self, key: str, type_: type) -> object | None:
        if key not in self._cache:
            self._cache[key] = await get_struct(self.kv, key, type_)
        return self._cache[key]

    async def _put(self, key: str, value: object) -> None:
        await self.kv.put(key, msgspec.json.encode(value))
        self._cache[key] = value

    async def locks_for(self, symbol: str) -> tuple[Lock, ...]:
        keys = [lock_key(LockKind.STOPLOSS_GUARD, GLOBAL_TARGET)]
        keys += [lock_key(k, symbol) for k in (LockKind.COOLDOWN, LockKind.LOW_PROFIT)]
        found = await asyncio.gather(*(self._get(k, Lock) for k in keys))
        return tuple(lock for lock in found if isinstance(lock, Lock))

    async def all_locks(self) -> list[Lock]:
        try:
            keys = [k for k in await self.kv.keys() if k.startswith("lock.")]
        except NoKeysError:
            return []
        found = [await self._get(k, Lock) for k in keys]
        return [lock for lock in found if isinstance(lock, Lock)]

    async def put_lock(self, lock: Lock) -> None:
        await self._put(lock_key(lock.kind, lock.target), lock)

    async def exits(self, target: str) -> list[Exit]:
        found = await self._get(f"exits.{subjects.kv_token(target)}", list[Exit])
        return list(found) if isinstance(found, list) else []  # a copy: callers append

    async def put_exits(self, target: str, exits: list[Exit]) -> None:
        await self._put(f"exits.{subjects.kv_token(target)}", list(exits))

    async def memo(self, key: str) -> PositionMemo | None:
        found = await self._get(f"pos.{key}", PositionMemo)
        return found if isinstance(found, PositionMemo) else None

    async def put_memo(self, key: str, memo: PositionMemo) -> None:
        await self._put(f"pos.{key}", memo)


class Protections:
    def __init__(
        self,
        cfg: ProtectionConfig,
        store: ProtectionStore,
        record: ModeStore | None = None,
        wall: WallClock = time.time,
    ) -> None:
        self.cfg = cfg
        self.store = store
        self.record = record  # the trading record the mode gate judges (R8)
        self.wall = wall

    async def on_position(self, event: PositionChanged) -> list[Event]:
        key = derive_id(event.account, event.venue, event.symbol, event.strategy)
        last = await self.store.memo(key) or PositionMemo(quantity=Decimal(0), realized=Decimal(0))
        events: list[Event] = []
        if is_exit(last.quantity, event.quantity):
            events = await self._exit(event, event.realized_pnl - last.realized)
        # Marked after the exit is recorded; a redelivery finds the exit by its event id.
        memo = PositionMemo(quantity=event.quantity, realized=event.realized_pnl)
        await self.store.put_memo(key, memo)
        return events

    async def remember(self, event: PositionChanged) -> None:
        """An old event (a replay): keep the position memo, lock nothing."""
        key = derive_id(event.account, event.venue, event.symbol, event.strategy)
        memo = PositionMemo(quantity=event.quantity, realized=event.realized_pnl)
        await self.store.put_memo(key, memo)

    async def _exit(self, event: PositionChanged, pnl: Decimal) -> list[Event]:
        now = self.wall()
        exit_ = Exit(event_id=event.id, at_s=now, pnl=pnl)
        horizon = max(self.cfg.stoploss_guard_window_s, self.cfg.low_profit_window_s)
        locks: list[Lock] = []
        for target in (GLOBAL_TARGET, event.symbol):
            exits = recent(await self.store.exits(target), now, horizon)
            if all(e.event_id != event.id for e in exits):
                exits.append(exit_)
            await self.store.put_exits(target, exits)
            locks += self._locks(target, exits, pnl, now)
        for lock in locks:
            await self.store.put_lock(lock)
        if self.record is not None:
            await self.record.add_exit(event.id, pnl)
        return [lock_alert(lock, event.id) for lock in locks]

    def _locks(self, target: str, exits: list[Exit], pnl: Decimal, now: float) -> list[Lock]:
        cfg, out = self.cfg, []
        if target == GLOBAL_TARGET:
            if stoploss_guard(exits, now, cfg):
                reason = f"{cfg.stoploss_guard_trades} losing exits within {cfg.stoploss_guard_window_s}s"
                out.append(
                    Lock(
                        kind=LockKind.STOPLOSS_GUARD,
                        target=target,
                        reason=reason,
                        until_s=now + cfg.stoploss_guard_lock_s,
                    )
                )
            return out
        if pnl < 0 and cfg.cooldown_after_loss_s:
            out.append(
                Lock(
                    kind=LockKind.COOLDOWN,
                    target=target,
                    reason=f"losing exit ({pnl})",
                    until_s=now + cfg.cooldown_after_loss_s,
                )
            )
        total = low_profit(exits, now, cfg)
        if total is not None:
            reason = f"realized {total} over {cfg.low_profit_window_s}s, under {cfg.low_profit_threshold}"
            out.append(
                Lock(
                    kind=LockKind.LOW_PROFIT,
                    target=target,
                    reason=reason,
                    until_s=now + cfg.low_profit_lock_s,
                )
            )
        return out


def lock_alert(lock: Lock, cause_id: str) -> Alert:
    return Alert(
        id=derive_id(cause_id, "lock", lock.kind.value, lock.target),
        severity=Severity.WARNING,
        source="risk-gate",
        code=AlertCode.PROTECTION_LOCKED,
        message=f"entries locked ({lock.kind.value}, {lock.target}): {lock.reason}",
        context={"kind": lock.kind.value, "target": lock.target, "until_s": lock.until_s},
        dedup_key=f"risk-gate:lock:{lock.kind.value}:{lock.target}",
    )
