"""S6: the example strategy, an SMA cross on md ticks (`tradebus run example-strategy`;
`tradebus up` starts it when `[example_strategy] enabled = true`).

Long only. When the fast average crosses above the slow one while flat, it buys `quantity`
with a bracket (stop-loss and take-profit, % from the tick's price), which the signal service
manages. While long and the fast average is below the slow one, it asks for target position
0 (the signal service sizes the delta from the ledger, so an exit that already closed the
position makes that a no-op). Its position comes from its own fills, as a strategy's should.

It runs through the service runtime: two durable consumers (ticks, fills); a signal's id is
derived from the tick that caused it, so a redelivered tick re-sends the same signal, which
is dropped as a duplicate.
"""

from __future__ import annotations

import logging
from collections import deque
from datetime import datetime, timedelta
from decimal import Decimal

from tradebus_common import subjects
from tradebus_common.bus import Subscription, typed_decoder
from tradebus_common.config import ExampleStrategyConfig
from tradebus_common.events import (
    Bracket,
    Event,
    Fill,
    LedgerSnapshot,
    MarketTick,
    OrderType,
    Side,
    Signal,
    utcnow,
)
from tradebus_common.ids import derive_id
from tradebus_common.runtime import ServiceContext, ServiceSpec

log = logging.getLogger("tradebus.example_strategy")
HUNDRED = Decimal(100)
# Older ticks (a replay of the stream on first start) only warm the averages up: trading on
# them would send market orders for prices long gone.
MAX_TICK_AGE = timedelta(seconds=10)


class SmaCross:
    """Two simple moving averages over the last prices; says where the fast one is."""

    def __init__(self, fast: int, slow: int) -> None:
        self.fast, self.slow = fast, slow
        self.prices: deque[Decimal] = deque(maxlen=slow)
        self.above: bool | None = None  # fast above slow, once both windows are full

    def update(self, price: Decimal) -> str | None:
        """'up' when the fast average just crossed above the slow one, 'down' while it is
        below, None otherwise (or while warming up)."""
        self.prices.append(price)
        if len(self.prices) < self.slow:
            return None
        window = list(self.prices)
        fast = sum(window[-self.fast :]) / self.fast
        slow = sum(window) / self.slow
        was, self.above = self.above, fast > slow
        if self.above and was is False:
            return "up"
        return "down" if not self.above else None


class SmaStrategy:
    def __init__(self, config: ExampleStrategyConfig) -> None:
        self.config = config
        self.sma = SmaCross(config.fast_window, config.slow_window)
        self.position = Decimal(0)
        self.pending = ""  # a signal sent whose fill has not come yet
        self.since: datetime | None = None  # fills before this are in `position` already

    def on_tick(self, tick: MarketTick) -> list[Event]:
        if tick.symbol != self.config.symbol:
            return []
        move = self.sma.update(tick.price)
        if self.pending or move is None or utcnow() - tick.ts > MAX_TICK_AGE:
            return []
        if move == "up" and self.position == 0:
            return [
                self._signal(
                    tick,
                    "entry",
                    side=Side.BUY,
                    quantity=self.config.quantity,
                    bracket=self._bracket(tick.price),
                )
            ]
        if move == "down" and self.position > 0:
            return [self._signal(tick, "exit", side=Side.SELL, target_position=Decimal(0))]
        return []

    def on_fill(self, fill: Fill) -> None:
        if fill.strategy != self.config.strategy or fill.symbol != self.config.symbol:
            return
        if self.since is not None and fill.ts < self.since:
            return
        signed = fill.quantity if fill.side is Side.BUY else -fill.quantity
        self.position += signed
        self.pending = ""

    def on_rejected(self) -> None:
        self.pending = ""

    def _bracket(self, price: Decimal) -> Bracket:
        c = self.config
        return Bracket(
            stop_loss=(price * (1 - c.stop_loss_pct / HUNDRED)).quantize(Decimal("0.01")),
            take_profit=(price * (1 + c.take_profit_pct / HUNDRED)).quantize(Decimal("0.01")),
        )

    def _signal(self, tick: MarketTick, leg: str, **fields: object) -> Signal:
        c = self.config
        sid = derive_id(c.strategy, tick.id, leg)
        self.pending = sid
        log.info("signal", extra={"leg": leg, "price": str(tick.price), "signal_id": sid})
        return Signal(
            id=sid,
            strategy=c.strategy,
            venue=c.venue,
            symbol=c.symbol,
            order_type=OrderType.MARKET,
            tags={"source": "example_sma", "leg": leg},
            ttl_s=30,
            **fields,  # type: ignore[arg-type]
        )


async def build(ctx: ServiceContext) -> None:
    config = ctx.config.example_strategy
    if not config.enabled:
        log.info("example strategy disabled by config ([example_strategy] enabled = false)")
        return
    strategy = SmaStrategy(config)
    strategy.position, strategy.since = await _position_now(ctx, config)

    async def on_tick(tick: MarketTick) -> list[Event]:
        return strategy.on_tick(tick)

    async def on_feedback(event: object) -> list[Event]:
        if isinstance(event, Fill):
            strategy.on_fill(event)
        else:
            strategy.on_rejected()
        return []

    ctx.subscriptions.append(
        Subscription(
            durable="example-strategy-fills",
            filter_subjects=[
                subjects.FILL_ALL,
                subjects.strategy_rejected(config.strategy),
                subjects.denied(config.strategy),
            ],
            decoder=lambda msg: _feedback(msg, config.strategy),
            handler=on_feedback,
        )
    )
    ctx.subscriptions.append(
        Subscription(
            durable="example-strategy",
            stream=subjects.STREAM_MARKET,
            filter_subjects=[subjects.market(config.venue, config.symbol)],
            decoder=typed_decoder(MarketTick),
            handler=on_tick,
        )
    )


async def _position_now(
    ctx: ServiceContext, config: ExampleStrategyConfig
) -> tuple[Decimal, datetime | None]:
    """Where a (re)start begins: the ledger's latest view of our position and its time (the
    fills consumer replays, so older fills are skipped). The exit asks for target 0, so a
    slightly wrong count never sells more than the ledger holds."""
    found = await ctx.bus.last_event(
        subjects.STREAM_TRADING, subjects.ledger_snapshot(ctx.config.risk.account), LedgerSnapshot
    )
    if found is None:
        return Decimal(0), None
    position = sum(
        (
            p.quantity
            for p in found[0].positions
            if (p.strategy, p.venue, p.symbol) == (config.strategy, config.venue, config.symbol)
        ),
        Decimal(0),
    )
    return position, found[0].ts


def _feedback(msg: object, strategy: str) -> object | None:
    """Our fills, denials and rejections; anything else is acked and skipped (None)."""
    from tradebus_common.codec import decode

    event = decode(msg.data)  # type: ignore[attr-defined]
    return event if getattr(event, "strategy", None) == strategy else None


SPEC = ServiceSpec(name="example-strategy", build=build)
