"""O6 strategy runs: start, stop, pause, resume and status, each with a request id.

One record per strategy in KV `strategy_runs` (written with compare-and-set). A strategy with
no record has never been managed: its signals pass as if RUNNING, so a plain config keeps
working. start goes STOPPED/ERROR -> STARTING -> RUNNING (ERROR if its overrides are bad);
stop goes RUNNING/PAUSED -> STOPPING -> STOPPED. Every transition is a StrategyRunChanged;
a status request, or a command that changes nothing, gets a StrategyCommandAnswered.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

import msgspec
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from tradebus_common import subjects
from tradebus_common.codec import encode
from tradebus_common.config import StrategyConfig, check_finite
from tradebus_common.errors import TransientError
from tradebus_common.events import (
    Event,
    SignalRejectReason,
    StrategyAction,
    StrategyCommand,
    StrategyCommandAnswered,
    StrategyRunChanged,
    StrategyRunState,
    utcnow,
)
from tradebus_common.ids import derive_id

S = StrategyRunState
A = StrategyAction
# action -> (states it may start from, the states it passes through)
TRANSITIONS: dict[
    StrategyAction, tuple[tuple[StrategyRunState, ...], tuple[StrategyRunState, ...]]
] = {
    A.START: ((S.STOPPED, S.ERROR), (S.STARTING, S.RUNNING)),
    A.STOP: ((S.RUNNING, S.PAUSED, S.STARTING, S.ERROR), (S.STOPPING, S.STOPPED)),
    A.PAUSE: ((S.RUNNING,), (S.PAUSED,)),
    A.RESUME: ((S.PAUSED,), (S.RUNNING,)),
}
UNMANAGED = S.RUNNING  # the state of a strategy without a record


class RunRecord(msgspec.Struct, kw_only=True):
    strategy: str
    state: StrategyRunState = S.STOPPED
    run_id: str = ""
    overrides: dict[str, str] = {}
    request_id: str = ""  # the last command applied: a redelivered command is a no-op
    operator: str = ""
    updated_at: datetime = msgspec.field(default_factory=utcnow)


def effective_config(base: StrategyConfig, overrides: dict[str, str]) -> StrategyConfig:
    """The strategy's config with a run's overrides applied; ValidationError names a bad key."""
    merged = {**msgspec.structs.asdict(base), **overrides}
    return check_finite(msgspec.convert(merged, StrategyConfig, strict=False))  # no "NaN"


def refusal(state: StrategyRunState) -> SignalRejectReason | None:
    """Why a signal of a strategy in this state is refused (None: it may trade)."""
    if state is S.RUNNING:
        return None
    return (
        SignalRejectReason.STRATEGY_PAUSED
        if state is S.PAUSED
        else SignalRejectReason.STRATEGY_NOT_RUNNING
    )


def plan(
    cmd: StrategyCommand, record: RunRecord, base: StrategyConfig | None
) -> tuple[list[StrategyRunState], str]:
    """The states a command moves the run through, or ([], why not). Pure."""
    if base is None:
        return [], f"unknown strategy {cmd.strategy!r}"
    allowed = TRANSITIONS.get(cmd.action)
    if allowed is None:
        return [], ""
    sources, path = allowed
    if record.state not in sources:
        return [], f"cannot {cmd.action.value} a {record.state.value} run"
    if cmd.action is A.START:
        try:
            effective_config(base, cmd.overrides)
        except msgspec.ValidationError as e:
            return [S.STARTING, S.ERROR], f"bad overrides: {e}"
    return list(path), ""


class RunStore:
    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv

    @staticmethod
    def key(strategy: str) -> str:
        return subjects.kv_token(strategy)  # a hostile command's name is still a valid key

    async def get(self, strategy: str) -> tuple[RunRecord | None, int]:
        try:
            entry = await self.kv.get(self.key(strategy))
        except KeyNotFoundError:
            return None, 0
        if not entry.value:
            return None, entry.revision or 0
        return msgspec.json.decode(entry.value, type=RunRecord), entry.revision or 0

    async def put(self, record: RunRecord, revision: int) -> None:
        try:
            if revision:
                await self.kv.update(self.key(record.strategy), encode(record), last=revision)
            else:
                await self.kv.create(self.key(record.strategy), encode(record))
        except KeyWrongLastSequenceError as e:  # another writer got there first: redo
            raise TransientError(f"strategy run {record.strategy} changed meanwhile") from e


class RunHandler:
    """Applies StrategyCommands. The events (ids derived from the command) are published
    before the record is written: a crash in between replays the command into the same
    events, which the stream drops; writing first could lose them."""

    def __init__(
        self,
        store: RunStore,
        strategies: dict[str, StrategyConfig],
        publish: Callable[[Sequence[Event]], Awaitable[None]],
    ) -> None:
        self.store = store
        self.strategies = strategies
        self.publish = publish

    async def __call__(self, cmd: StrategyCommand) -> list[Event]:
        found, revision = await self.store.get(cmd.strategy)
        record = found or unmanaged(cmd)
        request_id = cmd.request_id or cmd.id
        if found is not None and found.request_id == request_id:
            return []  # already applied (and published)
        states, detail = plan(cmd, record, self.strategies.get(cmd.strategy))
        if not states:
            return [self._answer(cmd, record, request_id, detail)]
        await self.publish(self._transitions(cmd, record, states, request_id, detail))
        await self.store.put(self._next_record(cmd, record, states[-1], request_id), revision)
        return []

    def _answer(
        self, cmd: StrategyCommand, record: RunRecord, request_id: str, detail: str
    ) -> StrategyCommandAnswered:
        return StrategyCommandAnswered(
            id=derive_id(cmd.id, "answer"),
            strategy=cmd.strategy,
            action=cmd.action,
            request_id=request_id,
            ok=not detail,
            state=record.state,
            run_id=record.run_id,
            detail=detail,
            overrides=record.overrides,
        )

    def _transitions(
        self,
        cmd: StrategyCommand,
        record: RunRecord,
        states: list[StrategyRunState],
        request_id: str,
        detail: str,
    ) -> list[Event]:
        run_id = derive_id(request_id, "run") if cmd.action is A.START else record.run_id
        previous, events = record.state, []
        for state in states:
            events.append(
                StrategyRunChanged(
                    id=derive_id(cmd.id, "run", state.value),
                    strategy=cmd.strategy,
                    state=state,
                    previous=previous,
                    action=cmd.action,
                    request_id=request_id,
                    run_id=run_id,
                    operator=cmd.operator,
                    reason=detail or cmd.reason,
                    overrides=cmd.overrides if cmd.action is A.START else record.overrides,
                )
            )
            previous = state
        return events

    @staticmethod
    def _next_record(
        cmd: StrategyCommand, record: RunRecord, state: StrategyRunState, request_id: str
    ) -> RunRecord:
        starting = cmd.action is A.START
        return RunRecord(
            strategy=cmd.strategy,
            state=state,
            run_id=derive_id(request_id, "run") if starting else record.run_id,
            overrides=cmd.overrides if starting else record.overrides,
            request_id=request_id,
            operator=cmd.operator,
        )


def unmanaged(cmd: StrategyCommand) -> RunRecord:
    """A strategy never managed runs by config alone: `start` begins a managed run (as from
    STOPPED, to apply overrides); every other command sees it RUNNING."""
    state = S.STOPPED if cmd.action is A.START else UNMANAGED
    return RunRecord(strategy=cmd.strategy, state=state)
