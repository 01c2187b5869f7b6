"""The SMA-cross example strategy's rules (S6), without a bus: crosses, warm-up, the position
from its fills, and deterministic signal ids."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from tradebus_common.config import ExampleStrategyConfig
from tradebus_common.events import Fill, MarketTick, Side, utcnow
from tradebus_common.sample_data import load_ticks
from tradebus_signal.example_sma import SmaCross, SmaStrategy

D = Decimal
CONFIG = ExampleStrategyConfig(enabled=True, fast_window=2, slow_window=4, quantity=D("0.01"))


def tick(price: str, age_s: float = 0) -> MarketTick:
    ts = utcnow() - timedelta(seconds=age_s)
    return MarketTick(venue="paper", symbol="BTC/USDT", price=D(price), ts=ts)


def fill(side: Side, qty: str = "0.01") -> Fill:
    return Fill(
        venue="paper",
        symbol="BTC/USDT",
        strategy="demo",
        client_order_id="c",
        trade_id="t",
        side=side,
        quantity=D(qty),
        price=D("100"),
    )


def test_sma_warms_up_then_reports_the_cross_once() -> None:
    sma = SmaCross(fast=2, slow=4)
    assert [sma.update(D(p)) for p in ("10", "9", "8", "7")] == [None, None, None, "down"]
    assert sma.update(D("20")) == "up"  # fast (13.5) crosses above slow (11)
    assert sma.update(D("21")) is None  # still above: no new cross


def test_entry_on_the_cross_with_a_bracket_around_the_price() -> None:
    s = SmaStrategy(CONFIG)
    out = [s.on_tick(tick(p)) for p in ("10", "9", "8", "7", "20")]
    assert out[:4] == [[], [], [], []]
    [entry] = out[4]
    assert (entry.side, entry.quantity, entry.strategy) == (Side.BUY, D("0.01"), "demo")
    assert entry.bracket is not None
    assert (entry.bracket.stop_loss, entry.bracket.take_profit) == (D("19.80"), D("20.40"))
    assert s.on_tick(tick("1")) == []  # pending: nothing until the fill


def test_exit_asks_for_target_zero_only_while_long() -> None:
    s = SmaStrategy(CONFIG)
    for p in ("10", "9", "8", "7", "20"):
        s.on_tick(tick(p))
    s.on_fill(fill(Side.BUY))
    assert s.position == D("0.01")
    assert s.on_tick(tick("1")) == []  # fast 10.5 still above slow 9
    [exit_] = s.on_tick(tick("1"))  # fast 1 below slow 7.25
    assert exit_.target_position == 0 and exit_.side is Side.SELL
    s.on_fill(fill(Side.SELL))
    assert s.position == 0 and s.on_tick(tick("0.5")) == []


def test_a_rejection_clears_the_pending_signal() -> None:
    s = SmaStrategy(CONFIG)
    for p in ("10", "9", "8", "7", "20"):
        s.on_tick(tick(p))
    assert s.pending
    s.on_rejected()
    assert not s.pending


def test_old_ticks_only_warm_up() -> None:
    s = SmaStrategy(CONFIG)
    assert [s.on_tick(tick(p, age_s=3600)) for p in ("10", "9", "8", "7", "20")] == [[]] * 5
    assert len(s.sma.prices) == 4


def test_signal_ids_derive_from_the_tick() -> None:
    ticks = [tick(p) for p in ("10", "9", "8", "7", "20")]
    a, b = SmaStrategy(CONFIG), SmaStrategy(CONFIG)
    ids_a = [sig.id for t in ticks for sig in a.on_tick(t)]
    ids_b = [sig.id for t in ticks for sig in b.on_tick(t)]
    assert ids_a == ids_b and len(ids_a) == 1


def test_the_sample_data_crosses_both_ways() -> None:
    sma = SmaCross(fast=10, slow=30)
    moves = [sma.update(t.price) for t in load_ticks("paper", "BTC/USDT")]
    assert moves.count("up") >= 2 and "down" in moves
