"""Netting-position accounting: apply_fill, Position, fee_in_quote (pure, exact Decimal)."""

from __future__ import annotations

import random
from decimal import Decimal
from itertools import count

import pytest

from tradebus_common.events import Fill, Side
from tradebus_position_ledger.projection import Position, apply_fill, fee_in_quote

D = Decimal
_trade_ids = count(1)


def fill(
    side: str,
    qty: str | Decimal,
    price: str | Decimal,
    fee: str | Decimal = "0",
    fee_currency: str = "USDT",
    symbol: str = "BTC/USDT",
) -> Fill:
    return Fill(
        venue="paper",
        symbol=symbol,
        strategy="demo",
        client_order_id="c1",
        trade_id=f"t{next(_trade_ids)}",
        side=Side(side),
        quantity=D(qty),
        price=D(price),
        fee=D(fee),
        fee_currency=fee_currency,
    )


def run(*fills: Fill, start: Position | None = None) -> Position:
    pos = start or Position()
    for f in fills:
        pos = apply_fill(pos, f)
    return pos


# --- longs ------------------------------------------------------------------------------


def test_first_buy_opens_a_long_at_the_fill_price() -> None:
    pos = run(fill("buy", "2", "100"))
    assert (pos.quantity, pos.avg_price, pos.realized_pnl, pos.fees_paid, pos.fill_count) == (
        D(2),
        D(100),
        D(0),
        D(0),
        1,
    )


def test_adding_to_a_long_at_another_price_gives_the_weighted_average() -> None:
    pos = run(fill("buy", "1", "100"), fill("buy", "3", "200"))
    assert pos.quantity == D(4)
    assert pos.avg_price == D(175)  # (1*100 + 3*200) / 4
    assert pos.realized_pnl == 0
    assert pos.fill_count == 2


def test_partial_reduce_realizes_pnl_and_keeps_the_average() -> None:
    pos = run(fill("buy", "2", "100"), fill("sell", "0.5", "120"))
    assert pos.quantity == D("1.5")
    assert pos.avg_price == D(100)
    assert pos.realized_pnl == D(10)  # 0.5 * (120 - 100)


def test_closing_to_zero_realizes_everything_and_resets_the_average() -> None:
    pos = run(fill("buy", "2", "100"), fill("sell", "2", "90"))
    assert pos.quantity == 0
    assert pos.avg_price == 0
    assert pos.realized_pnl == D(-20)


def test_reopening_after_a_close_starts_a_fresh_average() -> None:
    pos = run(fill("buy", "1", "100"), fill("sell", "1", "110"), fill("buy", "1", "50"))
    assert pos.quantity == D(1)
    assert pos.avg_price == D(50)
    assert pos.realized_pnl == D(10)


def test_flip_long_to_short_closes_then_opens_at_the_fill_price() -> None:
    pos = run(fill("buy", "1", "100"), fill("sell", "3", "110"))
    assert pos.quantity == D(-2)
    assert pos.avg_price == D(110)
    assert pos.realized_pnl == D(10)  # only the closed 1 unit: 1 * (110 - 100)


# --- shorts -----------------------------------------------------------------------------


def test_sell_first_opens_a_short() -> None:
    pos = run(fill("sell", "1", "100"), fill("sell", "1", "110"))
    assert pos.quantity == D(-2)
    assert pos.avg_price == D(105)
    assert pos.realized_pnl == 0


def test_short_bought_back_lower_is_a_profit() -> None:
    pos = run(fill("sell", "2", "100"), fill("buy", "2", "80"))
    assert pos.quantity == 0
    assert pos.avg_price == 0
    assert pos.realized_pnl == D(40)


def test_short_bought_back_higher_is_a_loss_and_partial_cover_keeps_average() -> None:
    pos = run(fill("sell", "2", "100"), fill("buy", "1", "130"))
    assert pos.quantity == D(-1)
    assert pos.avg_price == D(100)
    assert pos.realized_pnl == D(-30)


def test_flip_short_to_long_realizes_only_the_covered_part() -> None:
    pos = run(fill("sell", "1", "100"), fill("buy", "3", "90"))
    assert pos.quantity == D(2)
    assert pos.avg_price == D(90)
    assert pos.realized_pnl == D(10)


# --- fees -------------------------------------------------------------------------------


def test_fees_reduce_realized_pnl_and_are_summed() -> None:
    pos = run(fill("buy", "1", "100", fee="0.1"), fill("sell", "1", "110", fee="0.11"))
    assert pos.fees_paid == D("0.21")
    assert pos.realized_pnl == D("9.79")  # 10 - 0.21


