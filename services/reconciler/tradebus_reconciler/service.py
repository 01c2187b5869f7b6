from __future__ import annotations

from tradebus_common import subjects
from tradebus_common.bus import Subscription
from tradebus_common.control import control_decoder
from tradebus_common.db import create_pool
from tradebus_common.runtime import ServiceContext, ServiceSpec

from .handlers import ReconcileHandler


async def build(ctx: ServiceContext) -> None:
    pool = await create_pool(ctx.config, ctx.name)
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
