from __future__ import annotations

import logging

import asyncpg

from tradebus_common import subjects
from tradebus_common.bus import Subscription, current_delivery, typed_decoder
from tradebus_common.db import create_pool
from tradebus_common.events import Event, Fill, PositionChanged
from tradebus_common.ids import derive_id
from tradebus_common.runtime import ServiceContext, ServiceSpec

from .migrations import migrate
from .store import RecordedFill, record_fill

log = logging.getLogger("tradebus.position_ledger")


async def open_pool(ctx: ServiceContext) -> asyncpg.Pool:
    pool = await create_pool(ctx.config, ctx.name)
    async with pool.acquire() as conn:
        await migrate(conn)
    return pool


def position_changed(fill: Fill, recorded: RecordedFill) -> PositionChanged:
    pos = recorded.position
    return PositionChanged(
        id=derive_id(recorded.fill_id, "position"),
        account=fill.account,
        venue=fill.venue,
        symbol=fill.symbol,
        strategy=fill.strategy,
        quantity=pos.quantity,
        avg_price=pos.avg_price,
        realized_pnl=pos.realized_pnl,
        fees_paid=pos.fees_paid,
        fill_id=recorded.fill_id,
    )


async def build(ctx: ServiceContext) -> None:
    pool = await open_pool(ctx)
    ctx.cleanups.append(pool.close)

    async def on_fill(fill: Fill) -> list[Event]:
        delivery = current_delivery.get()
        recorded = await record_fill(pool, fill, delivery.stream_seq if delivery else None)
        log.info(
            "fill recorded" if recorded.new else "fill already recorded (no-op)",
            extra={"fill_id": fill.id, "venue": fill.venue, "trade_id": fill.trade_id},
        )
        # Announced on every delivery with the same id: if the first announcement was lost
        # after the commit, the redelivery publishes it; otherwise the stream drops the copy.
        return [position_changed(fill, recorded)]

    ctx.subscriptions.append(
        Subscription(
            durable="position-ledger",
            filter_subjects=[subjects.FILL_ALL],
            decoder=typed_decoder(Fill),
            handler=on_fill,
        )
    )


SPEC = ServiceSpec(name="position-ledger", build=build)
