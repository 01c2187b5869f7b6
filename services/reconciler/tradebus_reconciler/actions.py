"""The events a run's findings turn into, by policy. Ids are derived so a repeated run, or
the gateway's own late event, deduplicates against them."""

from __future__ import annotations

from tradebus_common.config import ReconcilerConfig
from tradebus_common.events import (
    Alert,
    AlertCode,
    CancelReason,
    ControlAction,
    ControlCommand,
    Event,
    Fill,
    OrderCanceled,
    OrderRejected,
    ReconDiscrepancyKind,
    ReconReport,
    RejectReason,
    Severity,
    VenueOrderView,
    VenueTradeView,
)
from tradebus_common.ids import derive_id

from .compare import OrderOutcome
from .sources import ADOPTED, JournalRecord
from .venue_client import VenueClient

SOURCE = "reconciler"
EXTERNAL_STRATEGY = "external"
DRIFT_KINDS = (ReconDiscrepancyKind.POSITION_DRIFT, ReconDiscrepancyKind.BALANCE_DRIFT)


def fill_id(venue: str, trade_id: str) -> str:
    """The execution-gateway's fill id (events_out.fill_id): the same trade gives the same
    id whoever announces it, so JetStream (Nats-Msg-Id) and the ledger dedup either way."""
    return derive_id(f"{venue}:{trade_id}", "fill")


def is_alert(event: Event) -> bool:
    return isinstance(event, Alert)


def _alert(
    run_id: str,
    key: str,
    severity: Severity,
    code: AlertCode,
    message: str,
    venue: str,
    **ctx: object,
) -> Alert:
    return Alert(
        id=derive_id(run_id, "alert", code.value, key),
        severity=severity,
        source=SOURCE,
        code=code,
        message=message,
        context={"venue": venue, **ctx},
        dedup_key=f"{SOURCE}:{code.value}:{venue}:{key}",
    )


def reconciliation_fill(venue: str, run_id: str, trade: VenueTradeView, ours: bool) -> Fill:
    return Fill(
        id=fill_id(venue, trade.trade_id),
        correlation_id=trade.correlation_id,
        causation_id=run_id,
        venue=venue,
        symbol=trade.symbol,
        strategy=trade.strategy or ("" if ours else EXTERNAL_STRATEGY),
        client_order_id=trade.client_order_id,
        venue_order_id=trade.venue_order_id,
        trade_id=trade.trade_id,
        side=trade.side,
        quantity=trade.quantity,
        price=trade.price,
        fee=trade.fee,
        fee_currency=trade.fee_currency,
        liquidity=trade.liquidity,
        reconciliation=True,
    )


def missing_fill_alert(venue: str, run_id: str, trade: VenueTradeView) -> Alert:
    return _alert(
        run_id,
        trade.trade_id,
        Severity.WARNING,
        AlertCode.RECON_MISSING_FILL,
        f"{venue}: trade {trade.trade_id} ({trade.side} {trade.quantity} {trade.symbol} "
        f"@ {trade.price}) was missing from the ledger; fill generated",
        venue,
        trade_id=trade.trade_id,
        client_order_id=trade.client_order_id,
    )


def order_resolved(
    venue: str,
    run_id: str,
    record: JournalRecord,
    found: VenueOrderView | None,
    outcome: OrderOutcome,
) -> tuple[Event, Alert]:
    """An order of ours that left the venue's book unseen: announce how it ended."""
    cid = record.client_order_id
    common = {
        "client_order_id": cid,
        "venue": venue,
        "symbol": found.symbol if found else "",
        "strategy": found.strategy if found else "",
        "venue_order_id": found.venue_order_id if found else "",
        "causation_id": run_id,
    }
    event: Event
    if outcome is OrderOutcome.CANCELED:
        event = OrderCanceled(
            id=derive_id(cid, "reconciled", "canceled"),
            reason=CancelReason.VENUE,
            detail="found canceled at the venue by reconciliation",
            **common,
        )
    else:
        detail = (
            "the venue does not know this client order id: it never reached the venue"
            if found is None
            else "found rejected at the venue by reconciliation"
        )
        event = OrderRejected(
            id=derive_id(cid, "reconciled", "rejected"),
            reason=RejectReason.VENUE_REJECTED,
            detail=detail,
            **common,
        )
    alert = _alert(
        run_id,
        cid,
        Severity.WARNING,
        AlertCode.RECON_ORDER_RESOLVED,
        f"{venue}: order {cid} was {record.status} in the journal; resolved as "
        f"{'rejected (never reached the venue)' if found is None else outcome.value}",
        venue,
        client_order_id=cid,
    )
    return event, alert


