"""The latched trading state, in the JetStream KV bucket `control`, one key per scope. The
value is the last TradingStateChanged event, so the audit record and the state are the same
bytes. Read per intent through a StreamMirror of the bucket: a watch keeps the copy current
(an operator's direct KV write included), it is rebuilt after a reconnect, and it serves
nothing until it is complete, so a restart or a reconnect still re-reads the latched state."""

from __future__ import annotations

import asyncio

import msgspec
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from tradebus_common import subjects
from tradebus_common.codec import decode, encode
from tradebus_common.config import BreakerConfig
from tradebus_common.errors import PermanentError, TransientError
from tradebus_common.events import TradingState, TradingStateChanged
from tradebus_common.mirror import StreamMirror

from .scopes import GLOBAL, Scope


class StateUnreadable(Exception):
    """The bucket could not be read: callers fail closed."""


class TradingStateStore:
    def __init__(self, kv: KeyValue, mirror: StreamMirror | None = None) -> None:
        self.kv = kv
        self.mirror = mirror  # None: read the bucket on every call (tools, tests)

    async def current(self, scope: Scope = GLOBAL) -> TradingStateChanged | None:
        """The latched state of one scope, or None when it has never been written."""
        if self.mirror is not None:
            found = await self.mirror.get_key(scope.key)
            return None if found is None else decode(found.data or b"", TradingStateChanged)
        try:
            entry = await self.kv.get(scope.key)
        except KeyNotFoundError:
            return None
        return decode(entry.value or b"", TradingStateChanged)

    async def for_scopes(self, scopes: tuple[Scope, ...]) -> tuple[TradingStateChanged, ...]:
        """The latched states of an intent's scopes. The global one must exist (it is written
        at first start); a missing narrower scope means ACTIVE there."""
        try:
            found = await asyncio.gather(*(self.current(s) for s in scopes))
        except PermanentError as e:  # a value that is not a state: deny (fail closed)
            raise StateUnreadable(str(e)) from e
        except Exception as e:  # timeouts, a reconnecting client: retry the intent later
            raise TransientError(f"trading state read failed: {e!r}") from e
        if found[0] is None:
            raise StateUnreadable("global trading state missing")
        return tuple(s for s in found if s is not None)

    async def initialize(self) -> TradingStateChanged | None:
        """First start on an empty bucket: latch ACTIVE. Returns the change, or None if a
        state was already latched (which is then kept: a restart never un-halts)."""
        change = TradingStateChanged(
            state=TradingState.ACTIVE, reason="initial state", operator="system"
        )
        data = encode(change)
        try:
            revision = await self.kv.create(GLOBAL.key, data)
        except KeyWrongLastSequenceError:
            return None
        self._noted(GLOBAL.key, data, revision)
        return change

    async def latch(self, change: TradingStateChanged, scope: Scope = GLOBAL) -> None:
        data = encode(change)
        self._noted(scope.key, data, await self.kv.put(scope.key, data))

    def _noted(self, key: str, data: bytes, revision: int) -> None:
        # The next intent must see this latch even if the watch has not delivered it yet.
        if self.mirror is not None:
            self.mirror.note_key(key, data, revision)


FIXED_BREAKERS = (
    "daily_loss", "drawdown", "consecutive_rejects", "recon_drift", "venue_latency",
    "correlation", "venue_errors",
)  # fmt: skip


def heartbeat_breaker(service: str) -> str:
    return f"heartbeat_{subjects.token(service)}"


def breaker_names(cfg: BreakerConfig) -> list[str]:
    return [*FIXED_BREAKERS, *(heartbeat_breaker(s) for s in cfg.heartbeat_services)]


class BreakerTrip(msgspec.Struct, kw_only=True):
    """A tripped breaker, latched in `control` under `breaker.<name>` until resumed."""

    name: str
    reason: str
    tripped_at_s: float  # wall clock (epoch seconds)
    cooldown_until_s: float
    cause_id: str = ""  # the event that tripped it: a redelivery re-emits, never re-trips


class BreakerStore:
    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv

    async def get(self, name: str) -> BreakerTrip | None:
        try:
            entry = await self.kv.get(f"breaker.{name}")
        except KeyNotFoundError:
            return None
        if not entry.value:
            return None
        return msgspec.json.decode(entry.value, type=BreakerTrip)

    async def put(self, trip: BreakerTrip) -> None:
        await self.kv.put(f"breaker.{trip.name}", msgspec.json.encode(trip))

    async def clear_all(self, names: list[str]) -> None:
        """An operator's global resume unlatches every breaker. Names are passed in rather
        than listed from the bucket: KV key listing is a watcher and can race writes."""
        for name in names:
            await self.clear(name)

    async def clear(self, name: str) -> None:
        try:
            await self.kv.delete(f"breaker.{name}")
        except KeyNotFoundError:
            pass
