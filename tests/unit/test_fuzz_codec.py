"""Q1 at the codec: every byte string either decodes to an event whose numbers are real, or
raises PermanentError with MALFORMED_JSON / SCHEMA_VIOLATION. Nothing else, and no hang.

TRADEBUS_FUZZ_EXAMPLES=5000 (and TRADEBUS_FUZZ_RANDOM=1 for a new seed) digs deeper.
"""

from __future__ import annotations

import re
from decimal import Decimal

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradebus_common import subjects
from tradebus_common.codec import MAX_DECIMAL_EXPONENT, check_numbers, decode, encode
from tradebus_common.errors import ErrorCode, PermanentError
from tradebus_common.events import ALL_EVENTS, AnyEvent, Fill, LedgerSnapshot, PositionView

from ..support.hostile import (
    FUZZ,
    HOSTILE_BODIES,
    HOSTILE_NUMBERS,
    HOSTILE_STRINGS,
    any_body,
    body_of,
    decimal_fields,
    decimals_in,
    hostile_strings,
)

DECODE_CODES = {ErrorCode.MALFORMED_JSON, ErrorCode.SCHEMA_VIOLATION}
WITH_DECIMALS = [cls for cls in ALL_EVENTS if decimal_fields(cls)]


def assert_sane(event: object) -> None:
    """The guard's promise: every Decimal is finite, in range and never a negative zero."""
    for d in decimals_in(event):
        assert d.is_finite(), d
        assert not (d.is_zero() and d.is_signed()), d
        assert d.is_zero() or abs(d.adjusted()) <= MAX_DECIMAL_EXPONENT, d


def decode_or_typed_error(data: bytes, type_: object = AnyEvent) -> object | None:
    try:
        event = decode(data, type_)
    except PermanentError as e:
        assert e.code in DECODE_CODES, e.code
        return None
    assert_sane(event)
    return event


@pytest.mark.parametrize("cls", ALL_EVENTS, ids=lambda c: c.__name__)
def test_a_valid_body_of_every_event_decodes(cls: type) -> None:
    """The fuzz starts from real bodies: if these did not decode, it would test nothing."""
    data = msgspec.json.encode(body_of(cls))
    assert isinstance(decode(data, cls), cls)
    assert isinstance(decode(data), cls)


@settings(FUZZ, max_examples=FUZZ.max_examples * 3)
@given(cls=st.sampled_from(ALL_EVENTS), data=st.data())
def test_any_body_decodes_or_raises_a_typed_error(cls: type, data: st.DataObject) -> None:
    body = data.draw(any_body(cls))
    decode_or_typed_error(body, cls)
    decode_or_typed_error(body)


@pytest.mark.parametrize("body", HOSTILE_BODIES, ids=lambda b: repr(b[:24]))
def test_hostile_bodies_are_typed_errors(body: bytes) -> None:
    """Deep nesting (a RecursionError inside msgspec), 1 MB strings, 20,000 keys, NULs."""
    for cls in (AnyEvent, *ALL_EVENTS):
        decode_or_typed_error(body, cls)  # structs whose fields all have defaults take `{}`
    if body.startswith((b"[[", b'{"a":{')):
        with pytest.raises(PermanentError):
            decode(body)


@pytest.mark.parametrize("cls", WITH_DECIMALS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("raw", HOSTILE_NUMBERS, ids=lambda r: repr(r[:20]))
def test_no_nan_infinity_or_absurd_number_reaches_a_decimal_field(cls: type, raw: bytes) -> None:
    for name in decimal_fields(cls):
        body = body_of(cls)
        body[name] = msgspec.Raw(raw)
        decode_or_typed_error(msgspec.json.encode(body), cls)


@pytest.mark.parametrize(
    "raw", [b'"NaN"', b'"sNaN"', b'"Infinity"', b'"-inf"', b'"1e400"', b"1e400", b'"1e-41"']
)
def test_a_fill_with_a_non_number_is_a_schema_violation(raw: bytes) -> None:
    body = body_of(Fill)
    body["price"] = msgspec.Raw(raw)
    with pytest.raises(PermanentError) as info:
        decode(msgspec.json.encode(body))
    assert info.value.code is ErrorCode.SCHEMA_VIOLATION
    assert "price" in str(info.value)


@pytest.mark.parametrize("raw", [b'"-0"', b'"-0.00"', b"-0.0", b'"-0E+3"', b'"0E+99"'])
def test_a_negative_or_odd_zero_decodes_as_plain_zero(raw: bytes) -> None:
    body = body_of(Fill)
    body["fee"] = msgspec.Raw(raw)
    fill = decode(msgspec.json.encode(body))
    assert fill.fee == 0 and not fill.fee.is_signed() and b'"fee":"0"' in encode(fill)


def test_numbers_inside_nested_structs_are_checked() -> None:
    snap = body_of(LedgerSnapshot)
    position = {**body_of(PositionView), "quantity": "NaN"}
    snap["positions"] = [body_of(PositionView), position]
    with pytest.raises(PermanentError, match="quantity"):
        decode(msgspec.json.encode(snap))


def test_the_largest_and_smallest_accepted_numbers_pass() -> None:
    for text in ("1e40", "-1e40", "1e-40", "123456789.123456789", "0.00000001"):
        assert check_numbers(Decimal(text)) == Decimal(text)
        body = {**body_of(Fill), "quantity": text}
        assert decode(msgspec.json.encode(body)).quantity == Decimal(text)


@FUZZ
@given(value=st.one_of(hostile_strings, st.text(), st.text(min_size=100, max_size=3000)))
def test_token_is_always_one_safe_subject_token(value: str) -> None:
    """Names from messages end up in subjects: one token, no wildcard, nothing nats-py or
    the server refuses (tab/CR/LF would be a BadSubjectError; CRLF a protocol injection)."""
    tok = subjects.token(value)
    assert tok and not set(tok) & set(".*> \t\r\n")
    assert len(tok) <= 128  # the server drops a connection whose protocol line passes 4 KB
    assert tok == subjects.token(value)  # stable: the same name, the same subject
    assert re.fullmatch(r"[-/_=a-zA-Z0-9]+", subjects.kv_token(value))  # nats-py's KV alphabet


@pytest.mark.parametrize("value", HOSTILE_STRINGS, ids=range(len(HOSTILE_STRINGS)))
def test_hostile_names_make_one_subject_token(value: str) -> None:
    for subject in (subjects.fill(value, value), subjects.position(value), subjects.denied(value)):
        assert not set(subject) & set("*> \t\r\n")
        assert subject.count(".") == (3 if subject.startswith("trading.fill.") else 2) or (
            subject.startswith("trading.order.denied.") and subject.count(".") == 3
        )


def test_a_time_without_a_zone_is_read_as_utc() -> None:
    """B1: times are UTC. Left naive, comparing it with an aware time raised TypeError."""
    body = {**body_of(Fill), "ts": "2026-01-02T03:04:05"}
    fill = decode(msgspec.json.encode(body))
    assert fill.ts.tzinfo is not None and fill.ts.utcoffset().total_seconds() == 0
    aware = {**body_of(Fill), "ts": "2026-01-02T03:04:05+02:00"}
    assert decode(msgspec.json.encode(aware)).ts.utcoffset().total_seconds() == 7200


def test_plain_names_keep_their_token_and_kv_key() -> None:
    """Existing subjects and KV keys (latched locks) must not move."""
    for name, tok in (("BTC/USDT", "BTC-USDT"), ("demo", "demo"), ("paper", "paper")):
        assert subjects.token(name) == tok == subjects.kv_token(name)
