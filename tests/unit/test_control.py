"""Operator control bodies: JSON, plain text or empty; the action comes from the subject."""

from __future__ import annotations

import json

import pytest

from tradebus_common.control import parse_control
from tradebus_common.errors import ErrorCode, PermanentError
from tradebus_common.events import ControlAction

HALT = "trading.control.halt"
RESUME = "trading.control.resume"


def test_plain_text_body_becomes_the_reason() -> None:
    cmd = parse_control(b"  fat finger on BTC  \n", HALT, "msg-1")
    assert cmd.action is ControlAction.HALT
    assert cmd.reason == "fat finger on BTC"
    assert cmd.operator == ""
    assert cmd.scope == "global"
    assert cmd.id == "msg-1"


def test_empty_body_gives_an_empty_reason() -> None:
    cmd = parse_control(b"", HALT, "msg-1")
    assert cmd.action is ControlAction.HALT
    assert cmd.reason == ""
    assert cmd.id == "msg-1"


@pytest.mark.parametrize(
    ("subject", "action"),
    [
        ("trading.control.halt", ControlAction.HALT),
        ("trading.control.resume", ControlAction.RESUME),
        ("trading.control.reconcile", ControlAction.RECONCILE),
    ],
)
def test_action_comes_from_the_last_subject_token(subject: str, action: ControlAction) -> None:
    assert parse_control(b"", subject, "d").action is action


def test_json_body_carries_reason_operator_and_scope() -> None:
    body = json.dumps({"reason": "drill", "operator": "alice", "scope": "paper"}).encode()
    cmd = parse_control(body, "trading.control.resume", "msg-1")
    assert cmd.action is ControlAction.RESUME
    assert (cmd.reason, cmd.operator, cmd.scope) == ("drill", "alice", "paper")
    assert cmd.id == "msg-1"


def test_json_body_with_an_id_keeps_it() -> None:
    cmd = parse_control(b'{"id": "op-7", "reason": "x"}', HALT, "msg-1")
    assert cmd.id == "op-7"


def test_json_body_with_empty_scope_defaults_to_global() -> None:
    assert parse_control(b'{"scope": ""}', HALT, "d").scope == "global"


def test_json_body_ignores_unknown_fields() -> None:
    cmd = parse_control(b'{"reason": "r", "extra": [1, 2]}', HALT, "d")
    assert cmd.reason == "r"


def test_json_body_with_surrounding_whitespace_is_still_json() -> None:
    cmd = parse_control(b'  \n{"reason": "r", "operator": "bob"}\n', HALT, "d")
    assert (cmd.reason, cmd.operator) == ("r", "bob")


def test_unknown_action_subject_is_an_invalid_command() -> None:
    with pytest.raises(PermanentError) as info:
        parse_control(b"", "trading.control.explode", "d")
    assert info.value.code is ErrorCode.INVALID_COMMAND
    assert "explode" in str(info.value)


@pytest.mark.parametrize(
    "body", [b'{"reason": ', b"{not json}", b'{"reason": 5}', b'{"operator": ["alice"]}']
)
def test_malformed_json_resume_is_an_invalid_command(body: bytes) -> None:
    with pytest.raises(PermanentError) as info:
        parse_control(body, RESUME, "d")
    assert info.value.code is ErrorCode.INVALID_COMMAND


@pytest.mark.parametrize("body", [b'{"reason": ', b"{not json}", b'{"reason": 5}'])
def test_malformed_json_halt_still_halts_keeping_the_text(body: bytes) -> None:
    cmd = parse_control(body, HALT, "d")
    assert cmd.action is ControlAction.HALT
    assert cmd.reason == "unparsed halt body: " + body.decode().strip()


def test_overlong_plain_text_reason_is_truncated() -> None:
    cmd = parse_control(b"x" * 5000, HALT, "d")
    assert cmd.reason == "x" * 500


def test_overlong_json_reason_is_truncated() -> None:
    cmd = parse_control(json.dumps({"reason": "y" * 5000}).encode(), HALT, "d")
    assert cmd.reason == "y" * 500


def test_non_utf8_plain_text_does_not_crash() -> None:
    cmd = parse_control(b"\xff\xfe halt now", HALT, "d")
    assert cmd.action is ControlAction.HALT
    assert cmd.reason.endswith("halt now")
    assert "\ufffd" in cmd.reason


def test_non_utf8_inside_a_json_body_is_an_invalid_command() -> None:
    with pytest.raises(PermanentError) as info:
        parse_control(b'{"reason": "\xff\xfe"}', RESUME, "d")
    assert info.value.code is ErrorCode.INVALID_COMMAND
