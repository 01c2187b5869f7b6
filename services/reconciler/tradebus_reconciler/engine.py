"""One reconciliation run per venue (C2, C4): compare, act by policy, report.

A run publishes its own events (it needs each fill's publish ack to tell a fill that is only
in flight from one that is really missing), in this order: corrective events (fills, order
outcomes), the ReconReport, alerts, and, on drift over the threshold, a control command.
Every id is derived (from the run id, the client order id or the venue's trade id), so a
repeated run republishes the same ids and JetStream and the consumers deduplicate them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

import asyncpg
from nats.js.kv import KeyValue

from tradebus_common.bus import Bus
from tradebus_common.config import Config
from tradebus_common.events import (
    Event,
    PositionView,
    ReconAction,
    ReconDiscrepancy,
    ReconDiscrepancyKind,
    ReconMismatch,
    ReconReport,
    VenueOrderView,
    VenueTradeView,
)
from tradebus_common.ids import derive_id

from . import actions, sources
from .compare import (
    OrderOutcome,
    balance_flows,
    baseline_from,
    compare_balances,
    compare_positions,
    missing_trades,
    order_outcome,
    position_baseline,
    position_drifts,
    split_orders,
    trade_rows,
    with_trades,
)
from .sources import JournalRecord
from .store import ReconStore
from .venue_client import VenueClient, VenueUnavailable

log = logging.getLogger("tradebus.reconciler")
DRIFT_CONFIRM_S = 1.0  # a drift must still be there this much later (fills land in between)
BASELINE_CONFIRM_S = 0.3  # a new baseline must read the same this much later (gateway->ledger)
FULL, ORDERS = "full", "orders"


@dataclass
class Run:
    """What one venue's run found and did."""

    venue: str
    run_id: str
    trigger: str
    discrepancies: list[ReconDiscrepancy] = field(default_factory=list)
    actions: list[ReconAction] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    mismatches: list[ReconMismatch] = field(default_factory=list)
    balances: dict[str, Decimal] = field(default_factory=dict)  # as the venue reported them

    def found(self, d: ReconDiscrepancy, action: ReconAction | None = None) -> None:
        self.discrepancies.append(d)
        if action is not None:
            self.actions.append(action)


