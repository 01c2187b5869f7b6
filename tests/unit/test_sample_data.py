from decimal import Decimal

import pytest

from tradebus_common.sample_data import load_ticks, sample_symbols


@pytest.mark.parametrize("symbol", sample_symbols())
def test_sample_ticks_are_ordered_exact_and_consistent(symbol: str) -> None:
    ticks = list(load_ticks("paper", symbol))
    assert len(ticks) == 3600
    assert all(a.ts < b.ts for a, b in zip(ticks, ticks[1:], strict=False))
    for t in ticks:
        assert isinstance(t.price, Decimal)
        assert t.bid is not None and t.ask is not None
        assert t.bid < t.price < t.ask
        assert t.venue == "paper" and t.symbol == symbol


def test_unknown_symbol_names_what_is_bundled() -> None:
    with pytest.raises(KeyError, match="BTC/USDT"):
        next(load_ticks("paper", "DOGE/USDT"))
