"""Operator commands that talk to a running stack over NATS."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import msgspec
import nats
from nats.aio.client import Client as NATS
from nats.js import api
from nats.js.errors import KeyNotFoundError, NotFoundError

from .. import subjects
from ..bus import MSG_ID
from ..codec import decode, encode
from ..config import load_config
from ..errors import PermanentError
from ..events import (
    AnyEvent,
    ControlAction,
    ControlCommand,
    Event,
    Heartbeat,
    MessageDeadLettered,
    OrderType,
    Side,
    Signal,
    TradingStateChanged,
)
from ..ids import derive_id, new_id
from ..telemetry import redact_url
from .render import render

TAIL_SUBJECTS = {
    "fills": subjects.FILL_ALL,
    "orders": subjects.ORDER_ALL,
    "positions": subjects.POSITION_ALL,
    "alerts": subjects.ALERT_ALL,
    "all": subjects.TRADING_ALL,
}


CONNECT_TIMEOUT_S = 5.0


class ClientError(Exception):
    """A problem the operator can fix; printed without a traceback."""


def nats_url(args: Any) -> str:
    if getattr(args, "nats", None):
        return args.nats
    if os.environ.get("NATS_URL"):
        return os.environ["NATS_URL"]
    return load_config(getattr(args, "config", None)).bus.url


def nats_creds(args: Any) -> str:
    """--creds FILE, else $NATS_CREDS, else [bus] creds_file: the identity to connect as."""
    if getattr(args, "creds", None):
        return args.creds
    if os.environ.get("NATS_CREDS"):
        return os.environ["NATS_CREDS"]
    return load_config(getattr(args, "config", None)).bus.creds_file


def connect_options(args: Any) -> dict[str, Any]:
    opts: dict[str, Any] = {}
    creds = nats_creds(args)
    if creds:
        if not os.path.isfile(creds):
            raise ClientError(f"credentials file not found: {creds}")
        opts["user_credentials"] = creds
    ca = os.environ.get("NATS_CA") or load_config(getattr(args, "config", None)).bus.tls_ca_file
    if ca:
        from ..bus import tls_context

        opts["tls"] = tls_context(ca)
    return opts


async def _report_refusal(e: Exception) -> None:
    # A refused publish only shows as an async server error; say so instead of a bare timeout.
    if "permissions violation" in str(e).lower():
        print(f"tradebus: NATS refused this identity: {e}", file=sys.stderr)


@contextlib.asynccontextmanager
async def connected(args: Any) -> AsyncIterator[NATS]:
    url = nats_url(args)
    opts = connect_options(args)
    try:
        # nats-py can keep retrying the first connect; an operator wants an answer now.
        nc = await asyncio.wait_for(
            nats.connect(
                url,
                connect_timeout=3,
                max_reconnect_attempts=0,
                allow_reconnect=False,
                error_cb=_report_refusal,
                **opts,
            ),
            CONNECT_TIMEOUT_S,
        )
    except Exception as e:
        if "authorization violation" in str(e).lower():
            raise ClientError(
                f"NATS at {redact_url(url)} refused the connection: authentication required or "
                f"credentials not accepted (pass --creds FILE or set NATS_CREDS; `tradebus up` "
                f"prints the paths)"
            ) from e
        raise ClientError(
            f"cannot reach NATS at {redact_url(url)}: {type(e).__name__} "
            f"(is the stack up? `make run`, or pass --nats URL)"
        ) from e
    try:
        yield nc
    finally:
        await nc.close()


async def publish(nc: NATS, event: Event, subject: str | None = None) -> api.PubAck:
    subject = subject or subjects.subject_for(event)
    return await nc.jetstream().publish(subject, encode(event), headers={MSG_ID: event.id})


def _decimal(name: str, raw: str | None) -> Decimal | None:
    if raw is None:
        return None
    try:
        return Decimal(raw)
    except InvalidOperation as e:
        raise ClientError(f"--{name} must be a decimal number, got {raw!r}") from e


async def cmd_signal(args: Any) -> int:
    signal = Signal(
        id=args.id or new_id(),
        strategy=args.strategy,
        venue=args.venue,
        symbol=args.symbol,
        side=Side(args.side),
        quantity=_decimal("qty", args.qty),  # type: ignore[arg-type]
        order_type=OrderType(args.type),
        limit_price=_decimal("price", args.price),
    )
    async with connected(args) as nc:
        ack = await publish(nc, signal)
    dup = " (duplicate: already in the stream)" if ack.duplicate else ""
    print(
        f"signal {signal.id} published to {subjects.signal(signal.strategy)} "
        f"(stream seq {ack.seq}){dup}"
    )
    return 0


async def _publish_and_collect(
    nc: NATS,
    cmd: Event,
    watch: list[str],
    match: Callable[[Any], bool],
    enough: Callable[[list[Any]], bool],
    timeout_s: float,
) -> list[Any]:
    """Publish a command and collect the matching answers on `watch` until `enough` says so
    or the timeout passes. Subscribed before publishing, so no answer can be missed."""
    found: list[Any] = []
    done = asyncio.Event()

    async def on_msg(msg: Any) -> None:
        try:
            event = decode(msg.data)
        except PermanentError:
            return
        if match(event):
            found.append(event)
            if enough(found):
                done.set()

    subs = [await nc.subscribe(subject, cb=on_msg) for subject in watch]
    await nc.flush()
    try:
        await publish(nc, cmd)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), timeout_s)
    finally:
        for sub in subs:
            await sub.unsubscribe()
    return found


async def _control(args: Any, action: ControlAction, reason: str, operator: str) -> int:
    cmd = ControlCommand(
        action=action,
        reason=reason,
        operator=operator,
        scope=getattr(args, "scope", "global"),
        flatten=getattr(args, "flatten", False),
    )
    expected = derive_id(cmd.id, "state")
    async with connected(args) as nc:
        confirmed = await _publish_and_collect(
            nc,
            cmd,
            [subjects.RISK_STATE, subjects.deadletter("risk-gate")],
            lambda e: (
                getattr(e, "id", "") == expected
                or (isinstance(e, MessageDeadLettered) and e.headers.get(MSG_ID) == cmd.id)
            ),
            bool,
            args.timeout,
        )
    if confirmed and isinstance(confirmed[0], MessageDeadLettered):
        raise ClientError(f"risk-gate refused the {action.value}: {confirmed[0].error}")
    if confirmed:
        state: TradingStateChanged = confirmed[0]
        print(
            f"trading {state.state.value}: {state.reason} (by {state.operator}), "
            f"confirmed by risk-gate"
        )
        return 0
    print(
        f"{action.value} published; risk-gate did not confirm within {args.timeout}s "
        f"(it applies the command when it runs)",
        file=sys.stderr,
    )
    return 0 if action is ControlAction.HALT else 1


async def cmd_halt(args: Any) -> int:
    return await _control(args, ControlAction.HALT, " ".join(args.reason), args.operator)


async def cmd_resume(args: Any) -> int:
    if not args.operator.strip():
        raise ClientError("resume needs --operator NAME")
    return await _control(args, ControlAction.RESUME, args.reason, args.operator)


async def cmd_tail(args: Any) -> int:
    subject = TAIL_SUBJECTS.get(args.what, args.what)
    if not valid_pattern(subject):
        raise ClientError(
            f"{args.what!r} is neither one of {', '.join(sorted(TAIL_SUBJECTS))} "
            f"nor a subject pattern (tokens separated by '.', '*' for one, '>' last for the rest)"
        )
    seen = 0
    async with connected(args) as nc:
        sub = await _tail_subscription(nc, subject, args.from_start)
        try:
            while args.count is None or seen < args.count:
                msg = await sub.next_msg(timeout=None)
                print(tail_line(msg, args.json), flush=True)
                seen += 1
        finally:
            await sub.unsubscribe()
    return 0


def valid_pattern(subject: str) -> bool:
    """A NATS subject or wildcard pattern: non-empty tokens, no spaces, '>' only last."""
    tokens = subject.split(".")
    if not subject or any(not t or any(c.isspace() for c in t) for t in tokens):
        return False
    return ">" not in tokens[:-1]


async def _tail_subscription(nc: NATS, subject: str, from_start: bool) -> Any:
    """An ordered consumer on the stream holding `subject`; a subject no stream keeps
    (rpc.*, $KV.*) is followed live on core NATS."""
    policy = api.DeliverPolicy.ALL if from_start else api.DeliverPolicy.NEW
    try:
        return await nc.jetstream().subscribe(subject, ordered_consumer=True, deliver_policy=policy)
    except NotFoundError:
        print(f"{subject}: in no stream; following it live", file=sys.stderr, flush=True)
        return await nc.subscribe(subject)


def tail_line(msg: Any, as_json: bool) -> str:
    """A message as one readable line, or (--json) as one JSON object: subject, stream
    sequence (null off-stream) and the event as it was sent."""
    if not as_json:
        return _render_raw(msg.subject, msg.data)
    try:
        body: Any = msgspec.json.decode(msg.data)
    except msgspec.DecodeError:
        body = {"raw": msg.data.decode("utf-8", errors="backslashreplace")}
    seq = msg.metadata.sequence.stream if msg.reply and msg.reply.startswith("$JS.") else None
    return msgspec.json.encode({"subject": msg.subject, "seq": seq, "event": body}).decode()


def _render_raw(subject: str, data: bytes) -> str:
    # Strategies may omit "type": what a subject carries is known from the subject.
    type_ = Signal if subject.startswith(subjects.SIGNAL_ALL[:-1]) else AnyEvent
    try:
        return render(decode(data, type_))
    except PermanentError:
        return f"{subject}: {data[:200]!r}"


async def _health(nc: NATS) -> list[Heartbeat]:
    kv = await nc.jetstream().key_value(subjects.BUCKET_HEALTH)
    try:
        keys = await kv.keys()
    except Exception:  # NoKeysError: nothing has heartbeated
        return []
    beats = []
    for key in keys:
        with contextlib.suppress(KeyNotFoundError, PermanentError):
            beats.append(decode((await kv.get(key)).value or b"", Heartbeat))
    return beats


async def _state(nc: NATS) -> TradingStateChanged | None:
    try:
        kv = await nc.jetstream().key_value(subjects.BUCKET_CONTROL)
        return decode((await kv.get(subjects.CONTROL_STATE_KEY)).value or b"", TradingStateChanged)
    except (KeyNotFoundError, NotFoundError):
        return None


async def _consumers(nc: NATS) -> dict[str, dict[str, int]]:
    out = {}
    try:
        for info in await nc.jetstream().consumers_info(subjects.STREAM_TRADING):
            out[info.name] = {
                "pending": info.num_pending or 0,
                "ack_pending": info.num_ack_pending or 0,
                "redelivered": info.num_redelivered or 0,
            }
    except NotFoundError:
        pass
    return out


async def _alerts_section(nc: NATS) -> dict[str, Any]:
    """Unacked alerts and sink health, from the alerting service (core NATS request/reply)."""
    try:
        msg = await nc.request(subjects.ALERTS_RPC_STATUS, b"{}", timeout=1.0)
        return msgspec.json.decode(msg.data)
    except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
        return {"error": "alerting not answering"}


# `tradebus status` sections beyond health, state and lag: name -> async reader(nc).
async def _kv_rows(nc: NATS, bucket: str, prefix: str) -> list[dict[str, Any]]:
    try:
        kv = await nc.jetstream().key_value(bucket)
        keys = [k for k in await kv.keys() if k.startswith(prefix)]
    except Exception:  # no bucket, or NoKeysError: nothing latched
        return []
    rows = []
    for key in keys:
        with contextlib.suppress(KeyNotFoundError, msgspec.DecodeError):
            rows.append(msgspec.json.decode((await kv.get(key)).value or b"{}"))
    return rows


async def _locks_section(nc: NATS) -> dict[str, Any]:
    """risk-gate: active protection locks, latched breakers and non-global scoped states."""
    now = datetime.now(UTC).timestamp()
    rows = [
        _lock_row(r["kind"], r["target"], r["reason"], r["until_s"])
        for r in await _kv_rows(nc, subjects.BUCKET_RISK_PROTECTIONS, "lock.")
        if r.get("until_s", 0) > now
    ]
    rows += [
        _lock_row(f"breaker:{r['name']}", "global", r["reason"], r["cooldown_until_s"])
        for r in await _kv_rows(nc, subjects.BUCKET_CONTROL, "breaker.")
    ]
    rows += [
        _lock_row(f"state:{r['state']}", r["scope"], r["reason"], None)
        for r in await _kv_rows(nc, subjects.BUCKET_CONTROL, "state.")
        if r.get("scope", "global") != "global" and r.get("state") != "ACTIVE"
    ]
    return {"active": rows}


def _lock_row(kind: str, target: str, reason: str, until_s: float | None) -> dict[str, Any]:
    return {"kind": kind, "target": target, "reason": reason, "until_s": until_s}


STATUS_SECTIONS: dict[str, Callable[[NATS], Any]] = {
    "alerts": _alerts_section,
    "locks": _locks_section,
}


async def cmd_status(args: Any) -> int:
    from .services import SERVICE_NAMES
    from .status import build_status, print_status

    async with connected(args) as nc:
        status = build_status(
            SERVICE_NAMES,
            await _health(nc),
            await _state(nc),
            await _consumers(nc),
            args.stale_after,
            {name: await read(nc) for name, read in STATUS_SECTIONS.items()},
        )
    if args.json:
        print(json.dumps(status, indent=2, default=str))
    else:
        print_status(status)
    return 0 if status["healthy"] else 1
