"""The wire codec: error codes on bad input, lenient on unknown fields, exact decimals."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from tradebus_common.codec import decode, encode
from tradebus_common.errors import ErrorCode, PermanentError
from tradebus_common.events import Fill, Side, Signal


def signal_json(**overrides: Any) -> bytes:
    doc: dict[str, Any] = {
        "type": "signal",
        "id": "s1",
        "strategy": "demo",
        "venue": "paper",
        "symbol": "BTC/USDT",
        "side": "buy",
        "quantity": "1",
    }
    doc.update(overrides)
    return json.dumps(doc).encode()


def error_of(data: bytes, type_: Any = None) -> PermanentError:
    with pytest.raises(PermanentError) as info:
        if type_ is None:
            decode(data)
        else:
            decode(data, type_)
    return info.value


@pytest.mark.parametrize("data", [b"", b"{", b'{"type": "signal",}', b"not json", b"\x00"])
def test_malformed_json_is_malformed_json(data: bytes) -> None:
    assert error_of(data).code is ErrorCode.MALFORMED_JSON


def test_quantity_of_wrong_type_is_a_schema_violation_naming_the_path() -> None:
    err = error_of(signal_json(quantity=True))
    assert err.code is ErrorCode.SCHEMA_VIOLATION
    assert "$.quantity" in str(err)


def test_unknown_enum_value_is_a_schema_violation_naming_the_path() -> None:
    err = error_of(signal_json(side="up"))
    assert err.code is ErrorCode.SCHEMA_VIOLATION
    assert "$.side" in str(err)


def test_missing_required_field_is_a_schema_violation() -> None:
    doc = json.loads(signal_json())
    del doc["strategy"]
    err = error_of(json.dumps(doc).encode())
    assert err.code is ErrorCode.SCHEMA_VIOLATION
    assert "strategy" in str(err)


def test_unknown_event_type_is_a_schema_violation() -> None:
    assert error_of(b'{"type": "nope"}').code is ErrorCode.SCHEMA_VIOLATION


def test_json_that_is_not_an_object_is_a_schema_violation() -> None:
    assert error_of(b"[1, 2]").code is ErrorCode.SCHEMA_VIOLATION


def test_unknown_fields_are_ignored() -> None:
    sig = decode(signal_json(future_field={"x": 1}, another=3))
    assert isinstance(sig, Signal)
    assert sig.id == "s1"


def test_decoding_picks_the_type_from_the_tag() -> None:
    sig = decode(signal_json(side="sell"))
    assert isinstance(sig, Signal)
    assert sig.side is Side.SELL


def test_decimal_from_a_json_number_keeps_its_exact_text() -> None:
    raw = signal_json().replace(b'"quantity": "1"', b'"quantity": 0.10')
    sig = decode(raw)
    assert sig.quantity == Decimal("0.10")
    assert str(sig.quantity) == "0.10"


def test_decimal_from_a_json_string_keeps_its_exact_text() -> None:
    sig = decode(signal_json(quantity="0.1000000000000000000000000001"))
    assert str(sig.quantity) == "0.1000000000000000000000000001"


def test_decimals_encode_as_strings() -> None:
    f = Fill(
        venue="paper",
        symbol="BTC/USDT",
        strategy="demo",
        client_order_id="c",
        trade_id="t",
        side=Side.BUY,
        quantity=Decimal("0.10"),
        price=Decimal("50000.00"),
        fee=Decimal("0.05"),
    )
    doc = json.loads(encode(f))
    assert doc["quantity"] == "0.10"
    assert doc["price"] == "50000.00"
    assert doc["fee"] == "0.05"
    assert doc["type"] == "order.filled"


def test_encode_then_decode_round_trips() -> None:
    sig = decode(signal_json(quantity="1.50", limit_price="10.0", order_type="limit"))
    again = decode(encode(sig))
    assert again == sig
    assert str(again.quantity) == "1.50"


def test_decode_with_an_explicit_type() -> None:
    doc = json.loads(signal_json())
    del doc["type"]
    sig = decode(json.dumps(doc).encode(), Signal)
    assert isinstance(sig, Signal)
    assert (
        error_of(json.dumps({**doc, "quantity": []}).encode(), Signal).code
        is ErrorCode.SCHEMA_VIOLATION
    )


def test_invalid_utf8_is_malformed_json() -> None:
    data = signal_json().replace(b'"s1"', b'"\xff\xfe"')
    assert error_of(data).code is ErrorCode.MALFORMED_JSON
