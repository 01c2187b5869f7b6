from __future__ import annotations

from decimal import Decimal

from tradebus_common import subjects
from tradebus_common.bus import Subscription, typed_decoder
from tradebus_common.config import Config
from tradebus_common.errors import ConfigError
from tradebus_common.events import (
    MarketTick,
    OrderDenied,
    PositionChanged,
    Signal,
    SizingMode,
    StrategyCommand,
)
from tradebus_common.runtime import ServiceContext, ServiceSpec

from .exits import ExitStore, ExitTickHandler, PositionHandler
from .handlers import SignalHandler
from .runs import RunHandler, RunStore


def check_sizing(config: Config) -> None:
    """A strategy config that would size every order wrong: refuse to start."""
    modes = {m.value for m in SizingMode}
    for name, strategy in config.strategies.items():
        if strategy.quantity is not None and not strategy.quantity > 0:
            raise ConfigError(
                f"strategies.{name}.quantity must be positive, got {strategy.quantity}"
            )
        if strategy.sizing_mode and strategy.sizing_mode not in modes:
            raise ConfigError(
                f"strategies.{name}.sizing_mode must be one of {sorted(modes)}, "
                f"got {strategy.sizing_mode!r}"
            )
        if not Decimal(0) < strategy.allocation_weight <= 1:
            raise ConfigError(f"strategies.{name}.allocation_weight must be in (0, 1]")
        for key in ("stop_loss_pct", "take_profit_pct", "trailing_stop_pct"):
            value = getattr(strategy, key)
            if value is not None and not Decimal(0) < value < 100:
                raise ConfigError(f"strategies.{name}.{key} must be in (0, 100)")


async def build(ctx: ServiceContext) -> None:
    config = ctx.config
    check_sizing(config)
    seen = await ctx.bus.kv(subjects.BUCKET_DEDUP)
    runs = RunStore(await ctx.bus.kv(subjects.BUCKET_STRATEGY_RUNS))
    exit_store = ExitStore(await ctx.bus.kv(subjects.BUCKET_EXITS))
    control = await ctx.bus.kv(subjects.BUCKET_CONTROL)
    handler = SignalHandler(config, ctx.bus, seen, runs, exit_store, control)
    ctx.subscriptions.append(
        Subscription(
            durable="signal",
            filter_subjects=[subjects.SIGNAL_ALL],
            decoder=typed_decoder(Signal),
            handler=handler,
            batch_handler=handler.batch,
        )
    )
    ctx.subscriptions.append(
        Subscription(
            durable="signal-runs",
            filter_subjects=[subjects.STRATEGY_COMMAND_ALL],
            decoder=typed_decoder(StrategyCommand),
            handler=RunHandler(runs, config.strategies, ctx.bus.publish_all),
        )
    )
    if config.signal.exits_enabled:
        add_exit_consumers(ctx, exit_store)


def add_exit_consumers(ctx: ServiceContext, store: ExitStore) -> None:
    ctx.subscriptions.append(
        Subscription(
            durable="signal-positions",
            filter_subjects=[subjects.POSITION_ALL, subjects.DENIED_ALL],
            decoder=typed_decoder(PositionChanged | OrderDenied),
            handler=PositionHandler(store, ctx.config.risk.account),
        )
    )
    ctx.subscriptions.append(
        Subscription(
            durable="signal-md",
            stream=subjects.STREAM_MARKET,
            filter_subjects=[subjects.market_all(v) for v in ctx.config.venues],
            decoder=typed_decoder(MarketTick),
            handler=ExitTickHandler(store, ctx.bus),
        )
    )


SPEC = ServiceSpec(name="signal", build=build)
