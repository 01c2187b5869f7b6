"""proto-schemas/ against the code, and the event union against its own schema."""

from __future__ import annotations

import enum
import json
import re
import types
import typing
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest
from jsonschema import Draft202012Validator

from tradebus_common import schemas
from tradebus_common.events import ALL_EVENTS, AnyEvent, Signal

ROOT = Path(__file__).resolve().parents[2]
PROTO = ROOT / "proto-schemas"
TAG_RE = re.compile(r"^[a-z][a-z_]*(\.[a-z][a-z_]*)*$")
DECODER = msgspec.json.Decoder(AnyEvent)


def _validator(doc: dict[str, Any]) -> Draft202012Validator:
    Draft202012Validator.check_schema(doc)
    return Draft202012Validator(doc)


EVENTS_VALIDATOR = _validator(schemas.events_schema())


def _errors(raw: Any, validator: Draft202012Validator = EVENTS_VALIDATOR) -> list[str]:
    return [e.message for e in validator.iter_errors(raw)]


# --- drift ------------------------------------------------------------------------------


def test_proto_schemas_match_the_code():
    drift = schemas.diff(PROTO)
    assert not drift, f"proto-schemas/ drifted {drift}: run `make schemas` and commit"


def test_check_names_changed_missing_and_extra_files(tmp_path):
    schemas.write(tmp_path)
    assert schemas.check(tmp_path) == []
    (tmp_path / schemas.EVENTS_FILE).write_text("{}\n")
    (tmp_path / schemas.SUBJECTS_FILE).unlink()
    (tmp_path / "events" / "gone.schema.json").write_text("{}\n")
    (tmp_path / "README.md").write_text("hand-written, not ours\n")
    assert schemas.diff(tmp_path) == {
        "events.schema.json": "changed",
        "events/gone.schema.json": "extra",
        "subjects.json": "missing",
    }
    assert schemas.main(["--out", str(tmp_path), "--check"]) == 1
    assert schemas.main(["--out", str(tmp_path)]) == 0
    assert schemas.check(tmp_path) == []
    assert (tmp_path / "README.md").exists()


