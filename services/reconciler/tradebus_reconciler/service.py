from __future__ import annotations

import asyncpg
from tradebus_common import subjects
from tradebus_common.bus import Subscription
from tradebus_common.control import control_decoder
from tradebus_common.errors import ConfigError
from tradebus_common.runtime import ServiceContext, ServiceSpec

from .handlers import ReconcileHandler


async def build(ctx: ServiceContext) -> None:
    dsn = ctx.config.database_dsn()
    if not dsn:
        raise ConfigError(
            "reconciler needs the ledger database: set [database] dsn or TRADEBUS__DATABASE__DSN"
        )
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    ctx.cleanups.append(pool.close)
    ctx.subscriptions.append(
        Subscription(
            durable="reconciler",
            filter_subjects=[subjects.CONTROL_RECONCILE],
            decoder=control_decoder,
            handler=ReconcileHandler(ctx.config, ctx.bus, pool),
        )
    )


SPEC = ServiceSpec(name="reconciler", build=build)
