"""Hostile input for the fuzz tests (Q1): hypothesis strategies and fixed lists of the strings,
numbers and bodies an attacker or a broken client sends.

`body_of(cls)` builds a valid JSON body for any event Struct from its msgspec type info, so
the mutations below start from something that gets past the first field and reaches the deep
paths (nested Structs, Decimal fields, enums), instead of failing on `type` every time.
"""

from __future__ import annotations

import enum
import os
import random
from decimal import Decimal
from typing import Any

import msgspec
import msgspec.inspect as mi
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

# Names that end up in subjects, KV keys, SQL rows and log lines.
HOSTILE_STRINGS: list[str] = [
    "",
    " ",
    "\x00",
    "BTC/USDT\x00",
    "\u202eTDSU/CTB",  # RTL override: renders as BTC/USDT reversed
    "BTC\u200d/USDT",  # zero-width joiner
    "BTC/USDT\u200b",  # zero-width space
    "\u0412\u0422\u0421/USDT",  # Cyrillic homoglyphs of BTC
    "\uff22\uff34\uff23/USDT",  # full-width BTC
    "d\u0435mo",  # Cyrillic e in a strategy name
    "*",
    ">",
    "demo.*",
    "demo.>",
    "a.b.c",
    "..",
    "trading.control.halt",
    "\r\nPUB trading.control.halt 0\r\n\r\n",  # protocol injection through a subject token
    "x\tPUB",
    "\u2028\u2029",
    "../../etc/passwd",
    "'; DROP TABLE fills; --",
    "${jndi:ldap://x/a}",
    "%s%s%n%x",
    "\U0001f4a5" * 10,
    "a" * 10_000,
    "\x1b[31mred\x1b[0m",
]

# Values for Decimal fields, as JSON text (so numbers like 1e400 stay numbers on the wire).
HOSTILE_NUMBERS: list[bytes] = [
    b'"NaN"',
    b'"nan"',
    b'"-NaN"',
    b'"sNaN"',
    b'"Infinity"',
    b'"-Infinity"',
    b'"inf"',
    b'"-inf"',
    b'"1e400"',
    b'"-1e400"',
    b"1e400",
    b'"1E+999999999"',
    b'"1e-400"',
    b'"1E-999999999"',
    b'"-0"',
    b'"-0.0"',
    b'"-0E+3"',
    b"-0.0",
    b'"0"',
    b'"-1"',
    b'"1' + b"0" * 5000 + b'"',
    b"1" + b"0" * 1000,  # 10**1000 as a JSON number
    b'"0.' + b"0" * 5000 + b'1"',
    b'"0x10"',
    b'"1_000"',
    b'" 1 "',
    b'""',
    b'"1e"',
    b"true",
    b"null",
    b"[]",
    b"{}",
]

MB = 1024 * 1024

# Whole bodies: malformed JSON, wrong shapes, huge payloads.
HOSTILE_BODIES: list[bytes] = [
    b"",
    b" ",
    b"null",
    b"0",
    b"[]",
    b"{}",
    b'"halt"',
    b"{",
    b'{"type": ',
    b"\xff\xfe\x00\x00",
    b'{"a": "\xff"}',  # invalid UTF-8 inside a string
    b'{"type": "signal"}',
    b'{"type": "no.such.tag", "id": "x"}',
    b'{"type": 1}',
    b"[" * 10_000 + b"]" * 10_000,  # deep nesting
    b'{"a":' * 5_000 + b"1" + b"}" * 5_000,
    b'{"id": "' + b"x" * MB + b'"}',  # a 1 MB string
    b'{"type": "signal", "tags": {' + b",".join(b'"k%d": "v"' % i for i in range(20_000)) + b"}}",
    b'{"id": "a", "id": "b"}',  # duplicate keys
    b"\x00" * 1000,
]


def json_number(raw: bytes) -> msgspec.Raw:
    return msgspec.Raw(raw)


# --- valid bodies from type info --------------------------------------------------------


