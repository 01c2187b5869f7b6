from __future__ import annotations

from tradebus_common import subjects
from tradebus_common.bus import Subscription, typed_decoder
from tradebus_common.events import Alert, Event
from tradebus_common.runtime import ServiceContext, ServiceSpec

from .sinks import LogSink


async def build(ctx: ServiceContext) -> None:
    sinks = [LogSink()]

    async def on_alert(alert: Alert) -> list[Event]:
        for sink in sinks:
            await sink.send(alert)
        return []

    ctx.subscriptions.append(
        Subscription(
            durable="alerting",
            filter_subjects=[subjects.ALERT_ALL],
            decoder=typed_decoder(Alert),
            handler=on_alert,
        )
    )


SPEC = ServiceSpec(name="alerting", build=build)
