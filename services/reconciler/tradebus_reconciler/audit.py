"""B7 tamper evidence: a SHA-256 hash chain over a stream's messages in sequence order.

    h(0) = 32 zero bytes
    h(n) = SHA-256( h(n-1) | seq (8 bytes, big endian) | len+subject | len+Nats-Msg-Id | len+payload )

(len = 8 bytes big endian, so no two different messages hash alike by shifting bytes between
fields.) Checkpoints (stream, sequence, hash) are stored in PostgreSQL (`audit_checkpoints`)
and published to trading.audit.checkpoint. `verify` recomputes the chain from the stream and
names the first checkpoint the stream disagrees with: a modified, missing or reordered
message changes every hash from its sequence on. docs/audit.md.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

import asyncpg
import nats
from nats.js import JetStreamContext, api

from tradebus_common.bus import MSG_ID

GENESIS = bytes(32)
READ_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class StreamMessage:
    seq: int
    subject: str
    msg_id: str
    payload: bytes
    time: datetime | None = None


def link(previous: bytes, msg: StreamMessage) -> bytes:
    h = hashlib.sha256(previous)
    h.update(msg.seq.to_bytes(8, "big"))
    for part in (msg.subject.encode(), msg.msg_id.encode(), msg.payload):
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.digest()


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    chain_hash: str  # hex


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    checked: int  # messages hashed
    checkpoints: int  # checkpoints compared
    first_bad_seq: int | None = None  # the first checkpoint the stream disagrees with
    last_good_seq: int | None = None  # the last checkpoint that matched (the tamper is after)
    detail: str = ""


# --- reading a stream in sequence order ---------------------------------------------------


async def last_seq(js: JetStreamContext, stream: str) -> tuple[int, int]:
    info = await js.stream_info(stream)
    return info.state.first_seq or 0, info.state.last_seq or 0


async def read_stream(
    js: JetStreamContext,
    stream: str,
    start_seq: int = 1,
    end_seq: int | None = None,
    subject: str | None = None,
    start_time: datetime | None = None,
) -> AsyncIterator[StreamMessage]:
    """Messages in sequence order, from start_seq (or start_time) up to end_seq (default: the
    last sequence when called), through an ordered consumer (no acks, resets itself on a gap
    in delivery). `subject` filters (a NATS wildcard pattern)."""
    first, last = await last_seq(js, stream)
    end = last if end_seq is None else min(end_seq, last)
    if last == 0 or end < max(start_seq, first):
        return
    if start_time is not None:
        config = api.ConsumerConfig(
            deliver_policy=api.DeliverPolicy.BY_START_TIME,
            opt_start_time=start_time,
        )
    else:
        config = api.ConsumerConfig(
            deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=max(start_seq, 1)
        )
    filter_subject = subject or await _all_subjects(js, stream)
    sub = await js.subscribe(filter_subject, stream=stream, ordered_consumer=True, config=config)
    try:
        while True:
            try:
                msg = await sub.next_msg(timeout=READ_TIMEOUT_S)
            except nats.errors.TimeoutError:
                return  # nothing more matches before `end` (a filter, or the end)
            seq = msg.metadata.sequence.stream
            if seq > end:
                return
            yield StreamMessage(
                seq=seq,
                subject=msg.subject,
                msg_id=(msg.headers or {}).get(MSG_ID, ""),
                payload=msg.data,
                time=msg.metadata.timestamp,
            )
            if seq >= end:
                return
    finally:
        await sub.unsubscribe()


async def _all_subjects(js: JetStreamContext, stream: str) -> str:
    subjects = (await js.stream_info(stream)).config.subjects or []
    return subjects[0] if len(subjects) == 1 else ">"


# --- checkpoints ---------------------------------------------------------------------------


class CheckpointStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def latest(self, stream: str) -> Checkpoint | None:
        row = await self.pool.fetchrow(
            "SELECT stream_seq, chain_hash FROM audit_checkpoints WHERE stream = $1 "
            "ORDER BY stream_seq DESC LIMIT 1",
            stream,
        )
        return Checkpoint(row["stream_seq"], row["chain_hash"]) if row else None

    async def all_from(self, stream: str, from_seq: int = 0) -> list[Checkpoint]:
        rows = await self.pool.fetch(
            "SELECT stream_seq, chain_hash FROM audit_checkpoints "
            "WHERE stream = $1 AND stream_seq >= $2 ORDER BY stream_seq",
            stream,
            from_seq,
        )
        return [Checkpoint(r["stream_seq"], r["chain_hash"]) for r in rows]

    async def before(self, stream: str, seq: int) -> Checkpoint | None:
        row = await self.pool.fetchrow(
            "SELECT stream_seq, chain_hash FROM audit_checkpoints "
            "WHERE stream = $1 AND stream_seq < $2 ORDER BY stream_seq DESC LIMIT 1",
            stream,
            seq,
        )
        return Checkpoint(row["stream_seq"], row["chain_hash"]) if row else None

    async def save(self, stream: str, cp: Checkpoint, messages: int) -> None:
        await self.pool.execute(
            "INSERT INTO audit_checkpoints (stream, stream_seq, chain_hash, messages) "
            "VALUES ($1, $2, $3, $4) ON CONFLICT (stream, stream_seq) DO NOTHING",
            stream,
            cp.seq,
            cp.chain_hash,
            messages,
        )


# --- verify --------------------------------------------------------------------------------


async def verify(
    js: JetStreamContext,
    store: CheckpointStore,
    stream: str = "TRADING",
    from_seq: int = 1,
    checkpoint_stream: str | None = None,
) -> VerifyResult:
    """Recompute the chain from the stream and compare it with every stored checkpoint from
    `from_seq` on. `checkpoint_stream` names whose checkpoints to use (a restored copy is
    checked against the original's)."""
    name = checkpoint_stream or stream
    start = await store.before(name, from_seq) if from_seq > 1 else None
    expected = {c.seq: c.chain_hash for c in await store.all_from(name, from_seq)}
    if not expected:
        return VerifyResult(True, 0, 0, detail=f"no checkpoints for {name} from {from_seq}")
    chain = bytes.fromhex(start.chain_hash) if start else GENESIS
    seq = start.seq if start else 0
    state = _Walk(last_good=start.seq if start else None)
    async for msg in read_stream(js, stream, seq + 1, max(expected)):
        if msg.seq != seq + 1:  # a hole: the stream lost messages (deleted, or aged out)
            return state.fail(seq + 1, f"sequence {seq + 1} missing from the stream")
        chain, seq = link(chain, msg), msg.seq
        state.checked += 1
        if seq in expected:
            if chain.hex() != expected[seq]:
                return state.fail(seq, f"chain differs from the checkpoint at sequence {seq}")
            state.good(seq)
    if seq < max(expected):
        missing = min(s for s in expected if s > seq)
        return state.fail(missing, f"stream ends at {seq}; a checkpoint exists at {missing}")
    return VerifyResult(True, state.checked, state.compared, last_good_seq=state.last_good)


@dataclass
class _Walk:
    last_good: int | None = None
    checked: int = 0
    compared: int = 0

    def good(self, seq: int) -> None:
        self.last_good = seq
        self.compared += 1

    def fail(self, seq: int, detail: str) -> VerifyResult:
        return VerifyResult(
            False,
            self.checked,
            self.compared + 1,
            first_bad_seq=seq,
            last_good_seq=self.last_good,
            detail=detail,
        )
