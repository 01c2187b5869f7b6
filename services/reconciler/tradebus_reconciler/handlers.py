"""trading.control.reconcile: run now (on demand), or accept the last report (target
`accept`, needs an operator). The run publishes its own events (engine.py)."""

from __future__ import annotations

import logging

from tradebus_common.bus import Bus
from tradebus_common.config import Config
from tradebus_common.errors import ErrorCode, PermanentError
from tradebus_common.events import (
    ControlAction,
    ControlCommand,
    Event,
    ReconGate,
    ReconGateState,
)

from .engine import Reconciler
from .gate import GateKeeper, GateStore, accepted_alert, changed

log = logging.getLogger("tradebus.reconciler")
ACCEPT = "accept"
MAX_OPERATOR = 100
OPEN = (ReconGateState.CLEAN, ReconGateState.ACCEPTED)


class ReconcileHandler:
    def __init__(
        self, config: Config, bus: Bus, engine: Reconciler, gates: GateStore, keeper: GateKeeper
    ) -> None:
        self.config = config
        self.bus = bus
        self.engine = engine
        self.gates = gates
        self.keeper = keeper

    async def __call__(self, cmd: ControlCommand) -> list[Event]:
        if cmd.action is not ControlAction.RECONCILE:
            raise PermanentError(
                f"reconciler does not handle {cmd.action}", ErrorCode.INVALID_COMMAND
            )
        if cmd.target.strip() == ACCEPT:
            return await self.accept(cmd)
        if cmd.target.strip():
            raise PermanentError(
                f"unknown reconcile target {cmd.target[:40]!r}", ErrorCode.INVALID_COMMAND
            )
        venues = self.venues_in_scope(cmd.scope)
        if await self._gate_shut() and len(venues) == len(self.config.venues):
            await self.keeper.run_once("on_demand", run_id=cmd.id)  # may open the gate
        else:
            await self.engine.run(cmd.id, "on_demand", venues)
        return []

    def venues_in_scope(self, scope: str) -> list[str]:
        if scope in ("", "global", "all"):
            return list(self.config.venues)
        name = scope.removeprefix("venue:")
        if name not in self.config.venues:
            raise PermanentError(f"no venue {name!r} to reconcile", ErrorCode.UNKNOWN_VENUE)
        return [name]

    async def _gate_shut(self) -> bool:
        if not self.config.reconciler.startup_gate:
            return False
        gate, _ = await self.gates.read()
        return gate is None or gate.state not in OPEN

    async def accept(self, cmd: ControlCommand) -> list[Event]:
        """An operator accepts the differences: ACCEPTED, and balances are re-based on what
        the venue holds now (so accepted drift is not reported again)."""
        operator = cmd.operator.strip()
        if not operator:
            raise PermanentError("accept needs an operator", ErrorCode.OPERATOR_REQUIRED)
        if len(operator) > MAX_OPERATOR or not operator.isprintable():
            raise PermanentError(
                "operator name too long or not printable", ErrorCode.INVALID_COMMAND
            )
        previous, _ = await self.gates.read()
        gate = ReconGate(
            state=ReconGateState.ACCEPTED,
            reason=cmd.reason or (previous.reason if previous else "accepted"),
            report_id=previous.report_id if previous else "",
            operator=operator,
        )
        await self.gates.write(gate, None)
        for venue in self.config.venues:
            try:
                await self.engine.rebaseline(venue, operator)
            except Exception as e:  # the gate opens anyway: the operator said so
                log.warning("re-baseline failed", extra={"venue": venue, "error": repr(e)})
        log.warning("startup gate accepted", extra={"operator": operator})
        await self.bus.publish_all([changed(cmd.id, gate, previous), accepted_alert(cmd.id, gate)])
        return []
