"""Sessions: a session is one run of the ledger service, from its start to the start of the
next one. Each start is recorded with every account's equity at that moment, so a session's
return is measured from where it began. Trades belong to the session in which they closed
(by the closing fill's event time), so session statistics come from the same closed cycles
as everything else and a replay changes nothing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import asyncpg

from tradebus_common.events import LedgerSnapshot, utcnow


@dataclass(frozen=True)
class Session:
    session_id: str
    instance: str
    started_at: datetime
    ended_at: datetime | None  # the next session's start; None: the newest one
    start_equity: dict[str, Decimal]


async def start_session(
    pool: asyncpg.Pool, session_id: str, instance: str, snapshots: Sequence[LedgerSnapshot]
) -> str:
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO ledger_sessions (session_id, instance, started_at) VALUES ($1,$2,$3)",
            session_id,
            instance,
            utcnow(),
        )
        await conn.executemany(
            "INSERT INTO session_accounts (session_id, account, start_equity) VALUES ($1,$2,$3)",
            [(session_id, s.account, s.equity) for s in snapshots],
        )
    return session_id


async def sessions(conn: asyncpg.Connection, limit: int = 100) -> list[Session]:
    """The newest sessions first, each with its end (the next one's start)."""
    rows = await conn.fetch(
        "SELECT session_id, instance, started_at, lead(started_at) OVER (ORDER BY started_at, "
        "session_id) AS ended_at FROM ledger_sessions ORDER BY started_at DESC, session_id DESC "
        "LIMIT $1",
        limit,
    )
    equity = await conn.fetch(
        "SELECT session_id, account, start_equity FROM session_accounts "
        "WHERE session_id = ANY($1::text[])",
        [r["session_id"] for r in rows],
    )
    by_session: dict[str, dict[str, Decimal]] = {}
    for e in equity:
        by_session.setdefault(e["session_id"], {})[e["account"]] = e["start_equity"]
    return [
        Session(
            r["session_id"],
            r["instance"],
            r["started_at"],
            r["ended_at"],
            by_session.get(r["session_id"], {}),
        )
        for r in rows
    ]


def find(all_sessions: Sequence[Session], wanted: str, current: str | None) -> Session | None:
    """A session by id, or "current" (this run's)."""
    key = current if wanted == "current" else wanted
    return next((s for s in all_sessions if s.session_id == key), None)