async def external_order(
    venue: str, run_id: str, order: VenueOrderView, policy: str, client: VenueClient
) -> tuple[list[Event], str]:
    """Not ours: adopt it (journal it, its fills are booked as strategy `external`) or cancel
    it. Either way an alert."""
    cid = order.client_order_id
    what = f"{order.side} {order.quantity} {order.symbol}"
    if policy == "cancel":
        canceled = await client.cancel(cid)
        events: list[Event] = []
        if canceled is not None and canceled.status == "canceled":
            events.append(
                OrderCanceled(
                    id=derive_id(f"{venue}:{cid}", "reconciled", "external-canceled"),
                    causation_id=run_id,
                    client_order_id=cid,
                    venue=venue,
                    symbol=order.symbol,
                    strategy=EXTERNAL_STRATEGY,
                    venue_order_id=order.venue_order_id,
                    reason=CancelReason.RECONCILIATION,
                    detail="external order canceled by policy",
                )
            )
        message = f"{venue}: external order {cid} ({what}) canceled by policy"
        status = "canceled_external"
    else:
        events = []
        message = f"{venue}: external order {cid} ({what}) adopted: its fills are booked"
        status = ADOPTED
    alert = _alert(
        run_id,
        cid,
        Severity.WARNING,
        AlertCode.RECON_EXTERNAL_ORDER,
        message,
        venue,
        client_order_id=cid,
        policy=policy,
    )
    return [*events, alert], status


def drift_alerts(report: ReconReport) -> list[Alert]:
    drifts = [d for d in report.discrepancies if d.kind in DRIFT_KINDS and not d.resolution]
    alerts = []
    for kind, code in (
        (ReconDiscrepancyKind.POSITION_DRIFT, AlertCode.RECON_MISMATCH),
        (ReconDiscrepancyKind.BALANCE_DRIFT, AlertCode.RECON_BALANCE_DRIFT),
    ):
        found = [d for d in drifts if d.kind is kind]
        if found:
            alerts.append(
                Alert(
                    id=derive_id(report.id, "alert", kind.value),
                    severity=Severity.ERROR,
                    source=SOURCE,
                    code=code,
                    message=f"{report.venue}: {len(found)} {kind.value.lower()}(s): "
                    + ", ".join(f"{d.key} ours {d.ours} venue {d.theirs}" for d in found),
                    context={"venue": report.venue, "keys": [d.key for d in found]},
                    dedup_key=f"{SOURCE}:{kind.value}:{report.venue}",
                )
            )
    return alerts


def drift_command(report: ReconReport, cfg: ReconcilerConfig) -> list[ControlCommand]:
    """Drift over the threshold moves the risk-gate (C3), through the command it already
    handles: REDUCING or HALTED for the venue's scope. Its id derives from the report."""
    drifts = [d for d in report.discrepancies if d.kind in DRIFT_KINDS and not d.resolution]
    action = {"reduce": ControlAction.REDUCE, "halt": ControlAction.HALT}.get(cfg.drift_action)
    if action is None or not drifts or len(drifts) < cfg.drift_min_discrepancies:
        return []
    return [
        ControlCommand(
            id=derive_id(report.id, "drift", action.value),
            causation_id=report.id,
            action=action,
            reason=f"reconciliation drift on {report.venue}: "
            + ", ".join(f"{d.kind.value} {d.key}" for d in drifts),
            operator=SOURCE,
            scope=f"venue:{report.venue}",
        )
    ]
