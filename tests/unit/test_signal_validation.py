"""Signal validation reason codes, and sizing a signal into an order intent."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest

from tradebus_common.config import Config, StrategyConfig, VenueConfig
from tradebus_common.errors import ErrorCode, PermanentError
from tradebus_common.events import OrderType, Side, Signal
from tradebus_common.ids import derive_id
from tradebus_signal.handlers import dedup_key, size
from tradebus_signal.validation import validate

CONFIG = Config(
    venues={"paper": VenueConfig(symbols=["BTC/USDT", "ETH/USDT"])},
    strategies={
        "demo": StrategyConfig(),
        "off": StrategyConfig(enabled=False),
        "fixed": StrategyConfig(quantity=Decimal("0.25")),
    },
)


def signal(**overrides: Any) -> Signal:
    fields: dict[str, Any] = {
        "id": "sig-1",
        "strategy": "demo",
        "venue": "paper",
        "symbol": "BTC/USDT",
        "side": Side.BUY,
        "quantity": Decimal("1"),
    }
    fields.update(overrides)
    return Signal(**fields)


def reason_of(sig: Signal) -> ErrorCode:
    with pytest.raises(PermanentError) as info:
        validate(sig, CONFIG)
    return info.value.code


def test_valid_market_signal_passes() -> None:
    assert validate(signal(), CONFIG) is None


def test_valid_limit_signal_passes() -> None:
    sig = signal(order_type=OrderType.LIMIT, limit_price=Decimal("49000.5"))
    assert validate(sig, CONFIG) is None


def test_unknown_strategy_is_rejected() -> None:
    assert reason_of(signal(strategy="nope")) is ErrorCode.UNKNOWN_STRATEGY


def test_disabled_strategy_is_rejected() -> None:
    assert reason_of(signal(strategy="off")) is ErrorCode.STRATEGY_DISABLED


def test_unknown_venue_is_rejected() -> None:
    assert reason_of(signal(venue="binance")) is ErrorCode.UNKNOWN_VENUE


def test_symbol_not_traded_on_the_venue_is_rejected() -> None:
    assert reason_of(signal(symbol="DOGE/USDT")) is ErrorCode.UNKNOWN_SYMBOL


def test_strategy_is_checked_before_venue() -> None:
    assert reason_of(signal(strategy="nope", venue="binance")) is ErrorCode.UNKNOWN_STRATEGY


@pytest.mark.parametrize("quantity", ["0", "-1", "-0.0001", "NaN", "sNaN", "Infinity", "-Infinity"])
def test_non_positive_or_non_finite_quantity_is_rejected(quantity: str) -> None:
    assert reason_of(signal(quantity=Decimal(quantity))) is ErrorCode.INVALID_QUANTITY


def test_tiny_positive_quantity_passes() -> None:
    assert validate(signal(quantity=Decimal("0.00000001")), CONFIG) is None


def test_limit_order_without_price_is_inconsistent() -> None:
    sig = signal(order_type=OrderType.LIMIT, limit_price=None)
    assert reason_of(sig) is ErrorCode.INCONSISTENT_ORDER


def test_market_order_with_price_is_inconsistent() -> None:
    sig = signal(order_type=OrderType.MARKET, limit_price=Decimal("100"))
    assert reason_of(sig) is ErrorCode.INCONSISTENT_ORDER


@pytest.mark.parametrize("price", ["0", "-5", "NaN", "Infinity"])
def test_limit_order_with_bad_price_is_rejected(price: str) -> None:
    sig = signal(order_type=OrderType.LIMIT, limit_price=Decimal(price))
    assert reason_of(sig) is ErrorCode.INVALID_PRICE


def test_rejection_message_names_the_offending_value() -> None:
    with pytest.raises(PermanentError, match="DOGE/USDT"):
        validate(signal(symbol="DOGE/USDT"), CONFIG)


# --- sizing -----------------------------------------------------------------------------


def test_size_derives_a_stable_intent_id() -> None:
    first, again = size(signal(), CONFIG), size(signal(), CONFIG)
    assert first.id == again.id
    assert first.id == derive_id("sig-1", "intent", 0)
    assert first.id != "sig-1"


def test_size_gives_different_signals_different_intent_ids() -> None:
    assert size(signal(id="a"), CONFIG).id != size(signal(id="b"), CONFIG).id


def test_size_links_the_intent_to_its_signal() -> None:
    intent = size(signal(id="sig-42", correlation_id="other"), CONFIG)
    assert intent.correlation_id == "sig-42"
    assert intent.causation_id == "sig-42"
    assert intent.signal_id == "sig-42"
    assert intent.leg == 0


def test_size_copies_the_order_fields() -> None:
    sig = signal(
        side=Side.SELL,
        symbol="ETH/USDT",
        order_type=OrderType.LIMIT,
        limit_price=Decimal("3000.10"),
        quantity=Decimal("2.5"),
    )
    intent = size(sig, CONFIG)
    assert (intent.strategy, intent.venue, intent.symbol) == ("demo", "paper", "ETH/USDT")
    assert intent.side is Side.SELL
    assert intent.order_type is OrderType.LIMIT
    assert intent.limit_price == Decimal("3000.10")
    assert intent.quantity == Decimal("2.5")


def test_size_uses_the_strategys_fixed_quantity_when_configured() -> None:
    intent = size(signal(strategy="fixed", quantity=Decimal("7")), CONFIG)
    assert intent.quantity == Decimal("0.25")


def test_size_keeps_the_signals_quantity_without_a_fixed_one() -> None:
    assert size(signal(quantity=Decimal("7")), CONFIG).quantity == Decimal("7")


def test_dedup_key_is_stable_distinct_and_kv_safe() -> None:
    weird = "client id with spaces/*>.ü"
    assert dedup_key(weird) == dedup_key(weird)
    assert dedup_key("a") != dedup_key("b")
    assert re.fullmatch(r"signal\.[-0-9a-f]+", dedup_key(weird))
