"""Operator control messages. The `nats` CLI must work, so a body may be JSON, plain text
(the reason) or empty; the action comes from the subject (trading.control.<action>)."""

from __future__ import annotations

import msgspec
from nats.aio.msg import Msg

from .bus import message_id
from .errors import ErrorCode, PermanentError
from .events import ControlAction, ControlCommand
from .ids import derive_id

_MAX_REASON = 500
_MAX_ID = 200


class _ControlBody(msgspec.Struct, kw_only=True):
    reason: str = ""
    operator: str = ""
    scope: str = "global"
    id: str = ""
    flatten: bool = False
    target: str = ""


_body_decoder = msgspec.json.Decoder(_ControlBody)


def action_from_subject(subject: str) -> ControlAction:
    name = subject.rsplit(".", 1)[-1]
    try:
        return ControlAction(name)
    except ValueError as e:
        raise PermanentError(f"unknown control action {name!r}", ErrorCode.INVALID_COMMAND) from e


def parse_control(data: bytes, subject: str, default_id: str) -> ControlCommand:
    action = action_from_subject(subject)
    text = data.decode("utf-8", errors="replace").strip()
    body = _parse_body(data, text, action)
    # Every field is bounded: the command's id and operator ride on each event it causes, and
    # a halt whose events exceed max_payload could never be announced (Q1 fuzzing).
    return ControlCommand(
        id=(body.id if len(body.id) <= _MAX_ID else derive_id(body.id)) or default_id,
        action=action,
        reason=body.reason[:_MAX_REASON],
        operator=body.operator[:_MAX_REASON],
        scope=body.scope or "global",
        flatten=body.flatten,
        target=body.target[:_MAX_REASON],
    )


def _parse_body(data: bytes, text: str, action: ControlAction) -> _ControlBody:
    if not text.startswith("{"):
        return _ControlBody(reason=text[:_MAX_REASON])
    try:
        return _body_decoder.decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as e:  # deep nesting
        if action is ControlAction.HALT:
            # An emergency stop must never fail on its wording: garbled JSON still halts,
            # with the raw text kept as the reason.
            return _ControlBody(reason=f"unparsed halt body: {text}"[:_MAX_REASON])
        raise PermanentError(f"bad control body: {e}", ErrorCode.INVALID_COMMAND) from e


def control_decoder(msg: Msg) -> ControlCommand:
    """A consume-loop decoder for trading.control.* messages."""
    return parse_control(msg.data, msg.subject, message_id(msg))
