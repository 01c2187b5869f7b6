"""The demo feed's seeded random walk."""

from __future__ import annotations

from decimal import Decimal

from tradebus_common.config import FeedConfig
from tradebus_execution_gateway.feed import RandomWalk

START = {"BTC/USDT": Decimal("50000"), "ETH/USDT": Decimal("3000")}


def walk(
    seed: int = 7,
    volatility_bps: str = "5",
    start: dict[str, Decimal] | None = None,
    steps: int = 200,
) -> list[dict[str, Decimal]]:
    rw = RandomWalk(
        FeedConfig(seed=seed, volatility_bps=Decimal(volatility_bps), start_prices=start or START)
    )
    return [rw.step() for _ in range(steps)]


def test_same_seed_gives_the_same_sequence() -> None:
    assert walk(seed=11) == walk(seed=11)


def test_different_seeds_give_different_sequences() -> None:
    assert walk(seed=1) != walk(seed=2)


def test_prices_are_decimals_with_two_places_and_positive() -> None:
    for prices in walk(volatility_bps="50"):
        assert set(prices) == set(START)
        for price in prices.values():
            assert isinstance(price, Decimal)
            assert price.as_tuple().exponent == -2
            assert price > 0


def test_prices_actually_move_within_the_volatility_bound() -> None:
    steps = walk(volatility_bps="5")
    previous = START["BTC/USDT"]
    moved = False
    for prices in steps:
        price = prices["BTC/USDT"]
        # at most 5 bps of the previous price, plus half a cent of rounding
        assert abs(price - previous) <= previous * Decimal("0.0005") + Decimal("0.005")
        moved = moved or price != previous
        previous = price
    assert moved


def test_a_tiny_price_never_drops_to_zero_or_below() -> None:
    for prices in walk(volatility_bps="9000", start={"PENNY/USDT": Decimal("0.02")}, steps=500):
        assert prices["PENNY/USDT"] >= Decimal("0.01")


def test_step_returns_a_copy_not_the_internal_state() -> None:
    rw = RandomWalk(FeedConfig(seed=3, start_prices=dict(START)))
    first = rw.step()
    snapshot = dict(first)
    rw.step()
    assert first == snapshot


def test_the_config_start_prices_are_not_mutated() -> None:
    cfg = FeedConfig(seed=3, start_prices=dict(START))
    rw = RandomWalk(cfg)
    for _ in range(10):
        rw.step()
    assert cfg.start_prices == START
