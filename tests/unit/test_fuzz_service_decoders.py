"""Q1 at each service's own decoder (the function its consume loop calls on a raw message):
the risk-gate's decode_message, the gateway's decode_order_flow, the ledger's decode_ingest
and the control parser. Each returns a Struct or raises PermanentError with a code.

A halt is special (U4): whatever its body, trading.control.halt parses to a HALT command.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nats.aio.msg import Msg

from tradebus_common import subjects
from tradebus_common.codec import decode
from tradebus_common.control import _ControlBody, parse_control
from tradebus_common.errors import ErrorCode, PermanentError
from tradebus_common.events import (
    CancelOrder,
    ControlAction,
    ControlCommand,
    Fill,
    ModifyOrder,
    OrderApproved,
    OrderIntent,
    OrderSubmitted,
    TradingStateChanged,
)
from tradebus_execution_gateway.algos.reports import invalid_params
from tradebus_execution_gateway.service import decode_order_flow
from tradebus_position_ledger.service import decode_ingest
from tradebus_risk_gate.service import decode_message

from ..support.hostile import (
    FUZZ,
    HOSTILE_BODIES,
    any_body,
    body_of,
    decimals_in,
    hostile_strings,
)

REPLY = "$JS.ACK.TRADING.fuzz.1.7.7.1700000000000000000.0"  # a JetStream delivery's metadata
CONTROL_CODES = {ErrorCode.INVALID_COMMAND}
DECODE_CODES = {ErrorCode.MALFORMED_JSON, ErrorCode.SCHEMA_VIOLATION}
ORDER_CODES = DECODE_CODES | {ErrorCode.INVALID_QUANTITY, ErrorCode.INVALID_PRICE}

RISK_INPUTS = [
    ("trading.intent.demo", OrderIntent),
    *((subjects.control(a.value), _ControlBody) for a in ControlAction),
]
GATEWAY_INPUTS = [
    (subjects.approved("paper"), OrderApproved),
    (subjects.RISK_STATE, TradingStateChanged),
    (subjects.CONTROL_CANCEL_ALL, _ControlBody),
    (subjects.ORDER_CANCEL, CancelOrder),
    (subjects.ORDER_MODIFY, ModifyOrder),
]


def msg(subject: str, data: bytes) -> Msg:
    return Msg(None, subject=subject, reply=REPLY, data=data, headers={"Nats-Msg-Id": "m-1"})  # type: ignore[arg-type]


def outcome(decoder: Any, subject: str, data: bytes, codes: set[ErrorCode]) -> Any:
    """The decoded value, or None after a PermanentError with one of `codes`."""
    try:
        event = decoder(msg(subject, data))
    except PermanentError as e:
        assert e.code in codes, (subject, e.code, str(e)[:200])
        return None
    for d in decimals_in(event):
        assert d.is_finite()
    if isinstance(event, OrderIntent | OrderApproved | ModifyOrder):  # never a "-1" order
        assert all(v is None or v > 0 for v in (event.quantity, event.limit_price)), event
    return event


def control_bodies() -> st.SearchStrategy[bytes]:
    text = hostile_strings.map(lambda s: s.encode("utf-8", "surrogatepass"))
    return st.one_of(any_body(_ControlBody), text)


@settings(FUZZ, max_examples=FUZZ.max_examples * 2)
@given(pick=st.sampled_from(RISK_INPUTS), data=st.data())
def test_risk_gate_decoder(pick: tuple[str, type], data: st.DataObject) -> None:
    subject, cls = pick
    body = data.draw(any_body(cls) if cls is not _ControlBody else control_bodies())
    event = outcome(decode_message, subject, body, ORDER_CODES | CONTROL_CODES)
    assert event is None or isinstance(event, OrderIntent | ControlCommand)


@settings(FUZZ, max_examples=FUZZ.max_examples * 2)
@given(pick=st.sampled_from(GATEWAY_INPUTS), data=st.data())
def test_gateway_order_flow_decoder(pick: tuple[str, type], data: st.DataObject) -> None:
    subject, cls = pick
    body = data.draw(any_body(cls) if cls is not _ControlBody else control_bodies())
    event = outcome(decode_order_flow, subject, body, ORDER_CODES | CONTROL_CODES)
    assert event is None or isinstance(event, cls if cls is not _ControlBody else ControlCommand)


@settings(FUZZ, max_examples=FUZZ.max_examples * 2)
@given(cls=st.sampled_from([Fill, OrderApproved, OrderSubmitted]), data=st.data())
def test_ledger_ingest_decoder(cls: type, data: st.DataObject) -> None:
    body = data.draw(any_body(cls))
    try:
        event = decode_ingest(body)
    except PermanentError as e:
        assert e.code in DECODE_CODES
        return
    assert all(d.is_finite() for d in decimals_in(event))


@pytest.mark.parametrize("raw", [b'"NaN"', b'"Infinity"', b'"sNaN"', b'"1E+999999"'])
def test_ledger_never_takes_a_fill_with_a_non_number(raw: bytes) -> None:
    body = msgspec.json.encode(
        {
            "type": "order.filled",
            "venue": "paper",
            "symbol": "BTC/USDT",
            "strategy": "demo",
            "client_order_id": "c",
            "trade_id": "t",
            "side": "buy",
            "quantity": "1",
            "price": "100",
            "fee": msgspec.Raw(raw),
        }
    )
    with pytest.raises(PermanentError) as info:
        decode_ingest(body)
    assert info.value.code is ErrorCode.SCHEMA_VIOLATION


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("quantity", "-1", ErrorCode.INVALID_QUANTITY),
        ("quantity", "0", ErrorCode.INVALID_QUANTITY),
        ("quantity", "-0", ErrorCode.INVALID_QUANTITY),
        ("limit_price", "-1e-8", ErrorCode.INVALID_PRICE),
    ],
)
def test_a_non_positive_order_is_refused_by_risk_gate_and_gateway(field, value, code):
    """Found by the stack fuzz: the risk-gate approved a quantity of -1 (a negative notional
    is under every limit) and the paper venue filled it."""
    for decoder, subject, cls in (
        (decode_message, "trading.intent.demo", OrderIntent),
        (decode_order_flow, subjects.approved("paper"), OrderApproved),
        (decode_order_flow, subjects.ORDER_MODIFY, ModifyOrder),
    ):
        body = msgspec.json.encode({**body_of(cls), field: value})
        with pytest.raises(PermanentError) as info:
            decoder(msg(subject, body))
        assert info.value.code is code


@FUZZ
@given(body=st.one_of(control_bodies(), st.sampled_from(HOSTILE_BODIES)))
def test_any_halt_body_halts(body: bytes) -> None:
    """An emergency stop never fails on its wording: text, garbage, deep nesting, 1 MB."""
    cmd = parse_control(body, subjects.CONTROL_HALT, "fallback-id")
    assert cmd.action is ControlAction.HALT
    assert len(cmd.reason) <= 500 and cmd.id


@FUZZ
@given(action=hostile_strings, body=control_bodies())
def test_unknown_control_action_is_an_invalid_command(action: str, body: bytes) -> None:
    subject = subjects.control(action)
    try:
        cmd = parse_control(body, subject, "x")
    except PermanentError as e:
        assert e.code is ErrorCode.INVALID_COMMAND
        return
    assert cmd.action.value == subject.rsplit(".", 1)[-1]


def test_a_halt_with_a_huge_id_and_operator_stays_small_enough_to_announce():
    """A 1 MB `id` rode on every event the halt caused, each then over max_payload: the halt
    was latched but never announced (no TradingStateChanged, no cancel-all, no alert)."""
    body = msgspec.json.encode({"id": "i" * 1_000_000, "operator": "o" * 1_000_000})
    cmd = parse_control(body, subjects.CONTROL_HALT, "fallback")
    assert cmd.action is ControlAction.HALT
    assert len(cmd.id) <= 200 and len(cmd.operator) <= 500
    assert cmd.id == parse_control(body, subjects.CONTROL_HALT, "other").id  # stable


@pytest.mark.parametrize(
    ("horizon_s", "interval_s", "refused"),
    [(1e8, 1.0, True), (1e308, 1e-308, True), (86_400.0, 1.0, False), (60.0, 10.0, False)],
)
def test_a_twap_of_too_many_slices_fails_instead_of_filling_memory(horizon_s, interval_s, refused):
    """A valid signal could ask for horizon 1e8 s in 1 s slices: the gateway would build a list
    of 1e8 slices (~1.5 GB; 1e7 measured 152 MB). It now fails the algo (AlgoProgress FAILED
    with the reason)."""
    approval = decode(
        msgspec.json.encode(
            {
                **body_of(OrderApproved),
                "algo": {"kind": "twap", "horizon_s": horizon_s, "interval_s": interval_s},
            }
        ),
        OrderApproved,
    )
    assert bool(invalid_params(approval)) is refused
