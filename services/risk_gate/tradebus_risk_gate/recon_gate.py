"""C1 startup gate, the risk-gate's side (docs/reconciliation.md).

With `[reconciler] startup_gate = true`, a new order is approved only while KV `control` /
`reconcile.gate` is CLEAN or ACCEPTED. A missing or unreadable key counts as RECONCILING (fail
closed). Reduce-only orders (exits, flatten) pass: they can only shrink what is at risk;
cancels never come through here. The reconciler writes the key; the execution-gateway sets
it RECONCILING when it starts.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import msgspec

from tradebus_common import subjects
from tradebus_common.events import DenyReason, OrderIntent, ReconGate, ReconGateState

from .view import Denial

OPEN = (ReconGateState.CLEAN, ReconGateState.ACCEPTED)
_decoder = msgspec.json.Decoder(ReconGate)

# Reads the raw value of a key of KV `control` (None: never written or deleted).
KeyReader = Callable[[str], Awaitable[bytes | None]]


def gate_state(raw: bytes | None) -> ReconGate:
    if not raw:
        return ReconGate(state=ReconGateState.RECONCILING, reason="no reconciliation yet")
    try:
        return _decoder.decode(raw)
    except msgspec.DecodeError:
        return ReconGate(state=ReconGateState.RECONCILING, reason="gate value unreadable")


def gate_denial(intent: OrderIntent, gate: ReconGate) -> Denial | None:
    """Pure: the denial for a new order while the gate is shut, None when it may pass."""
    if gate.state in OPEN or intent.reduce_only:
        return None
    why = f": {gate.reason}" if gate.reason else ""
    return Denial(
        DenyReason.RECONCILING,
        f"startup gate {gate.state.value}{why} (trading resumes when a reconciliation is "
        f"clean or an operator runs `tradebus reconcile --accept --operator NAME`)",
    )


class ReconGateCheck:
    def __init__(self, enabled: bool, read: KeyReader) -> None:
        self.enabled = enabled
        self.read = read

    @classmethod
    def of_mirror(cls, enabled: bool, mirror: object) -> ReconGateCheck:
        """Read through the risk-gate's mirror of KV `control` (a dict lookup per intent)."""

        async def read(key: str) -> bytes | None:
            found = await mirror.get_key(key)  # type: ignore[attr-defined]
            return None if found is None else found.data

        return cls(enabled, read)

    async def denial(self, intent: OrderIntent) -> Denial | None:
        if not self.enabled or intent.reduce_only:
            return None
        # An unreadable gate raises (TransientError): the intent is retried, never approved.
        return gate_denial(intent, gate_state(await self.read(subjects.KEY_RECON_GATE)))
