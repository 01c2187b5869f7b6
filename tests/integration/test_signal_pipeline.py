"""Exits and the example strategy through the real stack (signal, risk-gate, gateway, ledger):
the exit reason reaches the fill, and the SMA example makes a round trip on sample data."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import msgspec

from tradebus_common import events as ev
from tradebus_common.config import ExampleStrategyConfig
from tradebus_common.events import utcnow
from tradebus_common.sample_data import load_ticks
from tradebus_common.sdk import Bracket, Side, Signal, my_events, publish_signal

from ..support.bus import collect, publish_event, set_price

PIPELINE = ("signal", "risk-gate", "execution-gateway", "position-ledger")
D = Decimal


async def test_take_profit_closes_the_position_and_the_fill_says_why(stack, nc):
    await stack.start(*PIPELINE)
    await set_price(nc, "paper", "BTC/USDT", "50000")
    positions = await collect(nc, "trading.position.>")
    fills = await collect(nc, "trading.fill.>")
    entry = Signal(
        id="tp-entry",
        strategy="demo",
        venue="paper",
        symbol="BTC/USDT",
        side=Side.BUY,
        quantity=D("0.2"),
        bracket=Bracket(stop_loss=D("49000"), take_profit=D("51000")),
    )
    await publish_signal(nc, entry)
    await positions.wait_for(lambda e: isinstance(e, ev.PositionChanged) and e.quantity == D("0.2"))
    await set_price(nc, "paper", "BTC/USDT", "50500")
    await set_price(nc, "paper", "BTC/USDT", "51000")
    await positions.wait_for(lambda e: isinstance(e, ev.PositionChanged) and e.quantity == 0)
    exits = fills.matching(lambda e: isinstance(e, ev.Fill) and e.exit_reason is not None)
    assert [(f.exit_reason, f.side, f.quantity) for f in exits] == [
        (ev.ExitReason.TAKE_PROFIT, Side.SELL, D("0.2"))
    ]


async def test_sdk_yields_the_strategys_own_fills_and_rejections(stack, nc):
    await stack.start(*PIPELINE)
    await set_price(nc, "paper", "BTC/USDT", "50000")
    seen: list = []
    got_two = asyncio.Event()

    async def consume() -> None:
        async for event in my_events(nc, "demo"):
            seen.append(event)
            if len(seen) == 2:
                got_two.set()

    reader = asyncio.create_task(consume())
    try:
        await nc.flush()
        base = {"strategy": "demo", "venue": "paper", "symbol": "BTC/USDT", "side": Side.BUY}
        await publish_signal(nc, Signal(id="sdk-1", quantity=D("0.1"), **base))
        old = utcnow().replace(year=2020)
        await publish_signal(nc, Signal(id="sdk-2", quantity=D("0.1"), ts=old, ttl_s=1, **base))
        await asyncio.wait_for(got_two.wait(), 15)
    finally:
        reader.cancel()
    kinds = sorted(type(e).__name__ for e in seen)
    assert kinds == ["Fill", "SignalRejected"]
    assert all(e.strategy == "demo" for e in seen)


async def test_example_strategy_makes_a_round_trip_on_the_sample_data(stack, nc, config):
    example = ExampleStrategyConfig(
        enabled=True, fast_window=5, slow_window=20, quantity=D("0.01"), take_profit_pct=D("0.2")
    )
    cfg = msgspec.structs.replace(config, example_strategy=example)
    await stack.start(*PIPELINE, config=cfg)
    await stack.start("example-strategy", config=cfg)
    fills = await collect(nc, "trading.fill.>")
    signals = await collect(nc, "trading.signal.>")

    def sold(e: object) -> bool:
        return isinstance(e, ev.Fill) and e.strategy == "demo" and e.side is Side.SELL

    # Replay the bundled ticks as live ones (stamped now: the gate refuses stale prices),
    # in steps, until an entry and an exit have both filled.
    ticks = list(load_ticks("paper", "BTC/USDT"))
    for start in range(0, len(ticks), 25):
        for tick in ticks[start : start + 25]:
            await publish_event(nc, msgspec.structs.replace(tick, id=tick.id, ts=utcnow()))
        await settle(nc, stack)
        if fills.matching(sold):
            break
    buys = fills.matching(lambda e: isinstance(e, ev.Fill) and e.side is Side.BUY)
    assert buys, f"no entry fill; signals seen: {len(signals.events)}"
    await fills.wait_for(sold, timeout=15)
    tags = {e.tags.get("source") for e in signals.events if isinstance(e, ev.Signal)}
    assert tags == {"example_sma"}


async def settle(nc, stack) -> None:
    """Until the example strategy's tick consumer has caught up with what was published (its
    server-side pending count, not the clock), so the replay goes at the stack's pace."""
    js = nc.jetstream()
    for _ in range(500):
        info = await js.consumer_info("MARKET", "example-strategy")
        if info.num_pending == 0 and info.num_ack_pending == 0:
            return
        await asyncio.sleep(0.01)  # polling the server's own count, bounded
    raise AssertionError("the example strategy fell behind the replay")