class Reconciler:
    def __init__(self, config: Config, bus: Bus, pool: asyncpg.Pool, journal: KeyValue) -> None:
        self.config = config
        self.cfg = config.reconciler
        self.bus = bus
        self.pool = pool
        self.store = ReconStore(pool)
        self.journal = journal
        self._lock = asyncio.Lock()  # one run at a time: two would act on the same findings

    def client(self, venue: str) -> VenueClient:
        return VenueClient(self.bus.nc, venue, self.cfg.venue_timeout_s)

    async def run(
        self, run_id: str, trigger: str, venues: list[str], scope: str = FULL
    ) -> list[ReconReport]:
        async with self._lock:
            journal = await sources.read_journal(self.journal)
            reports = []
            for venue in venues:
                reports.append(
                    await self.run_venue(run_id, trigger, venue, scope, len(venues), journal)
                )
            return reports

    async def run_venue(
        self,
        run_id: str,
        trigger: str,
        venue: str,
        scope: str,
        of_total: int,
        journal: dict[str, JournalRecord],
    ) -> ReconReport:
        started = time.perf_counter()
        run = Run(venue=venue, run_id=run_id, trigger=trigger)
        try:
            await self._orders(run, journal)
            if scope == FULL:
                pending = await self._fills(run, journal)
                await self._positions_and_balances(run, pending)
        except VenueUnavailable as e:
            run.found(
                ReconDiscrepancy(
                    kind=ReconDiscrepancyKind.VENUE_UNAVAILABLE, key=venue, detail=str(e)
                )
            )
        report = self._report(run, scope, of_total, round((time.perf_counter() - started) * 1000))
        await self._publish(run, report)
        return report

    # --- open orders ----------------------------------------------------------------

    async def _orders(self, run: Run, journal: dict[str, JournalRecord]) -> None:
        client = self.client(run.venue)
        venue_open = await client.open_orders()
        mine = [r for r in journal.values() if r.venue in ("", run.venue)]
        ours_open = [r.client_order_id for r in mine if r.open]
        missing, external = split_orders(ours_open, set(journal), venue_open)
        run.counts["orders"] = len(set(ours_open) | {o.client_order_id for o in venue_open})
        now = sources.utcnow()
        for cid in missing:
            await self._resolve_missing(run, client, journal[cid], now)
        for order in external:
            # Journaled since we read the journal (a submit just now): ours after all.
            if not await sources.is_journaled(self.journal, order.client_order_id):
                await self._external(run, client, order)

    async def _resolve_missing(
        self, run: Run, client: VenueClient, record: JournalRecord, now: datetime
    ) -> None:
        """An order of ours not open at the venue: look it up by client order id (C4)."""
        found = await client.order(record.client_order_id)
        if found is None and record.venue == "" and await self._elsewhere(run, record):
            return
        outcome = order_outcome(found, record.written_at, now, self.cfg.unknown_order_grace_s)
        if outcome in (OrderOutcome.WORKING, OrderOutcome.IN_FLIGHT):
            return
        status = "rejected" if outcome is OrderOutcome.NEVER_REACHED else outcome.value
        written = await sources.put_journal(
            self.journal,
            record.client_order_id,
            status,
            record.approved_id,
            run.venue,
            last=record.revision or None,
        )
        if not written:  # the gateway is resolving it right now: its outcome stands
            run.actions.append(ReconAction(kind="left_to_gateway", key=record.client_order_id))
            return
        if outcome is OrderOutcome.FILLED:  # its trades are checked (and generated) below
            run.actions.append(ReconAction(kind="journal_filled", key=record.client_order_id))
            return
        self._announce(run, record, found, outcome, status)

    def _announce(
        self,
        run: Run,
        record: JournalRecord,
        found: VenueOrderView | None,
        outcome: OrderOutcome,
        status: str,
    ) -> None:
        event, alert = actions.order_resolved(run.venue, run.run_id, record, found, outcome)
        run.events += [event, alert]
        kind = (
            ReconDiscrepancyKind.ORDER_UNKNOWN
            if outcome is OrderOutcome.NEVER_REACHED
            else ReconDiscrepancyKind.ORDER_NOT_AT_VENUE
        )
        run.found(
            ReconDiscrepancy(
                kind=kind,
                key=record.client_order_id,
                detail=f"journal said {record.status}; venue: {found.status if found else 'unknown'}",
                resolution=status,
            ),
            ReconAction(kind=f"order_{status}", key=record.client_order_id, event_id=event.id),
        )

    async def _elsewhere(self, run: Run, record: JournalRecord) -> bool:
        """A journal entry without a venue: is it another venue's order?"""
        for other in self.config.venues:
            if other != run.venue and await self.client(other).order(record.client_order_id):
                return True
        return False

    async def _external(self, run: Run, client: VenueClient, order: VenueOrderView) -> None:
        policy = self.cfg.external_orders
        cid = order.client_order_id
        events, status = await actions.external_order(run.venue, run.run_id, order, policy, client)
        await sources.put_journal(self.journal, cid, status, "", run.venue)
        run.events += events
        run.found(
            ReconDiscrepancy(
                kind=ReconDiscrepancyKind.EXTERNAL_ORDER,
                key=cid,
                theirs=order.quantity,
                detail=f"{order.side} {order.quantity} {order.symbol} not placed by tradebus",
                resolution="adopted" if status == sources.ADOPTED else "canceled",
            ),
            ReconAction(kind=status, key=cid, event_id=events[0].id if events else ""),
        )

    # --- fills ----------------------------------------------------------------------

    async def _fills(self, run: Run, journal: dict[str, JournalRecord]) -> list[VenueTradeView]:
        """Venue trades since the checkpoint that the ledger has not booked become Fills
        (reconciliation=true, the gateway's own fill id). Returns every unbooked trade."""
        started = sources.utcnow()
        since = await self.store.trades_until(run.venue)
        look_from = since - timedelta(seconds=self.cfg.trades_overlap_s) if since else None
        trades = await self.client(run.venue).trades(look_from)
        run.counts["trades"] = len(trades)
        booked = await sources.booked_trade_ids(self.pool, run.venue, [t.trade_id for t in trades])
        unbooked = missing_trades(trades, booked)
        for trade in unbooked:
            await self._missing_fill(run, trade, trade.client_order_id in journal)
        await self.store.set_trades_until(run.venue, started)
        return unbooked

    async def _missing_fill(self, run: Run, trade: VenueTradeView, ours: bool) -> None:
        fill = actions.reconciliation_fill(run.venue, run.run_id, trade, ours)
        ack = await self.bus.publish(fill)
        if ack.duplicate:  # already in the stream: the ledger just has not booked it yet
            run.actions.append(ReconAction(kind="fill_in_flight", key=trade.trade_id))
            return
        run.events.append(actions.missing_fill_alert(run.venue, run.run_id, trade))
        run.found(
            ReconDiscrepancy(
                kind=ReconDiscrepancyKind.MISSING_FILL,
                key=trade.trade_id,
                theirs=trade.quantity,
                detail=f"{trade.side} {trade.quantity} {trade.symbol} @ {trade.price} "
                f"(order {trade.client_order_id})",
                resolution="fill_generated",
            ),
            ReconAction(kind="fill_generated", key=trade.trade_id, event_id=fill.id),
        )

    # --- positions and balances ---------------------------------------------------------

    async def _positions_and_balances(self, run: Run, pending: list[VenueTradeView]) -> None:
        drifts, compared = await self._drifts(run, pending)
        if drifts:
            await asyncio.sleep(DRIFT_CONFIRM_S)
            still_pending = await self._still_unbooked(run.venue, pending)
            drifts, compared = await self._drifts(run, still_pending)
        run.counts.update(compared)
        for d in drifts:
            run.found(d)
        run.mismatches = [
            ReconMismatch(
                venue=run.venue,
                symbol=d.key,
                ledger_quantity=d.ours or Decimal(0),
                venue_quantity=d.theirs or Decimal(0),
            )
            for d in drifts
            if d.kind is ReconDiscrepancyKind.POSITION_DRIFT
        ]

    async def _still_unbooked(
        self, venue: str, pending: list[VenueTradeView]
    ) -> list[VenueTradeView]:
        booked = await sources.booked_trade_ids(self.pool, venue, [t.trade_id for t in pending])
        return [t for t in pending if t.trade_id not in booked]

    async def _drifts(
        self, run: Run, pending: list[VenueTradeView]
    ) -> tuple[list[ReconDiscrepancy], dict[str, int]]:
        venue = run.venue
        client = self.client(venue)
        ledger, remote = await asyncio.gather(
            sources.ledger_positions(self.pool, venue), client.positions()
        )
        ours = with_trades(ledger, venue, pending)
        base = await self.store.baseline(venue, "position")
        if base is None:  # first look: holdings from before tradebus are the baseline
            base = position_baseline(ours, remote)
            if not await self._baseline_holds(run, pending, base, self._position_base):
                return [], {"positions": 0, "balances": 0}
            await self.store.set_baseline(venue, base, "first run", "position")
            run.actions.append(ReconAction(kind="position_baseline_set", key=venue))
        ours += [PositionView(venue=venue, symbol=s, quantity=q) for s, q in base.items()]
        n_pos, mismatches = compare_positions(venue, ours, remote, self.cfg.position_tolerance)
        n_bal, balance = await self._balance_drifts(run, client, pending)
        return position_drifts(mismatches) + balance, {"positions": n_pos, "balances": n_bal}

    async def _balance_drifts(
        self, run: Run, client: VenueClient, pending: list[VenueTradeView]
    ) -> tuple[int, list[ReconDiscrepancy]]:
        venue = run.venue
        reported, flows = await self._balance_view(venue, client, pending)
        run.balances = dict(reported)  # the ledger can take its cash from these (L: cash_source)
        if not reported:  # the venue reports no balances: nothing to compare
            return 0, []
        baseline = await self.store.baseline(venue)
        if baseline is None:
            candidate = baseline_from(reported, flows)
            if await self._baseline_holds(run, pending, candidate, self._balance_base):
                await self.store.set_baseline(venue, candidate, "first run")
                run.actions.append(ReconAction(kind="balance_baseline_set", key=venue))
            return len(reported), []
        expected = {
            c: baseline.get(c, Decimal(0)) + flows.get(c, Decimal(0))
            for c in set(baseline) | set(flows)
        }
        return compare_balances(expected, reported, self.cfg.balance_tolerance)

    async def _balance_view(
        self, venue: str, client: VenueClient, pending: list[VenueTradeView]
    ) -> tuple[dict[str, Decimal], dict[str, Decimal]]:
        """The venue's balances, and what our fills (booked, or at the venue and not yet
        booked) moved per currency."""
        reported = {b.currency: b.total for b in await client.balances()}
        rows, fees = await sources.ledger_flows(self.pool, venue)
        extra_rows, extra_fees = trade_rows(pending)
        for cur, fee in extra_fees.items():
            fees[cur] = fees.get(cur, Decimal(0)) + fee
        flows = balance_flows(
            [(r.symbol, r.side, r.qty, r.notional) for r in rows] + extra_rows, fees
        )
        return reported, flows

    async def _balance_base(self, venue: str, pending: list[VenueTradeView]) -> dict:
        reported, flows = await self._balance_view(venue, self.client(venue), pending)
        return baseline_from(reported, flows)

    async def _position_base(self, venue: str, pending: list[VenueTradeView]) -> dict:
        ledger, remote = await asyncio.gather(
            sources.ledger_positions(self.pool, venue), self.client(venue).positions()
        )
        return position_baseline(with_trades(ledger, venue, pending), remote)

    async def _baseline_holds(
        self,
        run: Run,
        pending: list[VenueTradeView],
        candidate: dict,
        recompute: Callable[[str, list[VenueTradeView]], Awaitable[dict]],
    ) -> bool:
        """A baseline is fixed for good, so it must not catch a fill in flight (at the venue
        and booked between two reads): it is taken only if a second look a moment later
        gives the same. Otherwise the next run tries again."""
        await asyncio.sleep(BASELINE_CONFIRM_S)
        still = await self._still_unbooked(run.venue, pending)
        if await recompute(run.venue, still) == candidate:
            return True
        log.info("activity while fixing a baseline; next run", extra={"venue": run.venue})
        return False

    async def rebaseline(self, venue: str, operator: str) -> None:
        """An operator accepted the differences: what the venue holds now is the new base."""
        client = self.client(venue)
        ledger, remote = await asyncio.gather(
            sources.ledger_positions(self.pool, venue), client.positions()
        )
        base = position_baseline(ledger, remote)
        await self.store.set_baseline(venue, base, operator, "position")
        reported = {b.currency: b.total for b in await client.balances()}
        if not reported:
            return
        rows, fees = await sources.ledger_flows(self.pool, venue)
        flows = balance_flows([(r.symbol, r.side, r.qty, r.notional) for r in rows], fees)
        await self.store.set_baseline(venue, baseline_from(reported, flows), operator)

    # --- report -------------------------------------------------------------------------

    def _report(self, run: Run, scope: str, of_total: int, duration_ms: int) -> ReconReport:
        return ReconReport(
            id=derive_id(run.run_id, "recon", run.venue),
            causation_id=run.run_id,
            venue=run.venue,
            clean=not run.discrepancies,
            resolved=all(d.resolution for d in run.discrepancies),
            of_total=of_total,
            trigger=run.trigger,
            scope=scope,
            positions_compared=run.counts.get("positions", 0),
            orders_compared=run.counts.get("orders", 0),
            trades_compared=run.counts.get("trades", 0),
            balances_compared=run.counts.get("balances", 0),
            mismatches=run.mismatches,
            discrepancies=run.discrepancies,
            actions=run.actions,
            duration_ms=duration_ms,
            account=self.config.risk.account,
            balances=run.balances,
        )

    async def _publish(self, run: Run, report: ReconReport) -> None:
        await self.bus.publish_all([e for e in run.events if not actions.is_alert(e)])
        await self.store.save_report(report)
        await self.bus.publish(report)
        follow = [e for e in run.events if actions.is_alert(e)]
        follow += actions.drift_alerts(report)
        follow += actions.drift_command(report, self.cfg)
        await self.bus.publish_all(follow)
        log.info(
            "reconciliation done",
            extra={
                "venue": run.venue,
                "trigger": run.trigger,
                "clean": report.clean,
                "resolved": report.resolved,
                "discrepancies": len(report.discrepancies),
            },
        )
