"""Ledger against venue: net per symbol over strategies, with a tolerance."""

from __future__ import annotations

from decimal import Decimal

from tradebus_common.events import PositionView
from tradebus_reconciler.compare import compare_positions, net_by_symbol

D = Decimal


def pos(symbol: str, qty: str, strategy: str = "demo") -> PositionView:
    return PositionView(venue="paper", symbol=symbol, strategy=strategy, quantity=D(qty))


def test_equal_positions_have_no_mismatch() -> None:
    compared, mismatches = compare_positions(
        "paper",
        [pos("BTC/USDT", "1.5"), pos("ETH/USDT", "-2")],
        [pos("ETH/USDT", "-2.000"), pos("BTC/USDT", "1.50")],
    )
    assert compared == 2
    assert mismatches == []


def test_nothing_on_either_side_compares_nothing() -> None:
    assert compare_positions("paper", [], []) == (0, [])


def test_different_quantities_are_a_mismatch_with_both_sides() -> None:
    compared, mismatches = compare_positions(
        "paper", [pos("BTC/USDT", "1")], [pos("BTC/USDT", "0.9")]
    )
    assert compared == 1
    assert len(mismatches) == 1
    m = mismatches[0]
    assert (m.venue, m.symbol) == ("paper", "BTC/USDT")
    assert m.ledger_quantity == D("1")
    assert m.venue_quantity == D("0.9")


def test_symbol_only_in_the_ledger_counts_as_a_mismatch() -> None:
    compared, mismatches = compare_positions("paper", [pos("BTC/USDT", "1")], [])
    assert compared == 1
    assert [(m.symbol, m.ledger_quantity, m.venue_quantity) for m in mismatches] == [
        ("BTC/USDT", D(1), D(0))
    ]


def test_symbol_only_at_the_venue_counts_as_a_mismatch() -> None:
    compared, mismatches = compare_positions("paper", [], [pos("ETH/USDT", "-3")])
    assert compared == 1
    assert [(m.symbol, m.ledger_quantity, m.venue_quantity) for m in mismatches] == [
        ("ETH/USDT", D(0), D(-3))
    ]


def test_flat_symbol_only_on_one_side_matches() -> None:
    compared, mismatches = compare_positions("paper", [pos("BTC/USDT", "0")], [])
    assert compared == 1
    assert mismatches == []


def test_positions_of_several_strategies_net_per_symbol() -> None:
    ledger = [pos("BTC/USDT", "2", "a"), pos("BTC/USDT", "-0.5", "b"), pos("ETH/USDT", "1", "a")]
    compared, mismatches = compare_positions(
        "paper", ledger, [pos("BTC/USDT", "1.5", ""), pos("ETH/USDT", "1", "")]
    )
    assert compared == 2
    assert mismatches == []


def test_strategies_netting_to_a_wrong_total_are_reported_as_the_net() -> None:
    ledger = [pos("BTC/USDT", "2", "a"), pos("BTC/USDT", "-1", "b")]
    _, mismatches = compare_positions("paper", ledger, [pos("BTC/USDT", "2")])
    assert [(m.ledger_quantity, m.venue_quantity) for m in mismatches] == [(D(1), D(2))]


def test_net_by_symbol_sums_exactly() -> None:
    net = net_by_symbol([pos("X", "0.1", "a"), pos("X", "0.2", "b"), pos("Y", "1")])
    assert net == {"X": D("0.3"), "Y": D(1)}


def test_difference_within_tolerance_is_not_a_mismatch() -> None:
    _, mismatches = compare_positions(
        "paper", [pos("BTC/USDT", "1")], [pos("BTC/USDT", "1.001")], tolerance=D("0.001")
    )
    assert mismatches == []


def test_difference_over_tolerance_is_a_mismatch() -> None:
    _, mismatches = compare_positions(
        "paper", [pos("BTC/USDT", "1")], [pos("BTC/USDT", "0.9989")], tolerance=D("0.001")
    )
    assert len(mismatches) == 1


def test_zero_tolerance_catches_the_smallest_difference() -> None:
    _, mismatches = compare_positions(
        "paper", [pos("BTC/USDT", "1")], [pos("BTC/USDT", "1.00000001")]
    )
    assert len(mismatches) == 1


def test_mismatches_are_sorted_by_symbol() -> None:
    _, mismatches = compare_positions(
        "paper", [pos("ZEC/USDT", "1"), pos("ADA/USDT", "1"), pos("ETH/USDT", "1")], []
    )
    assert [m.symbol for m in mismatches] == ["ADA/USDT", "ETH/USDT", "ZEC/USDT"]
