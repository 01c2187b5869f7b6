from __future__ import annotations

from tradebus_common import subjects
from tradebus_common.bus import Subscription, typed_decoder
from tradebus_common.events import Signal
from tradebus_common.runtime import ServiceContext, ServiceSpec

from .handlers import SignalHandler


async def build(ctx: ServiceContext) -> None:
    seen = await ctx.bus.kv(subjects.BUCKET_DEDUP)
    ctx.subscriptions.append(Subscription(
        durable="signal", filter_subjects=[subjects.SIGNAL_ALL],
        decoder=typed_decoder(Signal), handler=SignalHandler(ctx.config, ctx.bus, seen),
    ))


SPEC = ServiceSpec(name="signal", build=build)
