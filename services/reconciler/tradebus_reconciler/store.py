"""The reconciler's PostgreSQL tables (migrations/NNN_name.sql): trade checkpoints, balance
baselines, reports and audit checkpoints."""

from __future__ import annotations

import logging
import re
from datetime import datetime
from decimal import Decimal
from importlib import resources

import asyncpg
import msgspec

from tradebus_common.events import ReconReport

log = logging.getLogger("tradebus.reconciler.store")
_NAME = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")
_LOCK_KEY = 0x7265636F6E  # "recon": two reconcilers starting at once migrate one at a time


async def migrate(pool: asyncpg.Pool) -> list[int]:
    found = sorted(
        (int(m[1]), m[2], item.read_text())
        for item in resources.files(__package__).joinpath("migrations").iterdir()
        if (m := _NAME.match(item.name))
    )
    applied = []
    async with pool.acquire() as conn:
        await conn.execute("""CREATE TABLE IF NOT EXISTS reconciler_migrations (
            version INTEGER PRIMARY KEY, name TEXT NOT NULL,
            applied_at TIMESTAMPTZ NOT NULL DEFAULT now())""")
        await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
        try:
            current = await conn.fetchval(
                "SELECT coalesce(max(version), 0) FROM reconciler_migrations"
            )
            for version, name, sql in found:
                if version <= current:
                    continue
                async with conn.transaction():
                    await conn.execute(sql)
                    await conn.execute(
                        "INSERT INTO reconciler_migrations (version, name) VALUES ($1, $2)",
                        version,
                        name,
                    )
                log.info("migration applied", extra={"version": version, "migration": name})
                applied.append(version)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    return applied


class ReconStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def trades_until(self, venue: str) -> datetime | None:
        return await self.pool.fetchval(
            "SELECT trades_until FROM recon_checkpoints WHERE venue = $1", venue
        )

    async def set_trades_until(self, venue: str, until: datetime) -> None:
        await self.pool.execute(
            """INSERT INTO recon_checkpoints (venue, trades_until) VALUES ($1, $2)
            ON CONFLICT (venue) DO UPDATE SET trades_until = greatest(
                recon_checkpoints.trades_until, EXCLUDED.trades_until), updated_at = now()""",
            venue,
            until,
        )

    async def baseline(self, venue: str, kind: str = "balance") -> dict[str, Decimal] | None:
        rows = await self.pool.fetch(
            "SELECT currency, amount FROM recon_balance_baseline WHERE venue = $1 AND kind = $2",
            venue,
            kind,
        )
        return {r["currency"]: r["amount"] for r in rows if r["currency"]} if rows else None

    async def set_baseline(
        self, venue: str, amounts: dict[str, Decimal], by: str, kind: str = "balance"
    ) -> None:
        # An empty baseline is stored as one zero row, so "set, and nothing held" is not
        # mistaken for "never set".
        rows = sorted(amounts.items()) or [("", Decimal(0))]
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "DELETE FROM recon_balance_baseline WHERE venue = $1 AND kind = $2", venue, kind
            )
            await conn.executemany(
                "INSERT INTO recon_balance_baseline (venue, kind, currency, amount, set_by) "
                "VALUES ($1, $2, $3, $4, $5)",
                [(venue, kind, c, a, by) for c, a in rows],
            )

    async def save_report(self, report: ReconReport) -> None:
        await self.pool.execute(
            """INSERT INTO recon_reports (report_id, venue, ts, trigger, clean, resolved, body)
            VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb) ON CONFLICT (report_id) DO NOTHING""",
            report.id,
            report.venue,
            report.ts,
            report.trigger,
            report.clean,
            report.resolved,
            msgspec.json.encode(report).decode(),
        )

    async def reports_between(self, since: datetime, until: datetime) -> list[ReconReport]:
        rows = await self.pool.fetch(
            "SELECT body FROM recon_reports WHERE ts >= $1 AND ts < $2 ORDER BY ts, report_id",
            since,
            until,
        )
        return [msgspec.json.decode(r["body"], type=ReconReport) for r in rows]
