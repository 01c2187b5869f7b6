"""What the reconciler reads on our side: the gateway's order journal (KV) and the ledger
(PostgreSQL tables of position_ledger, migrations 001/002: `fills`, `positions`)."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import asyncpg
import msgspec
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from tradebus_common.events import PositionView
from tradebus_common.mirror import bucket_entries

# Journal statuses that mean "we believe this order may still be working at the venue".
# The gateway writes `submitting` before it sends, then the venue's status.
OPEN_STATUSES = frozenset({"submitting", "open", "partially_filled", "unknown", "accepted"})
ADOPTED = "external"  # an external order the reconciler adopted (policy)


@dataclass(frozen=True)
class JournalRecord:
    client_order_id: str
    status: str
    approved_id: str = ""
    venue: str = ""  # the gateway may not record it; then every venue is asked
    written_at: datetime | None = None
    revision: int = 0  # of the KV entry read: resolutions are written compare-and-set on it

    @property
    def open(self) -> bool:
        return self.status in OPEN_STATUSES


def _record(
    key: str, value: bytes, created: datetime | None, revision: int = 0
) -> JournalRecord | None:
    try:
        raw = msgspec.json.decode(value or b"{}")
    except msgspec.DecodeError:
        return None
    if not isinstance(raw, dict):
        return None
    return JournalRecord(
        client_order_id=str(raw.get("client_order_id") or key),
        status=str(raw.get("status", "")),
        approved_id=str(raw.get("approved_id", "")),
        venue=str(raw.get("venue", "")),
        written_at=created,
        revision=revision,
    )


async def read_journal(kv: KeyValue, timeout_s: float = 10.0) -> dict[str, JournalRecord]:
    """The latest entry per client order id, with when it was written (a watch carries the
    write time; a plain get does not)."""
    found: dict[str, JournalRecord] = {}
    for key, stored in (await bucket_entries(kv)).items():  # a complete copy of the journal
        rec = _record(key, stored.data or b"", stored.ts, stored.seq)
        if rec is not None:
            found[key] = rec
    return found


async def is_journaled(kv: KeyValue, cid: str) -> bool:
    try:
        await kv.get(cid)
    except KeyNotFoundError:
        return False
    return True


async def put_journal(
    kv: KeyValue, cid: str, status: str, approved_id: str, venue: str, last: int | None = None
) -> bool:
    """Record how the reconciler resolved an order (C4), keeping every field the gateway
    wrote (its approval, its last venue record): only status and venue change. With `last`,
    only if the entry is still at that revision (False: the gateway wrote meanwhile)."""
    body: dict[str, object] = {}
    revision = 0
    with contextlib.suppress(KeyNotFoundError, msgspec.DecodeError):
        entry = await kv.get(cid)
        revision = entry.revision or 0
        found = msgspec.json.decode(entry.value or b"{}")
        body = found if isinstance(found, dict) else {}
    if last is not None and revision != last:
        return False
    body.update(client_order_id=cid, status=status, venue=venue)
    body.setdefault("approved_id", approved_id)
    data = msgspec.json.encode(body)
    if last is None:
        await kv.put(cid, data)
        return True
    try:
        await kv.update(cid, data, last=last)
    except KeyWrongLastSequenceError:
        return False
    return True


# --- ledger -----------------------------------------------------------------------------

_POSITIONS = """
SELECT venue, symbol, strategy, account, quantity, avg_price, realized_pnl FROM positions
WHERE venue = $1"""
# A fee charged in the base currency (BTC on BTC/USDT; Binance spot buys) is booked by the
# ledger as a cost at the fill price, so its position is the gross quantity traded; the venue
# holds that minus the fee. Positions are compared net of those fees.
_BASE_FEES = """
SELECT symbol, strategy, account, sum(fee) AS fee FROM fills
WHERE venue = $1 AND fee_currency <> '' AND fee_currency = split_part(symbol, '/', 1)
GROUP BY symbol, strategy, account"""
_BOOKED = "SELECT trade_id FROM fills WHERE venue = $1 AND trade_id = ANY($2::text[])"
_FLOWS = """
SELECT symbol, side, sum(quantity) AS qty, sum(quantity * price) AS notional
FROM fills WHERE venue = $1 GROUP BY symbol, side"""
_FEES = "SELECT fee_currency, sum(fee) AS fee FROM fills WHERE venue = $1 GROUP BY fee_currency"


async def ledger_positions(pool: asyncpg.Pool, venue: str) -> list[PositionView]:
    try:
        rows, fees = await asyncio.gather(
            pool.fetch(_POSITIONS, venue), pool.fetch(_BASE_FEES, venue)
        )
    except asyncpg.UndefinedTableError:  # the ledger has not migrated yet: nothing booked
        return []
    held = [PositionView(**dict(r)) for r in rows]
    paid = [
        PositionView(
            venue=venue, symbol=r["symbol"], strategy=r["strategy"], account=r["account"],
            quantity=-r["fee"],
        )
        for r in fees
    ]  # fmt: skip
    return held + paid


async def booked_trade_ids(pool: asyncpg.Pool, venue: str, trade_ids: list[str]) -> set[str]:
    if not trade_ids:
        return set()
    try:
        rows = await pool.fetch(_BOOKED, venue, trade_ids)
    except asyncpg.UndefinedTableError:
        return set()
    return {r["trade_id"] for r in rows}


@dataclass(frozen=True)
class FlowRow:
    symbol: str
    side: str
    qty: Decimal
    notional: Decimal


async def ledger_flows(pool: asyncpg.Pool, venue: str) -> tuple[list[FlowRow], dict[str, Decimal]]:
    """Booked fills summed per symbol and side, and fees per currency: what the ledger says
    moved through the venue account."""
    try:
        rows, fees = await asyncio.gather(pool.fetch(_FLOWS, venue), pool.fetch(_FEES, venue))
    except asyncpg.UndefinedTableError:
        return [], {}
    flows = [FlowRow(r["symbol"], r["side"], r["qty"], r["notional"]) for r in rows]
    return flows, {r["fee_currency"]: r["fee"] for r in fees if r["fee_currency"]}


def utcnow() -> datetime:
    return datetime.now(UTC)
