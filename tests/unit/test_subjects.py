"""Subjects: safe tokens, one subject per event type, all of them in the catalogue."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from tradebus_common import events as ev
from tradebus_common.errors import ErrorCode
from tradebus_common.subjects import CATALOGUE, subject_for, token

NOW = datetime(2024, 1, 1, tzinfo=UTC)
ORDER = {"client_order_id": "tbabc", "venue": "paper", "symbol": "BTC/USDT"}

# One minimal instance of every event type; the coverage test below keeps it complete.
SAMPLES: dict[type[ev.Event], ev.Event] = {
    ev.Signal: ev.Signal(
        id="s",
        strategy="demo",
        venue="paper",
        symbol="BTC/USDT",
        side=ev.Side.BUY,
        quantity=Decimal(1),
    ),
    ev.OrderIntent: ev.OrderIntent(
        strategy="demo",
        venue="paper",
        symbol="BTC/USDT",
        side=ev.Side.BUY,
        quantity=Decimal(1),
        order_type=ev.OrderType.MARKET,
    ),
    ev.OrderApproved: ev.OrderApproved(
        intent_id="i",
        strategy="demo",
        venue="paper",
        symbol="BTC/USDT",
        side=ev.Side.BUY,
        quantity=Decimal(1),
        order_type=ev.OrderType.MARKET,
        client_order_id="tbabc",
    ),
    ev.OrderDenied: ev.OrderDenied(
        intent_id="i",
        strategy="demo",
        venue="paper",
        symbol="BTC/USDT",
        reason=ev.DenyReason.HALTED,
    ),
    ev.OrderSubmitted: ev.OrderSubmitted(
        side=ev.Side.BUY, quantity=Decimal(1), order_type=ev.OrderType.MARKET, **ORDER
    ),
    ev.OrderAccepted: ev.OrderAccepted(**ORDER),
    ev.OrderRejected: ev.OrderRejected(**ORDER),
    ev.OrderCanceled: ev.OrderCanceled(**ORDER),
    ev.OrderExpired: ev.OrderExpired(**ORDER),
    ev.OrderUnknown: ev.OrderUnknown(**ORDER),
    ev.Fill: ev.Fill(
        venue="paper",
        symbol="BTC/USDT",
        strategy="demo",
        client_order_id="c",
        trade_id="t",
        side=ev.Side.BUY,
        quantity=Decimal(1),
        price=Decimal(1),
    ),
    ev.PositionChanged: ev.PositionChanged(
        venue="paper",
        symbol="BTC/USDT",
        strategy="demo",
        quantity=Decimal(1),
        avg_price=Decimal(1),
        realized_pnl=Decimal(0),
    ),
    ev.LedgerSnapshot: ev.LedgerSnapshot(),
    ev.TradingStateChanged: ev.TradingStateChanged(state=ev.TradingState.HALTED),
    ev.ModeChanged: ev.ModeChanged(mode=ev.TradingMode.PAPER),
    ev.ModeChangeRefused: ev.ModeChangeRefused(
        mode=ev.TradingMode.LIVE_MINIMAL, current=ev.TradingMode.PAPER
    ),
    ev.RiskStageChanged: ev.RiskStageChanged(
        stage=0, risk_per_trade_pct=Decimal("0.1"), max_exposure_pct=Decimal("2")
    ),
    ev.ControlCommand: ev.ControlCommand(action=ev.ControlAction.RECONCILE),
    ev.ReconReport: ev.ReconReport(venue="paper", clean=True),
    ev.Alert: ev.Alert(
        severity=ev.Severity.WARNING,
        source="risk-gate",
        code=ev.AlertCode.TRADING_HALTED,
        message="m",
    ),
    ev.Heartbeat: ev.Heartbeat(
        service="signal", instance="i", version="0", started_at=NOW, uptime_s=0.0
    ),
    ev.AlertAcknowledged: ev.AlertAcknowledged(alert_id="a", operator="o"),
    ev.VenueLatencyObserved: ev.VenueLatencyObserved(
        venue="paper", operation="create_order", latency_ms=12
    ),
    ev.VenueBreakerChanged: ev.VenueBreakerChanged(
        venue="binance",
        state=ev.VenueBreakerState.OPEN,
        previous=ev.VenueBreakerState.CLOSED,
        failures=5,
    ),
    ev.MarketTick: ev.MarketTick(venue="paper", symbol="BTC/USDT", price=Decimal(1)),
    ev.MessageDeadLettered: ev.MessageDeadLettered(
        service="signal", reason=ErrorCode.MALFORMED_JSON, error="e", subject="trading.signal.x"
    ),
    # signal service (S4, O6)
    ev.SignalRejected: ev.SignalRejected(
        signal_id="s", strategy="demo", reason=ev.SignalRejectReason.EXPIRED
    ),
    ev.StrategyCommand: ev.StrategyCommand(strategy="demo", action=ev.StrategyAction.PAUSE),
    ev.StrategyRunChanged: ev.StrategyRunChanged(
        strategy="demo", state=ev.StrategyRunState.PAUSED, action=ev.StrategyAction.PAUSE
    ),
    ev.StrategyCommandAnswered: ev.StrategyCommandAnswered(
        strategy="demo", action=ev.StrategyAction.STATUS, state=ev.StrategyRunState.RUNNING
    ),
    # reconciler and audit (C1, B7)
    ev.ReconGateChanged: ev.ReconGateChanged(state=ev.ReconGateState.CLEAN),
    ev.AuditCheckpoint: ev.AuditCheckpoint(stream_seq=1, chain_hash="00"),
}
# Order management and algorithms (execution-gateway, E4/E7/E9).
SAMPLES.update(
    {
        ev.CancelOrder: ev.CancelOrder(client_order_id="tbabc"),
        ev.ModifyOrder: ev.ModifyOrder(client_order_id="tbabc", quantity=Decimal(2)),
        ev.OrderCommandRejected: ev.OrderCommandRejected(
            command="cancel", reason=ev.CommandRejectReason.NOT_WORKING, **ORDER
        ),
        ev.AlgoProgress: ev.AlgoProgress(
            kind=ev.AlgoKind.TWAP,
            status=ev.AlgoStatus.WORKING,
            side=ev.Side.BUY,
            quantity=Decimal(1),
            **ORDER,
        ),
        ev.ExecutionQuality: ev.ExecutionQuality(
            side=ev.Side.BUY, quantity=Decimal(1), filled_quantity=Decimal(1), **ORDER
        ),
    }
)
PUBLISHED = [t for t in ev.ALL_EVENTS if t is not ev.Heartbeat]


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    parts = [
        r"[^.*> ]+" if re.fullmatch(r"<[a-z_]+>", p) else re.escape(p) for p in pattern.split(".")
    ]
    return re.compile(r"\.".join(parts))


CATALOGUE_RES = [(spec, _pattern_regex(spec.pattern)) for spec in CATALOGUE]


# --- token ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("BTC/USDT", "BTC-USDT"),
        ("a.b", "a_b"),
        ("all*", "all_"),
        ("x>y", "x_y"),
        ("my strategy", "my_strategy"),
        ("", "_"),
        ("plain-ok_1", "plain-ok_1"),
    ],
)
def test_token_makes_one_safe_subject_token(raw: str, expected: str) -> None:
    assert token(raw) == expected


def test_token_never_leaves_subject_metacharacters() -> None:
    out = token(" .*>/a.b c*d>e/f ")
    assert not set(out) & set(".*> ")
    assert out


# --- subject_for ------------------------------------------------------------------------


def test_every_event_type_has_a_sample() -> None:
    assert set(SAMPLES) == set(ev.ALL_EVENTS)
    assert all(type(SAMPLES[t]) is t for t in SAMPLES)


@pytest.mark.parametrize("event_type", PUBLISHED, ids=lambda t: t.__name__)
def test_subject_for_matches_a_catalogue_pattern_listing_the_event(
    event_type: type[ev.Event],
) -> None:
    event = SAMPLES[event_type]
    subject = subject_for(event)
    assert subject
    tag = event_type.__struct_config__.tag
    matching = [spec for spec, rx in CATALOGUE_RES if rx.fullmatch(subject)]
    assert matching, f"{subject} matches no catalogue pattern"
    assert any(tag in spec.events for spec in matching), (
        f"{subject} matches {[s.pattern for s in matching]} but none lists {tag}"
    )


def test_heartbeat_has_no_subject() -> None:
    with pytest.raises(ValueError, match="Heartbeat"):
        subject_for(SAMPLES[ev.Heartbeat])


def test_subjects_use_safe_tokens_for_symbols() -> None:
    assert subject_for(SAMPLES[ev.Fill]) == "trading.fill.paper.BTC-USDT"
    assert subject_for(SAMPLES[ev.MarketTick]) == "md.paper.BTC-USDT"


def test_control_subject_comes_from_the_action() -> None:
    for action in ev.ControlAction:
        subject = subject_for(ev.ControlCommand(action=action))
        assert subject == f"trading.control.{action.value}"


def test_alert_subject_routes_by_severity_and_source() -> None:
    assert subject_for(SAMPLES[ev.Alert]) == "trading.alert.warning.risk-gate"


def test_hostile_field_values_still_yield_catalogued_subjects() -> None:
    sig = ev.Signal(
        id="s",
        strategy="a.b *>",
        venue="paper",
        symbol="BTC/USDT",
        side=ev.Side.BUY,
        quantity=Decimal(1),
    )
    subject = subject_for(sig)
    assert subject.count(".") == 2
    assert any(rx.fullmatch(subject) for _, rx in CATALOGUE_RES)
