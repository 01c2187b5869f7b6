"""Q1 in the signal service's pure path: decode -> validate -> TTL -> bracket -> size. A hostile
signal ends as an order (positive, finite quantity), a SizingRefused (a SignalRejected event)
or a PermanentError with its reason code. Never another exception: that would be retried
max_deliver times and dead-lettered as MAX_DELIVERIES instead of with its reason.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradebus_common.codec import decode
from tradebus_common.config import StrategyConfig, VenueSymbolRules
from tradebus_common.errors import ErrorCode, PermanentError
from tradebus_common.events import AlgoKind, SizingMode
from tradebus_common.events import Signal as SignalEvent
from tradebus_signal.runs import effective_config
from tradebus_signal.sizing import SizingRefused, SizingView, size_order
from tradebus_signal.validation import check_bracket, is_expired, validate

from ..conftest import make_config
from ..support.hostile import FUZZ, HOSTILE_STRINGS, hostile_numbers, hostile_strings, json_values

CONFIG = make_config("nats://unused")
NOW = datetime(2026, 1, 2, tzinfo=UTC)
D = Decimal

# Finite numbers that still break naive arithmetic: 1e40 // 1e-8 has 49 digits, past the
# 28-digit context, so Decimal raises InvalidOperation (DivisionImpossible).
EDGE = [D("1e40"), D("1e-40"), D("1e20"), D("1"), D("0.00000001"), D("20000"), D("-5")]
edge_numbers = st.sampled_from([str(d) for d in EDGE])
numbers = st.one_of(hostile_numbers, edge_numbers, json_values)
floats = st.one_of(
    st.floats(), st.sampled_from([1e308, -1e308, 5e-324, 0.0, -0.0]), st.integers(), json_values
)


@st.composite
def signal_bodies(draw: st.DrawFn) -> bytes:
    """A signal aimed at the configured strategy, venue and symbol (so it gets past the
    lookups and into the numbers), with hostile values in the fields that carry them."""
    body: dict[str, Any] = {
        "id": draw(st.sampled_from(["s1", *HOSTILE_STRINGS[:8]])),
        "strategy": draw(st.sampled_from(["demo", "demo", "off", "d\u0435mo", "demo.*"])),
        "venue": draw(st.sampled_from(["paper", "paper", "PAPER", "paper\x00"])),
        "symbol": draw(st.sampled_from(["BTC/USDT", "BTC/USDT", "\u0412\u0422\u0421/USDT"])),
        "side": draw(st.sampled_from(["buy", "sell", "BUY", "hold"])),
        "quantity": "1",  # valid unless replaced below, so the later checks are reached
    }
    optional: dict[str, st.SearchStrategy[Any]] = {
        "quantity": numbers,
        "order_type": st.sampled_from(["market", "limit", "stop"]),
        "limit_price": numbers,
        "target_position": numbers,
        "sizing": st.fixed_dictionaries(
            {"mode": st.sampled_from([m.value for m in SizingMode] + ["x"]), "value": numbers}
        ),
        "bracket": st.fixed_dictionaries(
            {},
            optional={
                "stop_loss": numbers,
                "take_profit": numbers,
                "trailing_distance": numbers,
                "max_holding_s": floats,
            },
        ),
        "algo": st.fixed_dictionaries(
            {"kind": st.sampled_from([k.value for k in AlgoKind])},
            optional={"horizon_s": floats, "display_quantity": numbers, "timeout_s": floats},
        ),
        "priority": st.one_of(st.integers(), st.just(msgspec.Raw(b"1" + b"0" * 400))),
        "ttl_s": floats,
        "expires_at": st.sampled_from(["2026-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "x"]),
        "tags": st.dictionaries(hostile_strings, hostile_strings, max_size=3),
        "ts": st.sampled_from(
            ["9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "2026-01-01T00:00:00", "1"]
        ),
    }
    for name in draw(st.lists(st.sampled_from(sorted(optional)), max_size=5, unique=True)):
        body[name] = draw(optional[name])
    return msgspec.json.encode(body)


views = st.builds(
    SizingView,
    price=st.one_of(st.none(), st.sampled_from(EDGE[:-1])),
    equity=st.one_of(st.none(), st.sampled_from(EDGE)),
    weight=st.sampled_from([D(1), D("0.3"), D(0)]),
    position=st.sampled_from([D(0), D("1e40"), D("-3")]),
    rules=st.sampled_from(
        [VenueSymbolRules(), VenueSymbolRules(qty_step=D("1e-30"), min_notional=D("10"))]
    ),
    stop=st.one_of(st.none(), st.sampled_from(EDGE[:-1])),
)


def decide(body: bytes, view: SizingView) -> str:
    """The signal handler's decision path, pure: what became of this body."""
    try:
        signal = decode(body, SignalEvent)
        strategy = CONFIG.strategies.get(signal.strategy) or StrategyConfig()
        validate(signal, CONFIG)
        if is_expired(signal, NOW, 0.0):
            return "expired"
        check_bracket(signal.bracket, signal.side, view.price)
        side, quantity = size_order(signal, strategy, view)
    except PermanentError as e:
        assert isinstance(e.code, ErrorCode)
        return e.code.value
    except SizingRefused as e:
        return e.reason.value
    assert quantity.is_finite() and quantity > 0, quantity
    return "intent"


