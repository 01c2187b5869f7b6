"""`tradebus audit export` and `tradebus audit trace`: read the audit stream in sequence order.

Export writes one record per stream message: JSON lines ({seq, time, subject, msg_id, event})
or CSV (seq, time, subject, msg_id, type, id, correlation_id, causation_id, payload). The
payload is kept whole: `event` is the decoded JSON, or the raw text when it is not JSON.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import IO, Any

from nats.js import JetStreamContext

from tradebus_common import subjects

from .audit import StreamMessage, read_stream

PROGRESS_EVERY = 1000
SLACK = timedelta(milliseconds=1)
CSV_COLUMNS = [
    "seq",
    "time",
    "subject",
    "msg_id",
    "type",
    "id",
    "correlation_id",
    "causation_id",
    "payload",
]
Progress = Callable[[int, int], None]


def progress_printer(err: IO[str]) -> Progress:
    def show(done: int, seq: int) -> None:
        err.write(f"\r{done} message(s) exported (stream sequence {seq})")
        err.flush()

    return show


def _payload(msg: StreamMessage) -> Any:
    try:
        return json.loads(msg.payload)
    except (ValueError, UnicodeDecodeError):
        return msg.payload.decode("utf-8", errors="replace")


def record(msg: StreamMessage) -> dict[str, Any]:
    return {
        "seq": msg.seq,
        "time": msg.time.isoformat() if msg.time else None,
        "subject": msg.subject,
        "msg_id": msg.msg_id,
        "event": _payload(msg),
    }


def csv_row(rec: dict[str, Any]) -> list[Any]:
    event = rec["event"] if isinstance(rec["event"], dict) else {}
    payload = rec["event"] if isinstance(rec["event"], str) else json.dumps(rec["event"])
    return [
        rec["seq"],
        rec["time"],
        rec["subject"],
        rec["msg_id"],
        event.get("type", ""),
        event.get("id", ""),
        event.get("correlation_id", ""),
        event.get("causation_id", ""),
        payload,
    ]


async def export(
    js: JetStreamContext,
    out: IO[str],
    fmt: str,
    stream: str = subjects.STREAM_TRADING,
    subject: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    progress: Progress | None = None,
) -> int:
    """Write the messages of the window [since, until] on `subject`; the count written."""
    writer = csv.writer(out) if fmt == "csv" else None
    if writer is not None:
        writer.writerow(CSV_COLUMNS)
    n = 0
    # Message times reach us rounded to the microsecond (the server keeps nanoseconds): ask
    # from a little earlier and judge the window on the times as we see and write them.
    start = since - SLACK if since is not None else None
    async for msg in read_stream(js, stream, subject=subject, start_time=start):
        if since is not None and msg.time is not None and msg.time < since:
            continue
        if until is not None and msg.time is not None and msg.time > until:
            break
        rec = record(msg)
        if writer is not None:
            writer.writerow(csv_row(rec))
        else:
            out.write(json.dumps(rec) + "\n")
        n += 1
        if progress is not None and n % PROGRESS_EVERY == 0:
            progress(n, msg.seq)
    if progress is not None and n:
        progress(n, -1)
    return n


# --- trace -------------------------------------------------------------------------------


def belongs(event: dict[str, Any], signal_id: str) -> bool:
    return signal_id in (
        event.get("id"),
        event.get("correlation_id"),
        event.get("signal_id"),
    )


async def trace(
    js: JetStreamContext, signal_id: str, since: datetime | None = None
) -> list[dict[str, Any]]:
    """Every message of the signal's causal chain, in stream order: the signal, its intent,
    the decision, order events, fills and the ledger's position changes."""
    needle = signal_id.encode()
    found = []
    async for msg in read_stream(js, subjects.STREAM_TRADING, start_time=since):
        if needle not in msg.payload:  # cheap pre-filter before decoding
            continue
        event = _payload(msg)
        if isinstance(event, dict) and belongs(event, signal_id):
            found.append(record(msg))
    return found


_KEYS = (
    "strategy",
    "symbol",
    "side",
    "quantity",
    "price",
    "reason",
    "client_order_id",
    "trade_id",
    "state",
)


def trace_line(rec: dict[str, Any]) -> str:
    event = rec["event"] if isinstance(rec["event"], dict) else {}
    detail = " ".join(f"{k}={event[k]}" for k in _KEYS if event.get(k) not in (None, ""))
    return f"#{rec['seq']} {rec['time']} {event.get('type', '?'):<18} {rec['subject']} {detail}"
