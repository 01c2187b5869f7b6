"""The dashboard's drawing, from a frame built by hand (the live reading is in
tests/integration/test_dash.py), and the tail command's pattern check."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from tradebus_common import events as ev
from tradebus_common.cli.client import valid_pattern
from tradebus_common.cli.dash import Frame, frame_text, num
from tradebus_common.cli.status import build_status

AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("raw", "shown"),
    [("0E-8", "0"), ("0.25000000", "0.25"), ("2E+4", "20000"), ("-5.000", "-5"), (None, "-")],
)
def test_numbers_read_as_people_write_them(raw, shown):
    assert num(raw) == shown


def frame(**kw) -> Frame:
    state = ev.TradingStateChanged(
        state=ev.TradingState.HALTED, reason="fat finger", operator="alice"
    )
    status = build_status(
        ("signal", "risk-gate"),
        [ev.Heartbeat(service="signal", instance="h-1", version="1", started_at=AT, uptime_s=3)],
        state,
        {"signal": {"pending": 7, "ack_pending": 1, "redelivered": 0}},
        15.0,
        {
            "alerts": {"unacked": [], "sinks": {}},
            "locks": {
                "active": [
                    {
                        "kind": "breaker:loss",
                        "target": "global",
                        "reason": "drawdown",
                        "until_s": None,
                    }
                ]  # fmt: skip
            },
        },
    )
    base = dict(at=AT, status=status, positions=None, pnl=None, orders=[])
    return Frame(**{**base, **kw})


def test_a_frame_shows_the_halt_its_reason_locks_and_who_is_down():
    text = frame_text(frame(), width=140)
    assert "HALTED" in text and "fat finger (by alice)" in text
    assert "lock breaker:loss global latched: drawdown" in text
    signal = next(x for x in text.splitlines() if x.startswith("signal"))
    assert "ok" in signal and "7" in signal and "h-1" in signal
    gate = next(x for x in text.splitlines() if x.startswith("risk-gate"))
    assert "DOWN" in gate and "never" in gate
    assert "ledger not answering" in text
    assert "unacked alerts (0)" in text


def test_flat_positions_are_left_out_and_fills_newest_first():
    positions = [
        {"venue": "paper", "symbol": "BTC/USDT", "strategy": "demo", "quantity": "0.5",
         "avg_price": "20000", "mark_price": "21000", "unrealized_pnl": "500",
         "realized_pnl": "0"},
        {"venue": "paper", "symbol": "ETH/USDT", "strategy": "demo", "quantity": "0E-8",
         "avg_price": "0", "mark_price": "3000", "unrealized_pnl": "0", "realized_pnl": "12"},
    ]  # fmt: skip
    fills = [
        ev.Fill(venue="paper", symbol=s, strategy="demo", client_order_id="c", trade_id=s,
                side=ev.Side.BUY, quantity=Decimal("1"), price=Decimal("10"))
        for s in ("OLD/USDT", "NEW/USDT")
    ]  # fmt: skip
    text = frame_text(frame(positions=positions, fills=fills), width=140)
    assert "BTC/USDT" in text and "21000" in text and "500" in text
    assert "ETH/USDT" not in text
    assert text.index("NEW/USDT") < text.index("OLD/USDT")


@pytest.mark.parametrize(
    ("pattern", "ok"),
    [
        ("trading.>", True),
        ("md.paper.*", True),
        ("rpc.ledger.positions", True),
        ("", False),
        ("trading..x", False),
        ("trading.>.x", False),
        ("a b", False),
    ],
)
def test_tail_patterns(pattern, ok):
    assert valid_pattern(pattern) is ok