def _valid(t: mi.Type, depth: int = 0) -> Any:  # noqa: PLR0911 (one branch per kind)
    if isinstance(t, mi.StrType):
        return "x"
    if isinstance(t, mi.DecimalType):
        return "1"
    if isinstance(t, mi.BoolType):
        return False
    if isinstance(t, mi.IntType):
        return 1
    if isinstance(t, mi.FloatType):
        return 1.0
    if isinstance(t, mi.DateTimeType):
        return "2026-01-02T03:04:05Z"
    if isinstance(t, mi.EnumType):
        return next(iter(t.cls)).value
    if isinstance(t, mi.LiteralType):
        return t.values[0]
    if isinstance(t, mi.UnionType):
        kinds = [x for x in t.types if not isinstance(x, mi.NoneType)]
        return _valid(kinds[0], depth) if kinds else None
    if isinstance(t, mi.StructType):
        return _struct_body(t, depth + 1)
    if isinstance(t, mi.ListType | mi.DictType | mi.AnyType | mi.NoneType):
        return [] if isinstance(t, mi.ListType) else ({} if isinstance(t, mi.DictType) else None)
    raise NotImplementedError(f"no valid value for {t!r}")


def _struct_body(t: mi.StructType, depth: int) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if t.tag_field is not None:
        body[t.tag_field] = t.tag
    for f in t.fields:
        if f.required or depth == 1:  # the top level gets every field, nested only required
            body[f.encode_name] = _valid(f.type, depth)
    return body


def body_of(cls: type[msgspec.Struct]) -> dict[str, Any]:
    """A JSON body (dict) that decodes as `cls`."""
    info = mi.type_info(cls)
    assert isinstance(info, mi.StructType)
    return _struct_body(info, 1)


def field_kinds(cls: type[msgspec.Struct]) -> dict[str, mi.Type]:
    info = mi.type_info(cls)
    assert isinstance(info, mi.StructType)
    return {f.encode_name: f.type for f in info.fields}


def _is_decimal(t: mi.Type) -> bool:
    if isinstance(t, mi.UnionType):
        return any(_is_decimal(x) for x in t.types)
    return isinstance(t, mi.DecimalType)


def decimal_fields(cls: type[msgspec.Struct]) -> list[str]:
    return [name for name, t in field_kinds(cls).items() if _is_decimal(t)]


# --- hypothesis strategies --------------------------------------------------------------

hostile_strings = st.one_of(st.sampled_from(HOSTILE_STRINGS), st.text(max_size=40))
hostile_numbers = st.sampled_from(HOSTILE_NUMBERS).map(json_number)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    hostile_strings,
    hostile_numbers,
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(hostile_strings, inner, max_size=4),
    max_leaves=12,
)


def _value_for(t: mi.Type) -> st.SearchStrategy[Any]:
    """Something hostile aimed at a field of this kind (plus anything at all)."""
    if _is_decimal(t):
        return st.one_of(hostile_numbers, json_values)
    if isinstance(t, mi.StrType) or (
        isinstance(t, mi.UnionType) and any(isinstance(x, mi.StrType) for x in t.types)
    ):
        return st.one_of(hostile_strings, json_values)
    if isinstance(t, mi.EnumType):
        values = [m.value for m in t.cls if isinstance(m, enum.Enum)]
        odd = [v.upper() for v in values] + [v + "\x00" for v in values]
        return st.one_of(st.sampled_from(odd), hostile_strings, json_values)
    if isinstance(t, mi.FloatType | mi.IntType):
        return st.one_of(hostile_numbers, st.integers(), st.floats(), json_values)
    return json_values


@st.composite
def mutated_body(draw: st.DrawFn, cls: type[msgspec.Struct]) -> bytes:
    """A valid body for `cls` with a few fields replaced, removed or added, as JSON bytes."""
    body = body_of(cls)
    kinds = field_kinds(cls)
    names = sorted(kinds)
    for name in draw(st.lists(st.sampled_from(names), min_size=1, max_size=3, unique=True)):
        action = draw(st.sampled_from(["replace", "replace", "replace", "drop"]))
        if action == "drop":
            body.pop(name, None)
        else:
            body[name] = draw(_value_for(kinds[name]))
    if draw(st.booleans()):
        body[draw(hostile_strings)] = draw(json_values)  # unknown fields are ignored
    return msgspec.json.encode(body)


raw_bytes = st.one_of(st.binary(max_size=300), st.sampled_from(HOSTILE_BODIES))


def any_body(cls: type[msgspec.Struct]) -> st.SearchStrategy[bytes]:
    """Random bytes, fixed hostile bodies, random JSON, or a mutated valid body."""
    return st.one_of(
        raw_bytes,
        json_values.map(msgspec.json.encode),
        mutated_body(cls),
    )