def test_opening_fee_alone_makes_realized_pnl_negative() -> None:
    pos = run(fill("buy", "1", "100", fee="0.25"))
    assert pos.realized_pnl == D("-0.25")
    assert pos.fees_paid == D("0.25")
    assert pos.avg_price == D(100)  # the fee is not folded into the average


def test_fee_in_base_currency_is_converted_at_the_fill_price() -> None:
    f = fill("buy", "2", "50000", fee="0.001", fee_currency="BTC")
    assert fee_in_quote(f) == D("50.000")
    pos = run(f)
    assert pos.fees_paid == D(50)
    assert pos.realized_pnl == D(-50)


def test_fee_in_quote_currency_is_taken_as_is() -> None:
    assert fee_in_quote(fill("buy", "2", "50000", fee="3.5", fee_currency="USDT")) == D("3.5")


def test_fee_on_a_symbol_without_slash_is_taken_as_is() -> None:
    f = fill("buy", "1", "10", fee="2", fee_currency="BTC", symbol="BTCUSDT")
    assert fee_in_quote(f) == D(2)


# --- exactness --------------------------------------------------------------------------


def test_decimal_quantities_stay_exact() -> None:
    pos = run(fill("buy", "0.1", "1"), fill("buy", "0.2", "1"))
    assert pos.quantity == D("0.3")
    pos = run(fill("sell", "0.3", "1"), start=pos)
    assert pos.quantity == 0
    assert pos.avg_price == 0


def test_decimal_prices_and_fees_stay_exact() -> None:
    pos = run(fill("buy", "1", "0.1", fee="0.1"), fill("buy", "1", "0.2", fee="0.2"))
    assert pos.avg_price == D("0.15")
    assert pos.fees_paid == D("0.3")
    pos = run(fill("sell", "2", "0.3"), start=pos)
    assert pos.realized_pnl == D("0")  # 2 * (0.3 - 0.15) - 0.3
    assert str(pos.fees_paid) == "0.3"


def test_adding_at_prices_with_a_repeating_average_still_closes_exactly() -> None:
    pos = run(fill("buy", "1", "100"), fill("buy", "2", "101"))  # average 100.666...
    assert pos.quantity == D(3)
    pos = run(fill("sell", "3", "102"), start=pos)
    assert pos.quantity == 0
    assert pos.avg_price == 0
    assert pos.realized_pnl == D(4)  # 3 * 102 - (100 + 202), exactly


def test_many_small_fills_then_a_full_close_realize_exactly() -> None:
    buys = [fill("buy", "0.01", D(30000) + D(n) / 64) for n in range(1, 60)]
    cost = sum((f.quantity * f.price for f in buys), D(0))
    pos = run(*buys, fill("sell", "0.59", "31000"))
    assert pos.quantity == 0
    assert pos.realized_pnl == D("0.59") * 31000 - cost


# --- an independent oracle --------------------------------------------------------------

_TOLERANCE = D("1e-12")  # averages are divided in 28-digit Decimal; everything else is exact


def _random_fill(rng: random.Random) -> Fill:
    qty = D(rng.randint(1, 500)) / 100
    price = D(rng.randint(100, 20000)) / 100
    fee = D(rng.randint(0, 100)) / 1000
    currency = rng.choice(["USDT", "USDT", "BTC", ""])
    return fill(rng.choice(["buy", "sell"]), qty, price, fee=fee, fee_currency=currency)


@pytest.mark.parametrize("seed", range(25))
def test_random_sequences_match_a_cash_flow_oracle(seed: int) -> None:
    rng = random.Random(seed)
    fills = [_random_fill(rng) for _ in range(rng.randint(1, 40))]
    pos = run(*fills)

    signed_sum = D(0)
    cash = D(0)
    fees = D(0)
    for f in fills:
        signed = f.quantity if f.side is Side.BUY else -f.quantity
        fee = f.fee * f.price if f.fee_currency == "BTC" else f.fee  # computed independently
        signed_sum += signed
        cash += -signed * f.price - fee
        fees += fee
    last_price = fills[-1].price
    oracle_equity = cash + signed_sum * last_price

    assert pos.quantity == signed_sum, f"seed {seed}"
    assert pos.fees_paid == fees, f"seed {seed}"
    assert pos.fill_count == len(fills)
    model_equity = pos.realized_pnl + pos.quantity * (last_price - pos.avg_price)
    assert abs(model_equity - oracle_equity) <= _TOLERANCE, (
        f"seed {seed}: model {model_equity} != oracle {oracle_equity}"
    )
    if pos.quantity == 0:
        assert pos.avg_price == 0
    else:
        assert pos.avg_price > 0