@settings(FUZZ, max_examples=FUZZ.max_examples * 4)
@given(body=signal_bodies(), view=views)
def test_a_hostile_signal_ends_as_an_intent_a_refusal_or_a_reason_code(
    body: bytes, view: SizingView
) -> None:
    decide(body, view)


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"quantity": "1e40"}, "intent-or-code"),  # 1e40 // step: past the 28-digit context
        ({"ttl_s": 1e308}, "intent-or-code"),  # ts + timedelta(1e308 s) overflows
        ({"bracket": {"max_holding_s": 1e308}}, "intent-or-code"),
        ({"ts": "9999-12-31T23:59:59Z", "ttl_s": 5}, "intent"),  # ts + ttl past year 9999
        ({"ts": "2026-01-01T00:00:00", "ttl_s": 5}, "expired"),  # a naive time is UTC
        ({"quantity": "NaN"}, ErrorCode.SCHEMA_VIOLATION.value),
        ({"limit_price": "Infinity", "order_type": "limit"}, ErrorCode.SCHEMA_VIOLATION.value),
        ({"quantity": "-0"}, ErrorCode.INVALID_QUANTITY.value),
        ({"symbol": "\u0412\u0422\u0421/USDT"}, ErrorCode.UNKNOWN_SYMBOL.value),  # homoglyphs
        ({"strategy": "d\u0435mo"}, ErrorCode.UNKNOWN_STRATEGY.value),
        ({"strategy": "demo\u200d"}, ErrorCode.UNKNOWN_STRATEGY.value),
        ({"symbol": "BTC/USDT\x00"}, ErrorCode.UNKNOWN_SYMBOL.value),
        # a NUL in the id reached the ledger's correlation_id: the venue filled, the ledger
        # could not book it (PostgreSQL refuses NUL in text)
        ({"id": "nul\x00id"}, ErrorCode.SCHEMA_VIOLATION.value),
        ({"id": "\u202eid"}, ErrorCode.SCHEMA_VIOLATION.value),
        ({"id": "i" * 201}, ErrorCode.SCHEMA_VIOLATION.value),
        ({"id": ""}, ErrorCode.SCHEMA_VIOLATION.value),
    ],
)
def test_known_hostile_signals(fields: dict[str, Any], code: str) -> None:
    body = {
        "id": "s1",
        "strategy": "demo",
        "venue": "paper",
        "symbol": "BTC/USDT",
        "side": "buy",
        "quantity": "1",
        **fields,
    }
    got = decide(msgspec.json.encode(body), SizingView(price=D("20000")))
    assert got == code or (code == "intent-or-code" and got in {"intent", *ErrorCode})


@FUZZ
@given(
    overrides=st.dictionaries(
        st.sampled_from(list(StrategyConfig.__struct_fields__)),
        st.one_of(
            hostile_strings, st.sampled_from(["NaN", "inf", "-Infinity", "1e400", "sNaN", "nan"])
        ),
    )
)
def test_run_overrides_are_valid_or_a_validation_error(overrides: dict[str, str]) -> None:
    """O6 start overrides come from an operator's message: no NaN weight or Infinity size."""
    try:
        cfg = effective_config(StrategyConfig(), overrides)
    except msgspec.ValidationError:
        return
    for name in cfg.__struct_fields__:
        value = getattr(cfg, name)
        if isinstance(value, Decimal | float):
            assert D(value).is_finite(), (name, value)
