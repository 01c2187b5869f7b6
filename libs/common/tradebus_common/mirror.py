"""An in-memory copy of the newest message per subject of a stream, kept current by an
ordered push consumer (deliver last-per-subject, then every new message).

A KV bucket is a stream (`KV_<bucket>`, subjects `$KV.<bucket>.<key>`), so the same mirror
serves the latched trading state and locks as well as the last market tick or ledger snapshot.
It replaces a server round trip per read with a dictionary lookup, which is what makes the
risk-gate's per-intent view cheap (docs/performance.md).

Safety rules, because readers fail closed on what they see here:
- Nothing is served before the initial copy is complete: `get` waits for it (bounded) and
  raises TransientError when it can't, so the message that asked is retried, never judged on
  a partial picture.
- After a reconnect the copy is rebuilt from the server before it is served again.
- A writer that changed a key itself calls `note` so its own next read sees the change at
  once; an update older than what is held (by stream sequence) never replaces it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from nats.aio.msg import Msg
from nats.js import api
from nats.js.client import JetStreamContext
from nats.js.kv import KeyValue

from .errors import TransientError

log = logging.getLogger("tradebus.mirror")

_KV_OPERATION = "KV-Operation"
_DELETED = ("DEL", "PURGE")
READY_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Mirrored:
    data: bytes | None  # None: deleted (kept, so an older in-flight put can't revive it)
    seq: int
    ts: datetime | None = None  # when the stream stored it


class StreamMirror:
    def __init__(
        self,
        js: JetStreamContext,
        stream: str,
        filter_subject: str,
        reconnects: Callable[[], int],
        on_message: Callable[[str, bytes], None] | None = None,
    ) -> None:
        self.js = js
        self.on_message = on_message  # sees every new message (and the initial copy)
        self.stream = stream
        self.filter_subject = filter_subject
        self._reconnects = reconnects
        self._seen_reconnects = -1
        self._values: dict[str, Mirrored] = {}
        self._ready = asyncio.Event()
        self._received = 0
        self._sub: object | None = None
        self._pending_at_start = 0
        self._lock = asyncio.Lock()

    @classmethod
    def of_bucket(
        cls, js: JetStreamContext, bucket: str, reconnects: Callable[[], int]
    ) -> StreamMirror:
        return cls(js, f"KV_{bucket}", f"$KV.{bucket}.>", reconnects)

    async def start(self) -> None:
        async with self._lock:
            await self._subscribe()
        await self._wait_ready()

    async def stop(self) -> None:
        sub, self._sub = self._sub, None
        if sub is not None:
            try:
                await sub.unsubscribe()  # type: ignore[attr-defined]
            except Exception as e:  # closing connection: nothing left to release
                log.debug("mirror unsubscribe failed", extra={"error": repr(e)})

    async def get(self, subject: str) -> Mirrored | None:
        """The newest message on `subject` (None: there is none), from a complete copy."""
        await self._ensure_current()
        found = self._values.get(subject)
        return found if found is not None and found.data is not None else None

    async def get_key(self, key: str) -> Mirrored | None:
        """For a KV mirror: the newest value of `key` (None: never written, or deleted)."""
        return await self.get(self._key_subject(key))

    def note_key(self, key: str, data: bytes | None, seq: int) -> None:
        """A write this process made (seq: the revision the server returned)."""
        self._apply(self._key_subject(key), data, seq)

    async def current(self) -> dict[str, Mirrored]:
        """Every live subject's newest message, from a complete, current copy."""
        await self._ensure_current()
        return self.values()

    def values(self) -> dict[str, Mirrored]:
        return {k: v for k, v in self._values.items() if v.data is not None}

    def _key_subject(self, key: str) -> str:
        return self.filter_subject[:-1] + key  # "$KV.<bucket>.>" -> "$KV.<bucket>.<key>"

    async def _ensure_current(self) -> None:
        if self._reconnects() != self._seen_reconnects or self._sub is None:
            async with self._lock:
                if self._reconnects() != self._seen_reconnects or self._sub is None:
                    await self.stop()
                    await self._subscribe()
        await self._wait_ready()

    async def _subscribe(self) -> None:
        self._ready.clear()
        self._values = {}
        self._received = 0
        self._seen_reconnects = self._reconnects()
        try:
            self._sub = await self.js.subscribe(
                self.filter_subject,
                stream=self.stream,
                cb=self._on_msg,
                ordered_consumer=True,
                deliver_policy=api.DeliverPolicy.LAST_PER_SUBJECT,
            )
            info = await self._sub.consumer_info()  # type: ignore[attr-defined]
        except Exception as e:
            self._sub = None
            raise TransientError(f"mirror of {self.filter_subject} failed to start: {e!r}") from e
        # Complete once nothing is pending and every delivered message has been applied
        # (the last one may still sit in the client's queue when the info comes back).
        if info.num_pending == 0 and self._received >= (info.delivered.consumer_seq or 0):
            self._ready.set()

    async def _wait_ready(self) -> None:
        if self._ready.is_set():
            return
        try:
            await asyncio.wait_for(self._ready.wait(), READY_TIMEOUT_S)
        except TimeoutError as e:
            raise TransientError(f"mirror of {self.filter_subject} not ready") from e

    async def _on_msg(self, msg: Msg) -> None:
        meta = msg.metadata
        op = (msg.headers or {}).get(_KV_OPERATION)
        seq = meta.sequence.stream
        self._apply(msg.subject, None if op in _DELETED else msg.data, seq, meta.timestamp)
        if self.on_message is not None and op not in _DELETED:
            try:
                self.on_message(msg.subject, msg.data)
            except Exception as e:  # an observer's bug must not stop the copy
                log.warning("mirror observer failed", extra={"error": repr(e)})
        self._received += 1
        if meta.num_pending == 0:
            self._ready.set()

    def _apply(
        self, subject: str, data: bytes | None, seq: int, ts: datetime | None = None
    ) -> None:
        held = self._values.get(subject)
        if held is not None and held.seq >= seq:
            return
        self._values[subject] = Mirrored(data=data, seq=seq, ts=ts)


async def bucket_entries(kv: KeyValue) -> dict[str, Mirrored]:
    """Every live key of a KV bucket with its newest value, from a complete copy.

    Use this rather than KeyValue.keys() or a watchall() read up to its first None: nats-py
    sends that marker when the consumer reports nothing pending, which can be while the
    delivered messages are still on their way to the callback, so those reads can come back
    short (seen under load). Readers at a restart must see every key."""
    # nats-py keeps the bucket's name and JetStream context on the KeyValue it returns.
    mirror = StreamMirror.of_bucket(kv._js, kv._name, lambda: 0)
    await mirror.start()
    try:
        prefix = f"$KV.{kv._name}."
        return {k[len(prefix) :]: v for k, v in mirror.values().items()}
    finally:
        await mirror.stop()
