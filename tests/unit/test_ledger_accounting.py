"""Ledger pure functions at their boundaries: cycles, mark-to-market, drawdown, trading day,
the snapshot throttle, statistics; plus a property test of the netting accounting against an
independent reference in exact fractions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from itertools import count

from hypothesis import given, settings
from hypothesis import strategies as st

from tradebus_common.events import Fill, Side
from tradebus_position_ledger.accounting import Holding, drawdown, trading_day, value_account
from tradebus_position_ledger.cycles import Cycle, advance
from tradebus_position_ledger.equity import should_publish
from tradebus_position_ledger.projection import Position, apply_fill
from tradebus_position_ledger.stats import Trade, compute, max_drawdown

D = Decimal
T0 = datetime(2026, 1, 5, 12, tzinfo=UTC)
_ids = count(1)


def fill(side: str, qty: str, price: str, fee: str = "0", fee_ccy: str = "USDT") -> Fill:
    return Fill(
        venue="paper",
        symbol="BTC/USDT",
        strategy="demo",
        client_order_id="c",
        trade_id=f"t{next(_ids)}",
        side=Side(side),
        quantity=D(qty),
        price=D(price),
        fee=D(fee),
        fee_currency=fee_ccy,
    )


def walk(*fills: Fill) -> tuple[Position, list]:
    pos, cycle, closed = Position(), Cycle(), []
    for i, f in enumerate(fills):
        after = apply_fill(pos, f)
        cycle, c = advance(cycle, pos, after, T0 + timedelta(minutes=i), f.price, f.exit_reason)
        closed += [c] if c else []
        pos = after
    return pos, closed


# --- cycles -----------------------------------------------------------------------------


def test_round_trip_closes_one_cycle_with_its_fees() -> None:
    _, [c] = walk(
        fill("buy", "2", "100", "1"), fill("buy", "1", "110"), fill("sell", "3", "120", "1")
    )
    assert c.direction == "long" and c.max_quantity == D(3) and c.fill_count == 3
    assert c.realized_pnl == D(3) * 120 - (200 + 110) - 2  # 48
    assert c.closed_at - c.opened_at == timedelta(minutes=2)


def test_flip_closes_the_long_and_opens_a_short_cycle() -> None:
    pos, [c] = walk(fill("buy", "1", "100"), fill("sell", "3", "90", "0.5"))
    assert c.direction == "long" and c.realized_pnl == D("-10.5")  # the flip fee goes to the close
    pos2, closed = walk(fill("buy", "1", "100"), fill("sell", "3", "90"), fill("buy", "2", "80"))
    assert [x.direction for x in closed] == ["long", "short"]
    assert closed[1].realized_pnl == D(20) and pos2.quantity == 0


def test_partial_close_keeps_the_cycle_open() -> None:
    _, closed = walk(fill("buy", "2", "100"), fill("sell", "1", "105"))
    assert closed == []


# --- mark-to-market ---------------------------------------------------------------------


def holding(pos: Position, symbol: str = "BTC/USDT") -> Holding:
    return Holding("default", "paper", symbol, "demo", pos)


def test_equity_is_cash_plus_marked_positions() -> None:
    long_ = apply_fill(Position(), fill("buy", "2", "100", "1"))  # cash 1000 - 200 - 1
    short = apply_fill(Position(), fill("sell", "1", "50"))  # cash + 50
    v = value_account(
        "default",
        D(1000),
        [holding(long_), holding(short, "ETH/USDT")],
        {("paper", "BTC/USDT"): D(110), ("paper", "ETH/USDT"): D(40)},
    )
    assert v.cash == D(1000) - 200 - 1 + 50
    assert v.unrealized_pnl == D(20) + D(10)
    assert v.equity == v.cash + 2 * 110 - 40 == D(1000) + v.realized_pnl + v.unrealized_pnl
    assert (v.gross_exposure, v.net_exposure) == (D(260), D(180))
    assert {p.symbol: p.mark_price for p in v.positions} == {"BTC/USDT": D(110), "ETH/USDT": D(40)}


def test_position_without_a_mark_is_valued_at_cost_not_zero() -> None:
    pos = apply_fill(Position(), fill("buy", "2", "100"))
    v = value_account("default", D(1000), [holding(pos)], {})
    assert v.equity == D(1000) and v.unrealized_pnl == 0 and v.positions[0].mark_price is None


def test_drawdown_amount_and_percent() -> None:
    assert drawdown(D(1000), D(900)) == (D(100), D(10))
    assert drawdown(D(1000), D(1100)) == (D(0), D(0))


def test_trading_day_follows_timezone_and_start_hour() -> None:
    ts = datetime(2026, 3, 10, 20, 30, tzinfo=UTC)  # 16:30 in New York (EDT)
    assert trading_day(ts, "UTC", 0).isoformat() == "2026-03-10"
    assert trading_day(ts, "America/New_York", 17).isoformat() == "2026-03-09"
    assert trading_day(ts + timedelta(hours=1), "America/New_York", 17).isoformat() == "2026-03-10"
    assert (
        trading_day(datetime(2026, 3, 10, 23, tzinfo=UTC), "Asia/Tokyo", 0).isoformat()
        == "2026-03-11"
    )


def test_snapshot_throttle() -> None:
    assert should_publish(False, 5.0, 1.0, 5.0)  # the interval passed: always
    assert not should_publish(False, 2.0, 1.0, 5.0)  # nothing changed
    assert should_publish(True, 1.5, 1.0, 5.0)  # a change, past the minimum spacing
    assert not should_publish(True, 0.5, 1.0, 5.0)  # a change, too soon


# --- statistics -------------------------------------------------------------------------


def trades(*pnl: int) -> list[Trade]:
    return [
        Trade(D(p), T0 + timedelta(hours=i), T0 + timedelta(hours=i, minutes=30))
        for i, p in enumerate(pnl)
    ]


def test_stats_of_known_trades() -> None:
    s = compute("demo", trades(100, -50, 30, -20), unrealized=D(7))
    assert (s.trades, s.wins, s.losses) == (4, 2, 2)
    assert s.win_rate == D("0.5") and s.profit_factor == D(130) / D(70)
    assert s.realized_pnl == D(60) and s.unrealized_pnl == D(7)
    assert s.max_drawdown == D(50)  # 100 -> 50
    assert s.avg_holding_s == D(1800)
    mean, sd = D(15), (D(100 - 15) ** 2 + D(65) ** 2 + D(15) ** 2 + D(35) ** 2) / 3
    assert s.sharpe == mean / sd.sqrt()
    assert s.sortino == mean / ((D(2500) + D(400)) / 4).sqrt()


def test_stats_without_losses_or_trades() -> None:
    assert compute("x", trades(5, 5)).profit_factor is None
    empty = compute("x", [])
    assert empty.trades == 0 and empty.win_rate is None and empty.sharpe is None
    assert max_drawdown([D(-5), D(10), D(-3)]) == D(5)


# --- property: the accounting equals an independent reference ---------------------------


def reference(fills: list[Fill]) -> tuple[Fraction, Fraction, Fraction]:
    """Average-cost netting in exact fractions, written independently: (qty, avg, realized)."""
    qty, avg, realized = Fraction(0), Fraction(0), Fraction(0)
    for f in fills:
        price = Fraction(f.price)
        fee = Fraction(f.fee) * (price if f.fee_currency == "BTC" else 1)
        realized -= fee
        signed = Fraction(f.quantity) * (1 if f.side is Side.BUY else -1)
        if qty == 0 or (qty > 0) == (signed > 0):
            avg = (avg * abs(qty) + price * abs(signed)) / (abs(qty) + abs(signed))
            qty += signed
            continue
        closing = min(abs(signed), abs(qty))
        realized += closing * (price - avg) * (1 if qty > 0 else -1)
        rest = abs(signed) - closing
        qty += signed
        if qty == 0:
            avg = Fraction(0)
        elif rest > 0:
            avg = price  # flipped: the rest opens at the fill price
    return qty, avg, realized


amounts = st.decimals(min_value=D("0.001"), max_value=D("50"), places=3)
prices = st.decimals(min_value=D("0.01"), max_value=D("100000"), places=2)
fees = st.decimals(min_value=D(0), max_value=D("5"), places=4)
fill_specs = st.tuples(
    st.sampled_from(["buy", "sell"]), amounts, prices, fees, st.sampled_from(["USDT", "BTC", ""])
)


@settings(max_examples=300, deadline=None)
@given(st.lists(fill_specs, min_size=1, max_size=40))
def test_accounting_matches_the_reference_to_the_last_unit(specs) -> None:
    fills = [fill(s, str(q), str(p), str(fe), ccy) for s, q, p, fe, ccy in specs]
    pos = Position()
    for f in fills:
        pos = apply_fill(pos, f)
    qty, avg, realized = reference(fills)
    assert Fraction(pos.quantity) == qty  # quantities are sums: exact
    # Decimal division keeps 28 significant digits; the quote currency's last unit is far
    # coarser, so both agree to well below it.
    tolerance = Fraction(1, 10**12)
    assert abs(Fraction(pos.avg_price) - avg) <= tolerance
    assert abs(Fraction(pos.realized_pnl) - realized) <= tolerance
    assert pos.fill_count == len(fills)


def test_slippage_is_a_cost_when_positive_on_either_side() -> None:
    from tradebus_position_ledger.stats import Execution, avg_slippage_bps

    buy = Execution("buy", D(1), D("100.10"), D(100))  # paid 10 bps up
    sell = Execution("sell", D(3), D("99.98"), D(100))  # sold 2 bps below
    assert avg_slippage_bps([buy, sell]) == (D(10) * 1 + D(2) * 3) / 4
    assert avg_slippage_bps([]) is None
