from __future__ import annotations

from tradebus_common import subjects
from tradebus_common.bus import Subscription, typed_decoder
from tradebus_common.config import Config
from tradebus_common.errors import ConfigError
from tradebus_common.events import Signal
from tradebus_common.runtime import ServiceContext, ServiceSpec

from .handlers import SignalHandler


def check_sizing(config: Config) -> None:
    """A fixed quantity of zero or less would size every order wrong: refuse to start."""
    for name, strategy in config.strategies.items():
        if strategy.quantity is not None and not strategy.quantity > 0:
            raise ConfigError(
                f"strategies.{name}.quantity must be positive, got {strategy.quantity}"
            )


async def build(ctx: ServiceContext) -> None:
    check_sizing(ctx.config)
    seen = await ctx.bus.kv(subjects.BUCKET_DEDUP)
    ctx.subscriptions.append(
        Subscription(
            durable="signal",
            filter_subjects=[subjects.SIGNAL_ALL],
            decoder=typed_decoder(Signal),
            handler=SignalHandler(ctx.config, ctx.bus, seen),
        )
    )


SPEC = ServiceSpec(name="signal", build=build)
