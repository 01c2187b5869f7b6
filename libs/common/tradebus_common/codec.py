"""Encoders and decoders, built once. Lenient about unknown fields, strict about types."""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

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
        return dec.decode(data)
    except msgspec.ValidationError as e:
        raise PermanentError(f"schema violation: {e}", ErrorCode.SCHEMA_VIOLATION) from e
    except (msgspec.DecodeError, UnicodeDecodeError) as e:  # bad UTF-8 inside a string
        raise PermanentError(f"malformed JSON: {e}", ErrorCode.MALFORMED_JSON) from e
