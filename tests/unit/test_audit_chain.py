"""The audit hash chain and the export/trace/report formats at their boundaries (B7, C3)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, time

from tradebus_common.events import ReconDiscrepancy, ReconDiscrepancyKind, ReconReport
from tradebus_reconciler.audit import GENESIS, StreamMessage, link
from tradebus_reconciler.export import belongs, csv_row, record, trace_line
from tradebus_reconciler.schedule import csv_rows, next_at, parse_hhmm


def msg(
    seq: int, payload: bytes = b'{"a":1}', subject: str = "trading.x", mid: str = "id"
) -> StreamMessage:
    return StreamMessage(seq=seq, subject=subject, msg_id=mid, payload=payload)


def chain(msgs: list[StreamMessage]) -> list[str]:
    h, out = GENESIS, []
    for m in msgs:
        h = link(h, m)
        out.append(h.hex())
    return out


def test_link_is_sha256_over_previous_sequence_and_length_prefixed_fields() -> None:
    m = msg(7, b"p", "s", "i")
    expected = hashlib.sha256(
        GENESIS
        + (7).to_bytes(8, "big")
        + (1).to_bytes(8, "big")
        + b"s"
        + (1).to_bytes(8, "big")
        + b"i"
        + (1).to_bytes(8, "big")
        + b"p"
    ).digest()
    assert link(GENESIS, m) == expected


def test_any_change_changes_the_hash_from_that_message_on() -> None:
    honest = [msg(i) for i in range(1, 6)]
    base = chain(honest)
    for changed in (
        msg(3, payload=b'{"a":2}'),
        msg(3, subject="trading.y"),
        msg(3, mid="other"),
        msg(4),
    ):
        tampered = chain([*honest[:2], changed, *honest[3:]])
        assert tampered[:2] == base[:2] and all(
            a != b for a, b in zip(tampered[2:], base[2:], strict=True)
        )


def test_fields_cannot_shift_bytes_between_them() -> None:
    assert link(GENESIS, msg(1, b"bc", "a", "")) != link(GENESIS, msg(1, b"c", "ab", ""))


def test_export_record_keeps_the_payload_whole() -> None:
    rec = record(
        StreamMessage(
            3,
            "trading.signal.x",
            "m",
            b'{"type":"signal","id":"s"}',
            datetime(2026, 1, 1, tzinfo=UTC),
        )
    )
    assert rec == {
        "seq": 3,
        "time": "2026-01-01T00:00:00+00:00",
        "subject": "trading.signal.x",
        "msg_id": "m",
        "event": {"type": "signal", "id": "s"},
    }
    assert csv_row(rec)[4:6] == ["signal", "s"]
    raw = record(StreamMessage(4, "trading.control.halt", "", b"fat finger"))
    assert raw["event"] == "fat finger" and csv_row(raw)[-1] == "fat finger"


def test_trace_membership_and_line() -> None:
    assert belongs({"id": "s1"}, "s1") and belongs({"correlation_id": "s1"}, "s1")
    assert belongs({"signal_id": "s1"}, "s1") and not belongs({"causation_id": "s1"}, "s1")
    line = trace_line(
        {
            "seq": 9,
            "time": "t",
            "subject": "trading.fill.p.X",
            "event": {"type": "order.filled", "quantity": "1", "trade_id": "T1"},
        }
    )
    assert line.startswith("#9 t order.filled") and "trade_id=T1" in line


def test_end_of_day_time_is_today_or_tomorrow() -> None:
    at = parse_hhmm("17:30")
    assert at == time(17, 30, tzinfo=UTC) and parse_hhmm("") is None
    morning = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    assert next_at(morning, at) == datetime(2026, 3, 1, 17, 30, tzinfo=UTC)
    assert next_at(datetime(2026, 3, 1, 18, 0, tzinfo=UTC), at).day == 2


def test_report_csv_has_a_row_per_discrepancy_and_one_for_a_clean_report() -> None:
    clean = ReconReport(venue="paper", clean=True)
    dirty = ReconReport(
        venue="paper",
        clean=False,
        discrepancies=[
            ReconDiscrepancy(
                kind=ReconDiscrepancyKind.MISSING_FILL, key="T1", resolution="fill_generated"
            ),
            ReconDiscrepancy(kind=ReconDiscrepancyKind.BALANCE_DRIFT, key="USDT"),
        ],
    )
    rows = csv_rows([clean, dirty])
    assert len(rows) == 3
    assert rows[0][12:] == ["", "", "", "", "", ""]
    assert [r[12] for r in rows[1:]] == ["MISSING_FILL", "BALANCE_DRIFT"]