def decimals_in(obj: Any) -> list[Decimal]:
    """Every Decimal reachable in a decoded value (Struct fields, lists, dict values)."""
    found: list[Decimal] = []
    stack = [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, Decimal):
            found.append(item)
        elif isinstance(item, msgspec.Struct):
            stack.extend(getattr(item, f) for f in item.__struct_fields__)
        elif isinstance(item, list | tuple):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
    return found


# --- how hard to try --------------------------------------------------------------------
# `make test` keeps the defaults small; TRADEBUS_FUZZ_EXAMPLES=5000 digs deeper.
FUZZ = settings(
    max_examples=int(os.environ.get("TRADEBUS_FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=os.environ.get("TRADEBUS_FUZZ_RANDOM", "") == "",
)


# --- the stack-level storm (tests/integration/test_fuzz_stack.py) -----------------------
# Bodies that can never be a tradable message: garbage, or a valid body with at least one
# field broken beyond repair. A storm of these must change no position.

_ZEROS_AND_VALID = (b'"0"', b'"-1"', b'" 1 "', b'"1_000"', b"-0.0")
STRUCTURALLY_BAD_NUMBERS: list[bytes] = [
    *(n for n in HOSTILE_NUMBERS if n not in _ZEROS_AND_VALID and not n.startswith(b'"-0')),
    b'"abc"',
    b'"1e-41"',
]
ENUM_FIELDS = {"side", "order_type", "action"}
# Numbers that decode but must not be traded or booked (quantity or price <= 0).
NON_POSITIVE = [b'"0"', b'"-1"', b'"-0"', b"-0.0", b'"-1e-8"']
# Fields that, broken, make each body unusable (required, or a number that must be > 0).
BREAKABLE: dict[str, list[str]] = {
    "signal": ["quantity"],
    "intent": ["quantity", "limit_price", "side", "order_type", "strategy"],
    "approval": ["quantity", "side", "order_type", "client_order_id", "intent_id"],
    "fill": ["quantity", "price", "side", "trade_id", "client_order_id"],
    "tick": ["price"],
    "command": ["action", "strategy"],
}


def _random_json(rng: random.Random, depth: int = 0) -> Any:
    pick = rng.randrange(9 if depth < 3 else 5)
    if pick == 0:
        return None
    if pick == 1:
        return rng.choice([True, False, 0, -1, 2**70, 1.5e300])
    if pick == 2:
        return rng.choice(HOSTILE_STRINGS)
    if pick == 3:
        return msgspec.Raw(rng.choice(HOSTILE_NUMBERS))
    if pick == 4:
        return "".join(chr(rng.randrange(1, 0x2FFF)) for _ in range(rng.randrange(12)))
    if pick in (5, 6):
        return [_random_json(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {rng.choice(HOSTILE_STRINGS): _random_json(rng, depth + 1) for _ in range(3)}


def garbage(rng: random.Random) -> bytes:
    """Not a message at all: bytes, hostile bodies, text, JSON of the wrong shape."""
    pick = rng.randrange(5)
    if pick == 0:
        return rng.randbytes(rng.randrange(1, 400))
    if pick == 1:
        return rng.choice(HOSTILE_BODIES)
    if pick == 2:
        return rng.choice(HOSTILE_STRINGS).encode("utf-8", "surrogatepass") or b" "
    if pick == 3:
        return b'{"type": "signal", "id": "' + b"z" * (1024 * 1024 - 4096) + b'"}'  # just < 1 MB
    return msgspec.json.encode(_random_json(rng))


def broken(kind: str, template: dict[str, Any], rng: random.Random) -> bytes:
    """`template` (a valid body) with one breakable field ruined, plus noise elsewhere."""
    body = dict(template)
    name = rng.choice(BREAKABLE[kind])
    if rng.random() < 0.25:
        body.pop(name, None)
    elif name in ("quantity", "price", "limit_price"):
        semantic = kind != "tick" and rng.random() < 0.3
        body[name] = msgspec.Raw(rng.choice(NON_POSITIVE if semantic else STRUCTURALLY_BAD_NUMBERS))
    else:  # a string field breaks with a non-string; an enum also with a near miss
        odd = ["\x00", "BUY\u200d", "Buy"] if name in ENUM_FIELDS else []
        body[name] = rng.choice([None, 1, [], {}, msgspec.Raw(b"1e400"), *odd])
    for other in rng.sample(sorted(body), k=min(2, len(body))):
        if other not in (name, "type", "quantity", "price", "limit_price"):
            body[other] = rng.choice(HOSTILE_STRINGS)  # names: unicode tricks, wildcards
    return msgspec.json.encode(body)
