from __future__ import annotations

from typing import Any

from nats.aio.msg import Msg

from tradebus_common import subjects
from tradebus_common.bus import Subscription
from tradebus_common.codec import decode
from tradebus_common.control import control_decoder
from tradebus_common.events import OrderIntent
from tradebus_common.runtime import ServiceContext, ServiceSpec

from .handlers import ControlHandler, IntentHandler
from .state import TradingStateStore


def decode_message(msg: Msg) -> Any:
    if msg.subject.startswith(subjects.CONTROL_PREFIX):
        return control_decoder(msg)
    return decode(msg.data, OrderIntent)


async def build(ctx: ServiceContext) -> None:
    store = TradingStateStore(await ctx.bus.kv(subjects.BUCKET_CONTROL))
    initial = await store.initialize()
    if initial is not None:
        await ctx.bus.publish(initial)
    intents = IntentHandler(ctx.config, ctx.bus, store)
    control = ControlHandler(ctx.bus, store)

    async def handle(event: Any) -> Any:
        return await (intents(event) if isinstance(event, OrderIntent) else control(event))

    ctx.subscriptions.append(
        Subscription(
            durable="risk-gate",
            filter_subjects=[subjects.INTENT_ALL, subjects.CONTROL_HALT, subjects.CONTROL_RESUME],
            decoder=decode_message,
            handler=handle,
        )
    )


SPEC = ServiceSpec(name="risk-gate", build=build)
