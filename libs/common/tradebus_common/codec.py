"""Encoders and decoders, built once. Lenient about unknown fields, strict about types."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

import msgspec
import msgspec.inspect as mi

from .errors import ErrorCode, PermanentError
from .events import AnyEvent, Event

T = TypeVar("T")

_encoder = msgspec.json.Encoder(decimal_format="string")
_any_decoder = msgspec.json.Decoder(AnyEvent)
_decoders: dict[Any, msgspec.json.Decoder] = {}


def encode(event: Event) -> bytes:
    return _encoder.encode(event)


def decoder_for(type_: Any) -> msgspec.json.Decoder:
    """The cached decoder for a type (a Struct, or a Union of them)."""
    dec = _decoders.get(type_)
    if dec is None:
        dec = _decoders[type_] = msgspec.json.Decoder(type_)
    return dec


def decode(data: bytes, type_: Any = AnyEvent) -> Any:
    """Decode or raise PermanentError with MALFORMED_JSON / SCHEMA_VIOLATION."""
    dec = _any_decoder if type_ is AnyEvent else decoder_for(type_)
    try:
        return check_numbers(dec.decode(data))
    except msgspec.ValidationError as e:
        raise PermanentError(f"schema violation: {e}", ErrorCode.SCHEMA_VIOLATION) from e
    except (msgspec.DecodeError, UnicodeDecodeError) as e:  # bad UTF-8 inside a string
        raise PermanentError(f"malformed JSON: {e}", ErrorCode.MALFORMED_JSON) from e
    except RecursionError as e:  # msgspec's answer to JSON nested thousands deep
        raise PermanentError("malformed JSON: nested too deep", ErrorCode.MALFORMED_JSON) from e


def require_positive(event: T, *names: str) -> T:
    """An order's quantity and prices are > 0 (None: not set). For decoders of order flow
    from the bus: the schema allows "-1" and "0", and a gate that compares a negative
    notional with its limit approves it (Q1 fuzzing found exactly that)."""
    for name in names:
        value = getattr(event, name)
        if value is not None and not value > 0:
            code = ErrorCode.INVALID_QUANTITY if "quantity" in name else ErrorCode.INVALID_PRICE
            raise PermanentError(f"{name} must be positive, got {value}", code)
    return event


# --- numbers and times a field must never hold -----------------------------------------
# msgspec decodes "NaN", "sNaN", "Infinity" and "1E+999999999" into a Decimal. One of those
# in a price or a quantity breaks every later comparison (NaN < x raises InvalidOperation),
# overflows the arithmetic or is booked as money. A real amount is finite and within
# 1e-40..1e40; a negative zero is a zero (it would print as "-0"). A time without a zone is
# UTC (B1): left naive, comparing it with an aware one raises TypeError.
MAX_DECIMAL_EXPONENT = 40
_ZERO = Decimal(0)
_LEAVES = (mi.DecimalType, mi.DateTimeType)
_plans: dict[type, tuple[tuple[str, bool], ...]] = {}


def check_numbers(value: Any) -> Any:
    """Raise SCHEMA_VIOLATION for a non-finite or absurd Decimal anywhere in a decoded value
    (Struct fields, lists, dict values); turn negative zeros into zeros and naive datetimes
    into UTC ones. Returns the value."""
    if isinstance(value, msgspec.Struct):
        for name, nested in _plan(type(value)):
            item = getattr(value, name)
            if nested:
                check_numbers(item)
            elif item is not None and (fixed := _checked(item, name)) is not item:
                msgspec.structs.force_setattr(value, name, fixed)
    elif isinstance(value, list):
        for item in value:
            check_numbers(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, Decimal | datetime):
                value[key] = _checked(item, str(key))
            else:
                check_numbers(item)
    return value


def _checked(value: Decimal | datetime, name: str) -> Any:
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value
    if not value.is_finite():
        raise PermanentError(f"{name}: {value} is not a number", ErrorCode.SCHEMA_VIOLATION)
    if value.is_zero():
        return _ZERO if value.is_signed() or value.adjusted() > MAX_DECIMAL_EXPONENT else value
    if abs(value.adjusted()) > MAX_DECIMAL_EXPONENT:
        raise PermanentError(f"{name}: {value:.3e} is out of range", ErrorCode.SCHEMA_VIOLATION)
    return value


def _plan(cls: type) -> tuple[tuple[str, bool], ...]:
    """The fields of a Struct that can hold a Decimal or a datetime: (name, nested?), nested
    meaning a Struct, list or dict to walk. Built once per class: the check costs a few
    getattrs per message."""
    plan = _plans.get(cls)
    if plan is None:
        info = mi.type_info(cls)
        assert isinstance(info, mi.StructType)
        plan = tuple((f.name, not _is_leaf(f.type)) for f in info.fields if _has_leaf(f.type))
        _plans[cls] = plan
    return plan


def _is_leaf(t: mi.Type) -> bool:
    if isinstance(t, mi.UnionType):
        return all(isinstance(x, (*_LEAVES, mi.NoneType)) for x in t.types)
    return isinstance(t, _LEAVES)


def _has_leaf(t: mi.Type, seen: set[type] | None = None) -> bool:
    seen = set() if seen is None else seen
    if isinstance(t, _LEAVES):
        return True
    if isinstance(t, mi.UnionType):
        return any(_has_leaf(x, seen) for x in t.types)
    if isinstance(t, mi.ListType | mi.DictType):
        return _has_leaf(t.item_type if isinstance(t, mi.ListType) else t.value_type, seen)
    if isinstance(t, mi.StructType) and t.cls not in seen:
        seen.add(t.cls)
        return any(_has_leaf(f.type, seen) for f in t.fields)
    return False
