"""Pure parts of the ledger's analytics: excursions, exit-reason stats, fill flags, order
status, alert coalescing, display rounding."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from tradebus_common.events import (
    ExitReason,
    Fill,
    OrderApproved,
    OrderCanceled,
    OrderSubmitted,
    OrderType,
    Side,
)
from tradebus_position_ledger.cli import _short
from tradebus_position_ledger.cycles import Cycle, advance, excursions
from tradebus_position_ledger.orders import order_row
from tradebus_position_ledger.projection import Position, apply_fill
from tradebus_position_ledger.service import announcements
from tradebus_position_ledger.stats import Trade, by_exit_reason, compute
from tradebus_position_ledger.store import RecordedFill, fill_flags

D = Decimal
T0 = datetime(2026, 3, 2, 9, tzinfo=UTC)


def fill(trade_id: str, side: str, qty: str, price: str, **kw) -> Fill:
    return Fill(
        venue="paper",
        symbol="BTC/USDT",
        strategy=kw.pop("strategy", "demo"),
        client_order_id=kw.pop("client_order_id", f"c-{trade_id}"),
        trade_id=trade_id,
        side=Side(side),
        quantity=D(qty),
        price=D(price),
        **kw,
    )


def test_excursions_of_a_long_with_an_add_use_the_average_entry() -> None:
    """Buy 1 @ 100, buy 1 @ 90 (avg 95), sell 2 @ 99; prices seen 88 .. 104."""
    pos, cycle = Position(), Cycle()
    closed = None
    for f in (fill("a", "buy", "1", "100"), fill("b", "buy", "1", "90")):
        after = apply_fill(pos, f)
        cycle, closed = advance(cycle, pos, after, T0, f.price)
        pos = after
    cycle = Cycle(**{**cycle.__dict__, "low": D(88), "high": D(104)})  # the ticks' range
    last = fill("c", "sell", "2", "99", exit_reason=ExitReason.TIME_EXIT)
    _, closed = advance(cycle, pos, apply_fill(pos, last), T0, last.price, last.exit_reason)
    assert closed is not None and closed.entry_price == 95 and closed.exit_reason == "TIME_EXIT"
    mae, mfe = excursions(closed)
    assert mae == (D(95) - 88) / 95 * 100 and mfe == (D(104) - 95) / 95 * 100


def test_a_flip_starts_the_new_cycle_range_at_the_flip_price() -> None:
    pos = apply_fill(Position(), fill("a", "buy", "1", "100"))
    cycle = Cycle(opened_at=T0, fill_count=1, max_quantity=D(1), low=D(80), high=D(120))
    flip = fill("b", "sell", "3", "110")
    new, closed = advance(cycle, pos, apply_fill(pos, flip), T0 + timedelta(1), flip.price)
    assert closed is not None and (closed.low_price, closed.high_price) == (80, 120)
    assert excursions(closed) == (D(20), D(20))
    assert (new.low, new.high) == (110, 110)


def test_stats_per_exit_reason_and_excursion_averages() -> None:
    t = [
        Trade(D(-20), T0, T0, "STOP_LOSS", D(3), D(1)),
        Trade(D(30), T0, T0, "TAKE_PROFIT", D(1), D(5)),
        Trade(D(10), T0, T0, None, D(2), D(3)),
        Trade(D(-4), T0, T0, None),  # closed before excursions were kept
    ]
    s = compute("demo", t)
    assert s.avg_mae_pct == 2 and s.max_mae_pct == 3 and s.avg_mfe_pct == 3
    r = by_exit_reason(t)
    assert list(r) == ["STOP_LOSS", "TAKE_PROFIT", "signal"]
    assert r["signal"].trades == 2 and r["signal"].realized_pnl == 6 and r["signal"].avg_pnl == 3
    assert r["signal"].win_rate == D("0.5") and r["STOP_LOSS"].wins == 0


def test_fill_flags() -> None:
    f = fill("a", "buy", "1", "1", strategy="ghost")
    assert fill_flags(f, {"demo"}, set()) == "unknown_strategy,unknown_order"
    assert fill_flags(f, {"demo"}, {f.client_order_id}) == "unknown_strategy"
    assert fill_flags(fill("b", "buy", "1", "1"), {"demo"}, {"c-b"}) == ""
    assert fill_flags(fill("c", "buy", "1", "1", reconciliation=True), {"demo"}, set()) == ""
    assert fill_flags(f, None, None) == ""  # replay of an old config: nothing to compare


def test_order_rows_only_say_what_each_event_knows() -> None:
    common = {"venue": "paper", "symbol": "BTC/USDT", "side": Side.BUY, "strategy": "demo"}
    approved = OrderApproved(
        intent_id="i", quantity=D(2), order_type=OrderType.LIMIT, client_order_id="c",
        reference_price=D(100), **common,
    )  # fmt: skip
    submitted = OrderSubmitted(
        client_order_id="c", quantity=D(2), order_type=OrderType.LIMIT, **common
    )
    canceled = OrderCanceled(client_order_id="c", venue="paper", symbol="BTC/USDT")
    a, s, c = order_row(approved, 1), order_row(submitted, 2), order_row(canceled, 3)
    assert (a.status, a.approved_quantity, a.submitted_quantity) == ("approved", 2, None)
    assert (s.status, s.submitted_quantity, s.reference_price) == ("submitted", 2, None)
    assert (c.status, c.close_reason, c.side, c.strategy) == ("closed", "canceled", "", "")


def test_unknown_fills_of_a_batch_raise_one_alert_per_strategy_and_flags() -> None:
    fills = [fill(f"u{i}", "buy", "1", "1") for i in range(3)] + [fill("k", "buy", "1", "1")]
    pos = Position(quantity=D(1), cost_basis=D(1), fill_count=1)
    recs = [RecordedFill(f.id, pos, new=True, flags="unknown_order") for f in fills[:3]]
    recs.append(RecordedFill(fills[3].id, pos, new=True))
    out = announcements(fills, recs)
    per_item = [[type(e).__name__ for e in outs] for outs in out]
    assert per_item[0] == ["PositionChanged", "Alert"]
    assert per_item[1:] == [["PositionChanged"]] * 3
    alert = out[0][1]
    assert alert.context["more"] == 2 and "2 more" in alert.message
    assert alert.id == announcements(fills, recs)[0][1].id  # stable: a redelivery dedups


def test_short_display_keeps_short_values_and_rounds_long_decimals() -> None:
    assert _short("0.2290614236288418727508003627") == "0.2291"
    assert _short("29.19") == "29.19" and _short(None) == "" and _short("demo") == "demo"
    assert _short(3) == "3"


def test_stream_seq_reads_both_reply_subject_forms_like_nats_py() -> None:
    from nats.aio.msg import Msg

    from tradebus_position_ledger.replay import stream_seq

    for reply in (
        "$JS.ACK.TRADING.position-ledger.1.4242.17.1700000000000000000.5",
        "$JS.ACK.hub.ACCHASH.TRADING.position-ledger.2.4242.17.1700000000000000000.5.tok",
    ):
        msg = Msg(_client=None, subject="trading.fill.x", reply=reply, data=b"")
        assert stream_seq(msg) == msg.metadata.sequence.stream == 4242


def test_ingest_decoder_acks_foreign_order_events_and_refuses_the_rest() -> None:
    import msgspec
    import pytest

    from tradebus_common.codec import encode
    from tradebus_common.errors import ErrorCode, PermanentError
    from tradebus_common.events import AlgoKind, AlgoProgress, AlgoStatus
    from tradebus_position_ledger.service import decode_ingest

    algo = AlgoProgress(
        client_order_id="p", venue="paper", symbol="BTC/USDT", kind=AlgoKind.TWAP,
        status=AlgoStatus.WORKING, side=Side.BUY, quantity=D(1),
    )  # fmt: skip
    assert decode_ingest(encode(algo), "trading.order.event.paper") is None  # not booked
    f = fill("a", "buy", "1", "100")
    assert decode_ingest(encode(f), "trading.fill.paper.BTC-USDT") == f
    refused = [
        (encode(algo), "trading.fill.paper.BTC-USDT", ErrorCode.SCHEMA_VIOLATION),
        (b'{"no": "type"}', "trading.order.event.paper", ErrorCode.SCHEMA_VIOLATION),
        (b"not json", "trading.order.event.paper", ErrorCode.MALFORMED_JSON),
    ]
    nan = msgspec.json.decode(encode(f))
    nan["price"] = "NaN"
    refused.append((msgspec.json.encode(nan), "trading.fill.paper.x", ErrorCode.SCHEMA_VIOLATION))
    for data, subject, code in refused:
        with pytest.raises(PermanentError) as e:
            decode_ingest(data, subject)
        assert e.value.code is code


def test_an_algo_child_fill_is_known_by_its_parent() -> None:
    child = fill("ch", "buy", "1", "1", client_order_id="child-1", parent_id="parent-1")
    assert fill_flags(child, {"demo"}, {"parent-1"}) == ""
    assert fill_flags(child, {"demo"}, set()) == "unknown_order"
