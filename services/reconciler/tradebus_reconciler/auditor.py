"""The reconciler's audit task: extend the hash chain over TRADING as messages arrive and
write a checkpoint every `audit_checkpoint_every_msgs` messages or `audit_checkpoint_interval_s`
seconds (whichever first, and only when something other than checkpoints arrived)."""

from __future__ import annotations

import asyncio
import logging
import time

from nats.js import JetStreamContext

from tradebus_common import subjects
from tradebus_common.bus import Bus, raise_if_cancelling
from tradebus_common.config import ReconcilerConfig
from tradebus_common.events import Alert, AlertCode, AuditCheckpoint, Severity
from tradebus_common.ids import derive_id

from .audit import GENESIS, Checkpoint, CheckpointStore, last_seq, link, read_stream

log = logging.getLogger("tradebus.reconciler.audit")
PASS_INTERVAL_S = 1.0


class Chainer:
    """The chain state (last sequence, hash) and when to checkpoint. One per stream."""

    def __init__(
        self,
        js: JetStreamContext,
        store: CheckpointStore,
        cfg: ReconcilerConfig,
        bus: Bus | None = None,
        stream: str = subjects.STREAM_TRADING,
    ) -> None:
        self.js = js
        self.store = store
        self.cfg = cfg
        self.bus = bus  # None: store checkpoints without publishing them (tools, tests)
        self.stream = stream
        self.seq = 0
        self.chain = GENESIS
        self.since_checkpoint = 0  # messages other than checkpoints since the last one
        self.hashed_since = 0
        self._last_checkpoint_at = time.monotonic()
        self._warned_behind = False

    async def load(self) -> None:
        latest = await self.store.latest(self.stream)
        if latest is not None:
            self.seq, self.chain = latest.seq, bytes.fromhex(latest.chain_hash)

    async def catch_up(self) -> int:
        """Hash what arrived since the last pass; checkpoint when due. Messages hashed."""
        n = 0
        _, last = await last_seq(self.js, self.stream)
        if last < self.seq and not self._warned_behind:
            # The stream is shorter than our checkpoints: it was replaced or truncated.
            # `tradebus audit verify` says where; the chain waits for the stream to catch up.
            self._warned_behind = True
            await self._broken(f"{self.stream} ends at {last}, checkpoints reach {self.seq}")
        async for msg in read_stream(self.js, self.stream, self.seq + 1):
            if msg.seq != self.seq + 1 and self.seq != 0:
                await self._broken(
                    f"{self.stream}: sequences {self.seq + 1}..{msg.seq - 1} are missing"
                )
            self.chain, self.seq = link(self.chain, msg), msg.seq
            self.hashed_since += 1
            n += 1
            if msg.subject != subjects.AUDIT_CHECKPOINT:
                self.since_checkpoint += 1
            every = self.cfg.audit_checkpoint_every_msgs  # 0: by time only
            if every and self.since_checkpoint >= every:
                await self.checkpoint()
        if self.since_checkpoint and self._interval_due():
            await self.checkpoint()
        return n

    def _interval_due(self) -> bool:
        interval = self.cfg.audit_checkpoint_interval_s
        return interval > 0 and time.monotonic() - self._last_checkpoint_at >= interval

    async def checkpoint(self) -> None:
        cp = Checkpoint(self.seq, self.chain.hex())
        await self.store.save(self.stream, cp, self.hashed_since)
        if self.bus is not None:
            await self.bus.publish(
                AuditCheckpoint(
                    id=derive_id(f"{self.stream}:{cp.seq}", "audit-checkpoint"),
                    stream=self.stream,
                    stream_seq=cp.seq,
                    chain_hash=cp.chain_hash,
                    messages=self.hashed_since,
                )
            )
        self.since_checkpoint = self.hashed_since = 0
        self._last_checkpoint_at = time.monotonic()

    async def _broken(self, why: str) -> None:
        """A stream that lost messages: CRITICAL, the chain goes on past it."""
        log.error("audit chain broken", extra={"detail": why})
        if self.bus is not None:
            await self.bus.publish(
                Alert(
                    id=derive_id(f"{self.stream}:{self.seq}", "audit-broken"),
                    severity=Severity.CRITICAL,
                    source="reconciler",
                    code=AlertCode.AUDIT_CHAIN_BROKEN,
                    message=f"audit trail: {why}; run `tradebus audit verify`",
                    context={"stream": self.stream, "at": self.seq},
                    dedup_key=f"reconciler:audit:{self.stream}",
                )
            )

    async def run_forever(self) -> None:
        await self.load()
        while True:
            try:
                await self.catch_up()
            except Exception as e:
                raise_if_cancelling()
                log.warning("audit pass failed; retrying", extra={"error": repr(e)})
            await asyncio.sleep(PASS_INTERVAL_S)
