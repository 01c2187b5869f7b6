"""Reconciler rules at their boundaries: open orders, order outcomes, missing trades,
balances, drift policy, fill ids (C1-C4)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from tradebus_common.config import ReconcilerConfig
from tradebus_common.events import (
    ControlAction,
    OrderIntent,
    OrderType,
    ReconDiscrepancy,
    ReconDiscrepancyKind,
    ReconGate,
    ReconGateState,
    ReconReport,
    Side,
    VenueOrderView,
    VenueTradeView,
)
from tradebus_execution_gateway.events_out import fill_id as gateway_fill_id
from tradebus_reconciler import actions
from tradebus_reconciler.compare import (
    OrderOutcome,
    balance_flows,
    baseline_from,
    compare_balances,
    missing_trades,
    order_outcome,
    split_orders,
    trade_rows,
    with_trades,
)
from tradebus_reconciler.gate import outcome
from tradebus_risk_gate.recon_gate import gate_denial, gate_state

D = Decimal
NOW = datetime(2026, 1, 2, 12, 0, tzinfo=UTC)


def vorder(cid: str, status: str = "open") -> VenueOrderView:
    return VenueOrderView(
        client_order_id=cid, symbol="BTC/USDT", side=Side.BUY, quantity=D(1), status=status
    )


def trade(tid: str, side: Side = Side.BUY, qty: str = "1", price: str = "100") -> VenueTradeView:
    return VenueTradeView(
        trade_id=tid,
        symbol="BTC/USDT",
        side=side,
        quantity=D(qty),
        price=D(price),
        fee=D("0.1"),
        fee_currency="USDT",
    )


def test_open_orders_split_into_ours_missing_and_external() -> None:
    missing, external = split_orders(
        ["a", "b"], {"a", "b", "old"}, [vorder("b"), vorder("x"), vorder("old")]
    )
    assert missing == ["a"]
    assert [o.client_order_id for o in external] == ["x"]  # "old" is journaled: not external


def test_order_outcome_follows_the_venue_record() -> None:
    assert order_outcome(vorder("a", "filled"), NOW, NOW, 60) is OrderOutcome.FILLED
    assert order_outcome(vorder("a", "canceled"), NOW, NOW, 60) is OrderOutcome.CANCELED
    assert order_outcome(vorder("a", "expired"), NOW, NOW, 60) is OrderOutcome.CANCELED
    assert order_outcome(vorder("a", "rejected"), NOW, NOW, 60) is OrderOutcome.REJECTED
    assert order_outcome(vorder("a", "partially_filled"), NOW, NOW, 60) is OrderOutcome.WORKING


def test_an_order_unknown_to_the_venue_is_in_flight_only_within_the_grace() -> None:
    recent, old = NOW - timedelta(seconds=5), NOW - timedelta(seconds=61)
    assert order_outcome(None, recent, NOW, 60) is OrderOutcome.IN_FLIGHT
    assert order_outcome(None, old, NOW, 60) is OrderOutcome.NEVER_REACHED
    assert order_outcome(None, None, NOW, 60) is OrderOutcome.NEVER_REACHED


def test_missing_trades_are_the_unbooked_ones_once_each_in_id_order() -> None:
    got = missing_trades([trade("t3"), trade("t1"), trade("t2"), trade("t3")], {"t2"})
    assert [t.trade_id for t in got] == ["t1", "t3"]


def test_pending_trades_count_toward_the_ledger_position() -> None:
    views = with_trades([], "paper", [trade("t1", Side.BUY, "2"), trade("t2", Side.SELL, "0.5")])
    assert sum(v.quantity for v in views) == D("1.5")


def test_balance_flows_move_base_quote_and_fees_exactly() -> None:
    rows, fees = trade_rows([trade("t1", Side.BUY, "2", "100"), trade("t2", Side.SELL, "1", "110")])
    flows = balance_flows(rows, fees)
    assert flows == {"BTC": D(1), "USDT": D(-200) + D(110) - D("0.2")}


def test_balance_drift_is_measured_from_the_baseline() -> None:
    flows = {"BTC": D(1), "USDT": D(-100)}
    base = baseline_from({"BTC": D(1), "USDT": D(900)}, flows)
    assert base == {"BTC": D(0), "USDT": D(1000)}
    expected = {c: base[c] + flows[c] for c in base}
    n, drifts = compare_balances(expected, {"BTC": D(1), "USDT": D(850)}, D("0.01"))
    assert n == 2
    assert [(d.key, d.ours, d.theirs) for d in drifts] == [("USDT", D(900), D(850))]
    assert compare_balances(expected, {"BTC": D(1), "USDT": D("900.005")}, D("0.01"))[1] == []


def test_a_reconciliation_fill_has_the_gateways_fill_id() -> None:
    fill = actions.reconciliation_fill("paper", "run", trade("T-1"), ours=True)
    assert fill.id == gateway_fill_id("paper", "T-1") == actions.fill_id("paper", "T-1")
    assert fill.reconciliation is True
    assert actions.reconciliation_fill("paper", "other-run", trade("T-1"), True).id == fill.id


def test_an_external_trade_is_booked_to_the_external_strategy() -> None:
    assert actions.reconciliation_fill("paper", "r", trade("T"), ours=False).strategy == "external"


def _report(*kinds: ReconDiscrepancyKind, resolution: str = "") -> ReconReport:
    return ReconReport(
        venue="paper",
        clean=not kinds,
        resolved=not kinds or bool(resolution),
        discrepancies=[
            ReconDiscrepancy(kind=k, key=f"k{i}", resolution=resolution)
            for i, k in enumerate(kinds)
        ],
    )


def test_drift_over_the_threshold_halts_or_reduces_the_venue_by_policy() -> None:
    report = _report(ReconDiscrepancyKind.POSITION_DRIFT, ReconDiscrepancyKind.BALANCE_DRIFT)
    [halt] = actions.drift_command(report, ReconcilerConfig(drift_action="halt"))
    assert (halt.action, halt.scope, halt.operator) == (
        ControlAction.HALT,
        "venue:paper",
        "reconciler",
    )
    [reduce] = actions.drift_command(report, ReconcilerConfig(drift_action="reduce"))
    assert reduce.action is ControlAction.REDUCE
    assert actions.drift_command(report, ReconcilerConfig(drift_action="alert")) == []
    assert actions.drift_command(report, ReconcilerConfig(drift_min_discrepancies=3)) == []


def test_resolved_findings_never_move_the_risk_gate() -> None:
    report = _report(ReconDiscrepancyKind.MISSING_FILL, resolution="fill_generated")
    assert actions.drift_command(report, ReconcilerConfig()) == []
    assert actions.drift_alerts(report) == []


def test_gate_outcome_clean_blocked_or_retry() -> None:
    assert outcome([_report()]) is ReconGateState.CLEAN
    assert (
        outcome([_report(ReconDiscrepancyKind.MISSING_FILL, resolution="x")])
        is ReconGateState.CLEAN
    )
    assert outcome([_report(ReconDiscrepancyKind.POSITION_DRIFT)]) is ReconGateState.BLOCKED
    assert outcome([_report(ReconDiscrepancyKind.VENUE_UNAVAILABLE)]) is None


def _intent(reduce_only: bool = False) -> OrderIntent:
    return OrderIntent(
        strategy="demo",
        venue="paper",
        symbol="BTC/USDT",
        side=Side.BUY,
        quantity=D(1),
        order_type=OrderType.MARKET,
        reduce_only=reduce_only,
    )


def test_the_risk_gate_approves_only_through_a_clean_or_accepted_gate() -> None:
    for state in (ReconGateState.CLEAN, ReconGateState.ACCEPTED):
        assert gate_denial(_intent(), ReconGate(state=state)) is None
    for state in (ReconGateState.RECONCILING, ReconGateState.BLOCKED):
        denial = gate_denial(_intent(), ReconGate(state=state, reason="why"))
        assert denial is not None and denial.reason.value == "RECONCILING"
        assert state.value in denial.detail


def test_a_missing_or_garbled_gate_is_reconciling_and_reduce_only_passes() -> None:
    assert gate_state(None).state is ReconGateState.RECONCILING
    assert gate_state(b"{not json").state is ReconGateState.RECONCILING
    assert gate_denial(_intent(reduce_only=True), gate_state(None)) is None


def test_the_reconcile_command_prints_each_discrepancy_and_what_was_done() -> None:
    from tradebus_reconciler.cli import render_report

    report = ReconReport(
        venue="paper",
        clean=False,
        resolved=False,
        trigger="on_demand",
        orders_compared=2,
        discrepancies=[
            ReconDiscrepancy(
                kind=ReconDiscrepancyKind.MISSING_FILL, key="T1", resolution="fill_generated"
            ),
            ReconDiscrepancy(
                kind=ReconDiscrepancyKind.BALANCE_DRIFT, key="USDT", ours=D(10), theirs=D(9)
            ),
        ],
    )
    text = render_report(report)
    assert text.splitlines()[0].startswith("RECON     paper: UNRESOLVED (on_demand")
    assert "MISSING_FILL T1 -> fill_generated" in text
    assert "BALANCE_DRIFT USDT ours 10 venue 9 -> UNRESOLVED" in text


def test_a_fee_paid_in_the_base_currency_is_not_held_at_the_venue() -> None:
    """Binance spot charges a buy's fee in the base currency: the venue holds the traded
    quantity minus it, while the ledger books the fee as a cost at the fill price."""
    from decimal import Decimal as D

    from tradebus_common.events import PositionView, Side, VenueTradeView
    from tradebus_reconciler.compare import compare_positions, with_trades

    def trade(fee: str, currency: str) -> VenueTradeView:
        return VenueTradeView(
            trade_id=f"t-{currency}", client_order_id="c", symbol="BTC/USDT", side=Side.BUY,
            quantity=D("0.001"), price=D("50000"), fee=D(fee), fee_currency=currency,
        )  # fmt: skip

    venue_btc = [PositionView(venue="v", symbol="BTC/USDT", quantity=D("0.000999"))]
    assert (
        compare_positions("v", with_trades([], "v", [trade("0.000001", "BTC")]), venue_btc)[1] == []
    )
    _, drift = compare_positions("v", with_trades([], "v", [trade("0.05", "USDT")]), venue_btc)
    assert [m.ledger_quantity for m in drift] == [D("0.001")]  # a quote fee leaves it whole
