"""Q1/O5 for the config file: hostile TOML loads into a Config with real numbers, or fails
with ConfigError (the process exits non-zero naming the key), never another exception."""

from __future__ import annotations

import tempfile
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradebus_common.config import ConfigError, load_config

from ..support.hostile import FUZZ, HOSTILE_STRINGS

KEYS = [
    ("bus", "url"),
    ("bus", "max_deliver"),
    ("bus", "nak_delay_s"),
    ("strategies.demo", "allocation_weight"),
    ("strategies.demo", "quantity"),
    ("strategies.demo", "max_holding_s"),
    ("risk", "max_notional_per_order"),
    ("runtime", "heartbeat_interval_s"),
    ('venues."pa.per>"', "symbols"),
    ("venues.paper", "taker_fee_rate"),
    ("nonsense", "key"),
]
TOML_VALUES = [
    "nan",
    "+inf",
    "-inf",
    '"NaN"',
    '"Infinity"',
    '"1e400"',
    "1e308",
    "99999999999999999999999",
    "-0.0",
    "true",
    "[]",
    "{}",
    '"\\u0000"',
    '["*", ">", "a.b"]',
    "1979-05-27T07:32:00Z",
]


def toml_string(s: str) -> str:
    return '"' + "".join(c if c.isalnum() else f"\\u{ord(c):04x}" for c in s[:200]) + '"'


values = st.one_of(st.sampled_from(TOML_VALUES), st.sampled_from(HOSTILE_STRINGS).map(toml_string))
documents = st.one_of(
    st.lists(st.tuples(st.sampled_from(KEYS), values), min_size=1, max_size=4).map(
        lambda pairs: "".join(f"[{sec}]\n{key} = {val}\n" for (sec, key), val in pairs)
    ),
    st.text(max_size=200),
)


def load_or_config_error(path: Path, text: bytes) -> None:
    path.write_bytes(text)
    try:
        cfg = load_config(path, environ={})
    except ConfigError:
        return
    for section in (cfg.bus, cfg.runtime, cfg.risk, *cfg.strategies.values()):
        for name in section.__struct_fields__:
            value = getattr(section, name)
            if isinstance(value, Decimal | float):
                assert Decimal(value).is_finite(), (name, value)


@FUZZ
@given(doc=documents)
def test_hostile_toml_loads_or_is_a_config_error(doc: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:  # one file per example (not a shared fixture)
        load_or_config_error(Path(tmp) / "tradebus.toml", doc.encode("utf-8", "surrogatepass"))


@pytest.mark.parametrize(
    "text",
    [
        b"[strategies.demo]\nallocation_weight = inf\n",
        b'[strategies.demo]\nquantity = "NaN"\n',
        b"[runtime]\nheartbeat_interval_s = nan\n",
        b'[bus]\nurl = "\xff\xfe"\n',  # not UTF-8
        b"\x00\x01\x02",
    ],
)
def test_known_hostile_configs_are_config_errors(tmp_path: Path, text: bytes) -> None:
    path = tmp_path / "tradebus.toml"
    path.write_bytes(text)
    with pytest.raises(ConfigError):
        load_config(path, environ={})


def test_a_directory_as_config_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unreadable"):
        load_config(tmp_path, environ={})
