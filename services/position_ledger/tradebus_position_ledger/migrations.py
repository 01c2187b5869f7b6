"""Versioned SQL migrations (migrations/NNN_name.sql), applied at start in one transaction
each and recorded in schema_migrations. A database newer than this code is refused."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from importlib import resources

import asyncpg

from tradebus_common.errors import ConfigError

log = logging.getLogger("tradebus.position_ledger.migrations")
_NAME = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")
_LOCK_KEY = 0x7472616465  # advisory lock: two ledgers starting at once migrate one at a time


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def available() -> list[Migration]:
    found = []
    for item in resources.files(__package__).joinpath("migrations").iterdir():
        match = _NAME.match(item.name)
        if match:
            found.append(Migration(int(match[1]), match[2], item.read_text()))
    return sorted(found, key=lambda m: m.version)


async def migrate(conn: asyncpg.Connection) -> list[int]:
    """Apply what is missing; return the versions applied."""
    await conn.execute("""CREATE TABLE IF NOT EXISTS schema_migrations (
        version INTEGER PRIMARY KEY, name TEXT NOT NULL,
        applied_at TIMESTAMPTZ NOT NULL DEFAULT now())""")
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
    try:
        return await _apply_missing(conn, available())
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)


async def _apply_missing(conn: asyncpg.Connection, migrations: list[Migration]) -> list[int]:
    current = await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_migrations")
    known = migrations[-1].version if migrations else 0
    if current > known:
        raise ConfigError(
            f"database schema version {current} is newer than this code "
            f"knows ({known}): upgrade tradebus before starting the ledger"
        )
    applied = []
    for m in migrations:
        if m.version <= current:
            continue
        async with conn.transaction():
            await conn.execute(m.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", m.version, m.name
            )
        log.info("migration applied", extra={"version": m.version, "migration": m.name})
        applied.append(m.version)
    return applied
