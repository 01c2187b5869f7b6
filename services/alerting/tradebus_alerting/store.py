"""Alert state in the JetStream KV bucket `alerts` (no database: alerting must keep working
when PostgreSQL is the thing that is down).

Keys: `alert.<id>` AlertRecord, `notice.<id>` Notice, `sent.<notice id>.<sink>` a delivery
done, `dedup.<sha1 of key>` DedupState, `sink.<name>` SinkHealth.
"""

from __future__ import annotations

import hashlib
from typing import Any, TypeVar

import msgspec
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, NoKeysError
from nats.js.kv import KeyValue

from tradebus_common import subjects
from tradebus_common.bus import ensure_kv

from .model import AlertRecord, DedupState, Notice, SinkHealth

T = TypeVar("T")
_enc = msgspec.json.Encoder(decimal_format="string")


def dedup_slot(dedup_key: str) -> str:
    # Dedup keys are free text (`svc:deadletter:X`); KV keys allow a narrow alphabet.
    return hashlib.sha1(dedup_key.encode()).hexdigest()


async def open_bucket(js: JetStreamContext, ttl_days: int, replicas: int = 1) -> KeyValue:
    return await ensure_kv(
        js, subjects.BUCKET_ALERTS, history=1, ttl=ttl_days * 86400, replicas=replicas
    )


class AlertStore:
    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv

    async def _get(self, key: str, type_: type[T]) -> tuple[T, int] | None:
        try:
            entry = await self.kv.get(key)
        except KeyNotFoundError:
            return None
        if not entry.value:
            return None
        return msgspec.json.decode(entry.value, type=type_), entry.revision or 0

    async def _put(self, key: str, value: Any) -> int:
        return await self.kv.put(key, _enc.encode(value))

    async def record(self, alert_id: str) -> AlertRecord | None:
        got = await self._get(f"alert.{alert_id}", AlertRecord)
        return got[0] if got else None

    async def put_record(self, record: AlertRecord) -> None:
        await self._put(f"alert.{record.alert.id}", record)

    async def put_notice(self, notice: Notice) -> None:
        await self._put(f"notice.{notice.id}", notice)

    async def delivered(self, notice_id: str, sink: str) -> bool:
        return await self._get(f"sent.{notice_id}.{sink}", dict) is not None

    async def mark_delivered(self, notice_id: str, sink: str, outcome: str) -> None:
        await self._put(f"sent.{notice_id}.{sink}", {"outcome": outcome})

    async def dedup(self, dedup_key: str) -> DedupState | None:
        got = await self._get(f"dedup.{dedup_slot(dedup_key)}", DedupState)
        return got[0] if got else None

    async def put_dedup(self, dedup_key: str, state: DedupState) -> None:
        await self._put(f"dedup.{dedup_slot(dedup_key)}", state)

    async def delete_dedup(self, dedup_key: str) -> None:
        await self.kv.delete(f"dedup.{dedup_slot(dedup_key)}")

    async def delete_notice(self, notice_id: str) -> None:
        # Every sink has an outcome: nothing to resume after a restart.
        await self.kv.delete(f"notice.{notice_id}")

    async def put_sink_health(self, health: SinkHealth) -> None:
        await self._put(f"sink.{health.sink}", health)

    async def all(self, prefix: str, type_: type[T]) -> list[T]:
        try:
            keys = await self.kv.keys(filters=[f"{prefix}."])
        except NoKeysError:
            return []
        out = []
        for key in keys:
            if key.startswith(f"{prefix}."):
                got = await self._get(key, type_)
                if got:
                    out.append(got[0])
        return out
