from __future__ import annotations

from tradebus_common import subjects
from tradebus_common.bus import Subscription
from tradebus_common.control import control_decoder
from tradebus_common.db import create_pool
from tradebus_common.runtime import ServiceContext, ServiceSpec

from .audit import CheckpointStore
from .auditor import Chainer
from .engine import Reconciler
from .gate import GateKeeper, GateStore
from .handlers import ReconcileHandler
from .schedule import EndOfDay, parse_hhmm, periodic_tasks
from .store import migrate


async def build(ctx: ServiceContext) -> None:
    cfg = ctx.config.reconciler
    pool = await create_pool(ctx.config, ctx.name)
    ctx.cleanups.append(pool.close)
    await migrate(pool)
    venues = list(ctx.config.venues)
    engine = Reconciler(ctx.config, ctx.bus, pool, await ctx.bus.kv(subjects.BUCKET_ORDER_JOURNAL))
    gates = GateStore(await ctx.bus.kv(subjects.BUCKET_CONTROL))
    keeper = GateKeeper(ctx.bus, gates, engine, venues)
    if cfg.startup_gate:
        await keeper.open_run("reconciler started")  # shut before anything else runs
        ctx.tasks.append(keeper.loop)
    ctx.subscriptions.append(
        Subscription(
            durable="reconciler",
            filter_subjects=[subjects.CONTROL_RECONCILE],
            decoder=control_decoder,
            handler=ReconcileHandler(ctx.config, ctx.bus, engine, gates, keeper),
        )
    )
    ctx.tasks += periodic_tasks(engine, cfg, venues)
    if parse_hhmm(cfg.end_of_day_utc) is not None:
        ctx.tasks.append(EndOfDay(engine, cfg, venues).run_forever)
    if cfg.audit_checkpoint_interval_s > 0 or cfg.audit_checkpoint_every_msgs > 0:
        ctx.tasks.append(Chainer(ctx.bus.js, CheckpointStore(pool), cfg, ctx.bus).run_forever)


SPEC = ServiceSpec(name="reconciler", build=build)
