"""The latched trading state, in the JetStream KV bucket `control`. The value is the last
TradingStateChanged event, so the audit record and the state are the same bytes."""

from __future__ import annotations

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from tradebus_common import subjects
from tradebus_common.codec import decode, encode
from tradebus_common.events import TradingState, TradingStateChanged


class TradingStateStore:
    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv

    async def current(self) -> TradingStateChanged | None:
        """The latched state, or None when it has never been written (callers fail closed)."""
        try:
            entry = await self.kv.get(subjects.CONTROL_STATE_KEY)
        except KeyNotFoundError:
            return None
        return decode(entry.value or b"", TradingStateChanged)

    async def initialize(self) -> TradingStateChanged | None:
        """First start on an empty bucket: latch ACTIVE. Returns the change, or None if a
        state was already latched (which is then kept: a restart never un-halts)."""
        change = TradingStateChanged(
            state=TradingState.ACTIVE, reason="initial state", operator="system"
        )
        try:
            await self.kv.create(subjects.CONTROL_STATE_KEY, encode(change))
        except KeyWrongLastSequenceError:
            return None
        return change

    async def latch(self, change: TradingStateChanged) -> None:
        await self.kv.put(subjects.CONTROL_STATE_KEY, encode(change))
