"""PostgreSQL connection pools for the services that use the database (asyncpg)."""

from __future__ import annotations

import asyncpg

from .config import Config
from .errors import ConfigError


async def create_pool(config: Config, service: str) -> asyncpg.Pool:
    """A pool on the configured DSN; a missing DSN is a config error that says how to set it."""
    dsn = config.database_dsn()
    if not dsn:
        raise ConfigError(
            f"{service} needs the database: set [database] dsn, TRADEBUS__DATABASE__DSN "
            f"or ${config.database.dsn_env}"
        )
    db = config.database
    return await asyncpg.create_pool(dsn, min_size=db.min_pool, max_size=db.max_pool)
