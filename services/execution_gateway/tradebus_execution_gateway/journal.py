"""The order journal: JetStream KV `order_journal`, one key per client order id (E2).

An entry is created (compare-and-set) before the venue hears of the order, and updated with
what we learned after each venue call. It keeps the approval and the last venue record we
published events for, so a restarted gateway can rebuild its working orders and resolve each
against the venue. Statuses: `submitting` (journaled, maybe sent), `unknown` (sent, outcome
unknown), then the venue's: open, partially_filled, filled, canceled, rejected, expired.

The reconciler reads (and for C4 may write) `client_order_id`, `approved_id`, `status` and
`venue`; every other field is optional so its writes still decode.
"""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from tradebus_common.events import OrderApproved
from tradebus_common.mirror import bucket_entries

from .venues.base import VenueOrder

SUBMITTING = "submitting"
UNKNOWN = "unknown"
TERMINAL = frozenset({"filled", "canceled", "rejected", "expired"})
RESOLVABLE = frozenset({SUBMITTING, UNKNOWN, "open", "partially_filled", "accepted"})


class JournalEntry(msgspec.Struct, kw_only=True):
    client_order_id: str
    approved_id: str = ""
    status: str
    venue: str = ""
    approval: OrderApproved | None = None
    order: VenueOrder | None = None  # the venue's record as last announced on the bus
    journaled_at: datetime | None = None
    sent_at: datetime | None = None  # the last create call (grace for "not found")
    lookups: int = 0  # lookups by client order id since it became UNKNOWN

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL


_encoder = msgspec.json.Encoder(decimal_format="string")
_decoder = msgspec.json.Decoder(JournalEntry)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Journal:
    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv

    async def get(self, client_order_id: str) -> JournalEntry | None:
        try:
            entry = await self.kv.get(client_order_id)
        except KeyNotFoundError:
            return None
        return _decode(entry.value)

    async def create(self, entry: JournalEntry) -> bool:
        """Write a new entry; False when one exists already (a redelivery, a race)."""
        try:
            await self.kv.create(entry.client_order_id, _encoder.encode(entry))
        except KeyWrongLastSequenceError:
            return False
        return True

    async def put(self, entry: JournalEntry) -> None:
        await self.kv.put(entry.client_order_id, _encoder.encode(entry))

    async def resolvable(self) -> list[JournalEntry]:
        """Every entry that may still be working or is unresolved, newest value per key, from
        a complete copy of the journal (a restart must see every order)."""
        found = []
        for stored in (await bucket_entries(self.kv)).values():
            entry = _decode(stored.data)
            if entry is not None and entry.status in RESOLVABLE:
                found.append(entry)
        return sorted(found, key=lambda e: e.client_order_id)


def _decode(value: bytes | None) -> JournalEntry | None:
    try:
        return _decoder.decode(value or b"")
    except msgspec.DecodeError:  # not ours (or damaged): the reconciler reports it
        return None