def test_generate_is_deterministic_and_sorted():
    files = schemas.generate()
    assert files == schemas.generate()
    assert list(files) == sorted(files)
    for name, text in files.items():
        assert text.endswith("}\n"), name
        assert (
            text
            == json.dumps(json.loads(text), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        ), name


def test_subjects_file_carries_catalogue_and_streams():
    doc = json.loads(schemas.generate()[schemas.SUBJECTS_FILE])
    assert set(doc["streams"]) == {"TRADING", "MARKET"}
    tags = {schemas.tag_of(cls) for cls in ALL_EVENTS}
    carried = {tag for spec in doc["subjects"] for tag in spec["events"]}
    assert carried <= tags
    # Heartbeats live in the `health` KV bucket (with a TTL), not on a catalogued subject.
    assert tags - carried == {"health.heartbeat"}, "an event that no subject carries"


# --- tags and the union -----------------------------------------------------------------


@pytest.mark.parametrize("cls", ALL_EVENTS, ids=lambda c: c.__name__)
def test_event_has_explicit_dotted_lowercase_tag(cls):
    config = cls.__struct_config__
    assert config.tag_field == "type"
    # msgspec's implicit tag is the class name; ours must be chosen on purpose.
    assert isinstance(config.tag, str) and config.tag != cls.__name__
    assert TAG_RE.match(config.tag), config.tag


def test_tags_are_unique():
    tags = [schemas.tag_of(cls) for cls in ALL_EVENTS]
    assert len(tags) == len(set(tags))


def _value(tp: Any) -> Any:
    """A JSON value of type tp, as a client would write it (non-null, containers non-empty)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return _value(next(a for a in args if a is not type(None)))
    if origin is list:
        return [_value(args[0])]
    if origin is dict:
        return {"k": _value(args[1])}
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return next(iter(tp)).value
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        return _raw(tp)
    simple = {
        Decimal: "1.25",
        datetime: "2026-01-02T03:04:05Z",
        str: "x",
        int: 2,
        float: 1.5,
        bool: True,
    }
    return simple.get(tp, "x")


def _raw(cls: type[msgspec.Struct]) -> dict[str, Any]:
    raw = {f.encode_name: _value(f.type) for f in msgspec.structs.fields(cls)}
    tag = cls.__struct_config__.tag
    return raw | ({"type": tag} if isinstance(tag, str) else {})


@pytest.mark.parametrize("cls", ALL_EVENTS, ids=lambda c: c.__name__)
def test_union_decodes_a_sample_of_each_event(cls):
    raw = _raw(cls)
    event = DECODER.decode(json.dumps(raw).encode())
    assert type(event) is cls
    assert DECODER.decode(msgspec.json.encode(event)) == event


@pytest.mark.parametrize("cls", ALL_EVENTS, ids=lambda c: c.__name__)
def test_sample_of_each_event_validates_against_schemas(cls):
    raw = _raw(cls)
    assert _errors(raw) == []
    assert _errors(raw, _validator(schemas.event_schema(cls))) == []
    encoded = json.loads(msgspec.json.encode(DECODER.decode(json.dumps(raw).encode())))
    assert _errors(encoded) == []


def test_events_schema_has_one_branch_per_event():
    doc = schemas.events_schema()
    refs = {branch["$ref"].rsplit("/", 1)[1] for branch in doc["oneOf"]}
    assert refs == {cls.__name__ for cls in ALL_EVENTS}
    for cls in ALL_EVENTS:
        assert doc["$defs"][cls.__name__]["properties"]["type"] == {
            "enum": [cls.__struct_config__.tag]
        }


# --- a client's JSON Signal -------------------------------------------------------------

# As a client in any language would write it: decimals as strings, or as a JSON number
# (quantity) whose exact text msgspec keeps, so the schema must accept both.
CLIENT_SIGNAL_JSON = b"""{
  "type": "signal", "id": "demo-2026-01-02-0001", "strategy": "demo", "venue": "paper",
  "symbol": "BTC/USDT", "side": "buy", "quantity": 0.10, "order_type": "limit",
  "limit_price": "50000.10", "tags": {"source": "notebook"}
}"""
CLIENT_SIGNAL = json.loads(CLIENT_SIGNAL_JSON)


def test_client_json_signal_validates_and_decodes():
    assert _errors(CLIENT_SIGNAL) == []
    on_disk = json.loads((PROTO / "events" / "signal.schema.json").read_text())
    assert _errors(CLIENT_SIGNAL, _validator(on_disk)) == []
    signal = DECODER.decode(CLIENT_SIGNAL_JSON)
    assert isinstance(signal, Signal)
    assert signal.quantity == Decimal("0.10") and signal.limit_price == Decimal("50000.10")


@pytest.mark.parametrize(
    "change",
    [
        {"side": "hold"},
        {"quantity": [1]},
        {"limit_price": True},
        {"type": "order.filled"},
        {"type": "no.such.event"},
    ],
    ids=["bad-enum", "bad-decimal", "bad-optional-decimal", "wrong-tag", "unknown-tag"],
)
def test_bad_client_signal_fails_validation(change):
    assert _errors(CLIENT_SIGNAL | change) != []


def test_signal_without_quantity_is_schema_valid_and_without_side_is_not():
    # S2: `sizing` or `target_position` may size a signal instead of `quantity`; a signal
    # with none of the three is dead-lettered INVALID_SIZING by the signal service.
    raw = {k: v for k, v in CLIENT_SIGNAL.items() if k != "quantity"}
    assert _errors(raw) == []
    assert _errors({k: v for k, v in CLIENT_SIGNAL.items() if k != "side"}) != []
