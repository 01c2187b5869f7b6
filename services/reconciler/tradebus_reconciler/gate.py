"""C1 startup gate: KV `control` / `reconcile.gate` (events.ReconGate), written here with
compare-and-set so a gateway restart in the middle of a run is never overwritten.

RECONCILING is set by the reconciler when it starts and by the execution-gateway when it
starts (rpc.mark_reconciling). The reconciler polls the key; RECONCILING means "run now". A run
ends CLEAN (every difference resolved by policy) or BLOCKED (an operator must accept); a venue
that does not answer keeps it RECONCILING and the run is retried with backoff.
"""

from __future__ import annotations

import asyncio
import logging

import msgspec
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from tradebus_common import subjects
from tradebus_common.bus import Bus, raise_if_cancelling
from tradebus_common.events import (
    Alert,
    AlertCode,
    ReconDiscrepancyKind,
    ReconGate,
    ReconGateChanged,
    ReconGateState,
    ReconReport,
    Severity,
)
from tradebus_common.ids import derive_id, new_id

from .engine import Reconciler

log = logging.getLogger("tradebus.reconciler.gate")
_decoder = msgspec.json.Decoder(ReconGate)
POLL_S = 0.5
RETRY_MAX_S = 30.0


class GateStore:
    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv

    async def read(self) -> tuple[ReconGate | None, int]:
        """The gate and its revision (0: never written)."""
        try:
            entry = await self.kv.get(subjects.KEY_RECON_GATE)
        except KeyNotFoundError:
            return None, 0
        try:
            return _decoder.decode(entry.value or b""), entry.revision or 0
        except msgspec.DecodeError:
            return None, entry.revision or 0

    async def write(self, gate: ReconGate, last: int | None) -> int | None:
        """Write; with `last`, only if nobody wrote since that revision (None on a conflict)."""
        data = msgspec.json.encode(gate)
        if last is None:
            return await self.kv.put(subjects.KEY_RECON_GATE, data)
        try:
            if last == 0:
                return await self.kv.create(subjects.KEY_RECON_GATE, data)
            return await self.kv.update(subjects.KEY_RECON_GATE, data, last=last)
        except KeyWrongLastSequenceError:
            return None


def changed(cause_id: str, gate: ReconGate, previous: ReconGate | None) -> ReconGateChanged:
    return ReconGateChanged(
        id=derive_id(cause_id, "gate", gate.state.value),
        causation_id=cause_id,
        state=gate.state,
        previous=previous.state if previous else None,
        reason=gate.reason,
        report_id=gate.report_id,
        operator=gate.operator,
    )


def outcome(reports: list[ReconReport]) -> ReconGateState | None:
    """CLEAN, BLOCKED, or None when a venue did not answer (stay RECONCILING, retry)."""
    kinds = {d.kind for r in reports for d in r.discrepancies}
    if ReconDiscrepancyKind.VENUE_UNAVAILABLE in kinds:
        return None
    return ReconGateState.CLEAN if all(r.resolved for r in reports) else ReconGateState.BLOCKED


def summary(reports: list[ReconReport]) -> str:
    parts = [
        f"{r.venue}: {len(r.discrepancies)} discrepanc{'y' if len(r.discrepancies) == 1 else 'ies'}"
        f" ({sum(1 for d in r.discrepancies if not d.resolution)} unresolved)"
        for r in reports
    ]
    return "; ".join(parts) or "no venues"


class GateKeeper:
    def __init__(self, bus: Bus, store: GateStore, engine: Reconciler, venues: list[str]) -> None:
        self.bus = bus
        self.store = store
        self.engine = engine
        self.venues = venues
        self._retry_s = 1.0

    async def open_run(self, reason: str) -> int:
        """Close the gate (RECONCILING) unless it already is; the revision to compare against."""
        gate, revision = await self.store.read()
        if gate is not None and gate.state is ReconGateState.RECONCILING:
            return revision
        new = ReconGate(state=ReconGateState.RECONCILING, reason=reason)
        written = await self.store.write(new, revision)
        if written is None:  # someone wrote meanwhile: read again next time
            return (await self.store.read())[1]
        await self.bus.publish(changed(new_id(), new, gate))
        return written

    async def run_once(
        self, trigger: str, run_id: str = "", venues: list[str] | None = None
    ) -> ReconGateState | None:
        """One gate run: reconcile every venue, then open or block the gate (CAS)."""
        gate, revision = await self.store.read()
        if gate is None or gate.state is not ReconGateState.RECONCILING:
            revision = await self.open_run(f"{trigger}: reconciliation due")
            gate, _ = await self.store.read()
        run_id = run_id or new_id()
        reports = await self.engine.run(run_id, trigger, venues or self.venues)
        state = outcome(reports)
        if state is None:
            log.warning("venue not answering: gate stays RECONCILING", extra={"trigger": trigger})
            return None
        result = ReconGate(
            state=state, reason=summary(reports), report_id=reports[0].id if reports else ""
        )
        if await self.store.write(result, revision) is None:
            log.info("gate changed during the run (gateway restart or accept): not overwritten")
            return None
        events: list = [changed(run_id, result, gate)]
        if state is ReconGateState.BLOCKED:
            events.append(blocked_alert(run_id, result))
        await self.bus.publish_all(events)
        log.warning("startup gate %s", state.value, extra={"reason": result.reason})
        return state

    async def loop(self, startup_trigger: str = "startup") -> None:
        """Run at start, then whenever the gate is RECONCILING (a gateway restarted)."""
        trigger = startup_trigger
        await self._step(trigger, force=True)
        while True:
            await asyncio.sleep(POLL_S)
            await self._step("gateway_restart", force=False)

    async def _step(self, trigger: str, force: bool) -> None:
        try:
            gate, _ = await self.store.read()
            if not force and (gate is None or gate.state is not ReconGateState.RECONCILING):
                return
            if await self.run_once(trigger) is None:
                await asyncio.sleep(self._retry_s)  # venue away, or a conflict: try again
                self._retry_s = min(self._retry_s * 2, RETRY_MAX_S)
            else:
                self._retry_s = 1.0
        except Exception as e:
            raise_if_cancelling()
            log.warning("gate run failed; retrying", extra={"error": repr(e)})
            await asyncio.sleep(self._retry_s)
            self._retry_s = min(self._retry_s * 2, RETRY_MAX_S)


def blocked_alert(run_id: str, gate: ReconGate) -> Alert:
    return Alert(
        id=derive_id(run_id, "gate-alert"),
        severity=Severity.ERROR,
        source="reconciler",
        code=AlertCode.RECON_GATE_BLOCKED,
        message=f"startup gate BLOCKED: {gate.reason}. New orders are denied until an operator "
        f"runs `tradebus reconcile --accept --operator NAME` or a run is clean",
        context={"report_id": gate.report_id},
        dedup_key="reconciler:gate",
    )


def accepted_alert(cause_id: str, gate: ReconGate) -> Alert:
    return Alert(
        id=derive_id(cause_id, "gate-alert"),
        severity=Severity.WARNING,
        source="reconciler",
        code=AlertCode.RECON_GATE_ACCEPTED,
        message=f"startup gate ACCEPTED by {gate.operator}: {gate.reason}",
        context={"report_id": gate.report_id, "operator": gate.operator},
        dedup_key="reconciler:gate",
    )
