"""Reconciler against the paper venue (whose state is in KV `paper_venue` and survives a
restart): the startup gate (C1), what is compared and done (C2, C4), drift policy (C3).

A venue-side change the gateway never announced is made the way it happens for real: while
the gateway is down the venue's record changes (written into the paper venue's bucket), and
the gateway's restart closes the gate and makes the reconciler look.
"""

from __future__ import annotations

import asyncio
import csv
import json
import sys
from datetime import UTC, datetime
from decimal import Decimal

import asyncpg
import msgspec
import pytest

from tradebus_common import events as ev
from tradebus_common import subjects
from tradebus_common.bus import Bus
from tradebus_common.config import Config, LedgerConfig, ReconcilerConfig, VenueConfig
from tradebus_common.ids import new_id
from tradebus_execution_gateway.venues.base import VenueFill, VenueOrder, VenueOrderStatus
from tradebus_reconciler.actions import fill_id
from tradebus_reconciler.engine import Reconciler
from tradebus_reconciler.schedule import CSV_COLUMNS, EndOfDay

from ..support.bus import collect, publish_event, set_price

D = Decimal
SERVICES = ("position-ledger", "execution-gateway", "reconciler")
PRICE = "50000"


def recon_config(config: Config, **recon: object) -> Config:
    base = {
        "startup_gate": True,
        "unknown_order_grace_s": 0.0,
        "open_orders_interval_s": 0.0,
        "positions_interval_s": 0.0,
        "audit_checkpoint_interval_s": 0.0,
        "audit_checkpoint_every_msgs": 0,
        "drift_action": "alert",
    }
    venue = VenueConfig(symbols=["BTC/USDT", "ETH/USDT"], starting_balances={"USDT": D("100000")})
    return msgspec.structs.replace(
        config,
        reconciler=ReconcilerConfig(**{**base, **recon}),  # type: ignore[arg-type]
        venues={"paper": venue},
    )


@pytest.fixture
def cfg(config: Config) -> Config:
    return recon_config(config)


def intent(reduce_only: bool = False, qty: str = "0.1") -> ev.OrderIntent:
    return ev.OrderIntent(
        strategy="demo",
        venue="paper",
        symbol="BTC/USDT",
        side=ev.Side.BUY,
        quantity=D(qty),
        order_type=ev.OrderType.MARKET,
        reduce_only=reduce_only,
    )


def is_gate(state: ev.ReconGateState):
    return lambda e: isinstance(e, ev.ReconGateChanged) and e.state is state


def paper_order(cid: str, status: VenueOrderStatus, fills: int = 0, **kw: object) -> VenueOrder:
    return VenueOrder(
        client_order_id=cid,
        venue_order_id=f"P{cid}",
        symbol="BTC/USDT",
        side=ev.Side.BUY,
        quantity=D("0.2"),
        status=status,
        order_type=ev.OrderType.LIMIT,
        limit_price=D(kw.pop("price", PRICE)),  # type: ignore[arg-type]
        strategy=str(kw.pop("strategy", "demo")),
        fills=[
            VenueFill(
                trade_id=f"T{cid}-{i + 1}",
                quantity=D("0.2"),
                price=D(PRICE),
                fee=D("10"),
                fee_currency="USDT",
                liquidity=ev.Liquidity.MAKER,
            )
            for i in range(fills)
        ],
    )


async def put_paper(nc, order: VenueOrder) -> None:
    kv = await nc.jetstream().key_value(subjects.BUCKET_PAPER_VENUE)
    await kv.put(f"paper.order.{order.client_order_id}", msgspec.json.encode(order))


async def put_journal(nc, cid: str, status: str) -> None:
    kv = await nc.jetstream().key_value(subjects.BUCKET_ORDER_JOURNAL)
    body = {"client_order_id": cid, "approved_id": "a-" + cid, "status": status, "venue": "paper"}
    await kv.put(cid, msgspec.json.encode(body))


async def journal_status(nc, cid: str) -> str:
    kv = await nc.jetstream().key_value(subjects.BUCKET_ORDER_JOURNAL)
    return msgspec.json.decode((await kv.get(cid)).value)["status"]


async def start_clean(stack, nc, cfg: Config, *extra: str) -> None:
    gates = await collect(nc, subjects.RECON_GATE)
    await stack.start(*SERVICES, *extra, config=cfg)
    await set_price(nc, "paper", "BTC/USDT", PRICE)
    await gates.wait_for(is_gate(ev.ReconGateState.CLEAN), timeout=20)


async def restart_gateway(stack, cfg: Config) -> None:
    await stack.stop("execution-gateway")
    await stack.start("execution-gateway", config=cfg)


async def ledger_fills(dsn: str, trade_id: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch("SELECT * FROM fills WHERE trade_id = $1", trade_id)
    finally:
        await conn.close()


# --- C1 startup gate --------------------------------------------------------------------


async def test_startup_gate_denies_new_orders_until_a_clean_run(stack, nc, cfg):
    outcomes = await collect(nc, "trading.order.>")
    await stack.start("risk-gate", config=cfg)  # no reconciler yet: the gate key is missing
    await set_price(nc, "paper", "BTC/USDT", PRICE)
    early = intent()
    await publish_event(nc, early)
    [denied] = await outcomes.wait_for(
        lambda e: isinstance(e, ev.OrderDenied) and e.intent_id == early.id
    )
    assert denied.reason is ev.DenyReason.RECONCILING

    gates = await collect(nc, subjects.RECON_GATE)
    await stack.start(*SERVICES, config=cfg)
    await gates.wait_for(is_gate(ev.ReconGateState.CLEAN), timeout=20)
    later = intent()
    await publish_event(nc, later)
    await outcomes.wait_for(lambda e: isinstance(e, ev.OrderApproved) and e.intent_id == later.id)


async def test_a_gateway_restart_closes_the_gate_until_the_rerun_is_clean(stack, nc, cfg):
    await start_clean(stack, nc, cfg)
    gates = await collect(nc, subjects.RECON_GATE)
    reports = await collect(nc, subjects.RECON_REPORT)
    await restart_gateway(stack, cfg)
    [clean] = await gates.wait_for(is_gate(ev.ReconGateState.CLEAN), timeout=20)
    [report] = reports.matching(lambda r: r.trigger == "gateway_restart")
    assert report.clean and report.resolved and report.id == clean.report_id
    assert report.duration_ms >= 0 and report.scope == "full"


async def test_blocked_gate_opens_only_for_an_operator_accept(stack, nc, cfg):
    await start_clean(stack, nc, cfg, "risk-gate")
    # A withdrawal while the gateway was down: the venue now holds 1000 USDT less.
    drifted = msgspec.structs.replace(
        cfg,
        venues={
            "paper": msgspec.structs.replace(
                cfg.venues["paper"], starting_balances={"USDT": D("99000")}
            )
        },
    )
    gates = await collect(nc, subjects.RECON_GATE)
    alerts = await collect(nc, "trading.alert.>")
    await restart_gateway(stack, drifted)
    [blocked] = await gates.wait_for(is_gate(ev.ReconGateState.BLOCKED), timeout=20)
    assert "1 unresolved" in blocked.reason
    await alerts.wait_for(lambda a: a.code is ev.AlertCode.RECON_GATE_BLOCKED)

    outcomes = await collect(nc, "trading.order.>")
    held = intent()
    await publish_event(nc, held)
    [denied] = await outcomes.wait_for(
        lambda e: isinstance(e, ev.OrderDenied) and e.intent_id == held.id
    )
    assert denied.reason is ev.DenyReason.RECONCILING and "BLOCKED" in denied.detail

    deadletters = await collect(nc, "trading.deadletter.reconciler")
    nobody = ev.ControlCommand(action=ev.ControlAction.RECONCILE, target="accept")
    await publish_event(nc, nobody)
    [dl] = await deadletters.wait_for(lambda e: isinstance(e, ev.MessageDeadLettered))
    assert dl.reason.value == "OPERATOR_REQUIRED"

    accept = ev.ControlCommand(
        action=ev.ControlAction.RECONCILE, target="accept", operator="alice", reason="withdrawal"
    )
    await publish_event(nc, accept)
    [accepted] = await gates.wait_for(is_gate(ev.ReconGateState.ACCEPTED))
    assert (accepted.operator, accepted.causation_id) == ("alice", accept.id)
    after = intent()
    await publish_event(nc, after)
    await outcomes.wait_for(lambda e: isinstance(e, ev.OrderApproved) and e.intent_id == after.id)


# --- C2 fills, orders, balances -------------------------------------------------------------


async def test_a_fill_missing_from_the_ledger_is_generated_once_with_the_gateway_id(
    stack, nc, cfg, database
):
    await start_clean(stack, nc, cfg)
    await stack.stop("execution-gateway")
    # The venue filled it and the journal knows it filled, but the fill never reached the bus.
    cid = "tbmissingfill0001"
    await put_paper(nc, paper_order(cid, VenueOrderStatus.FILLED, fills=1))
    await put_journal(nc, cid, "filled")
    fills = await collect(nc, "trading.fill.>")
    alerts = await collect(nc, "trading.alert.>")
    reports = await collect(nc, subjects.RECON_REPORT)
    positions = await collect(nc, "trading.position.>")
    await stack.start("execution-gateway", config=cfg)

    trade_id = f"T{cid}-1"
    [fill] = await fills.wait_for(lambda f: f.trade_id == trade_id, timeout=20)
    assert fill.reconciliation is True and fill.id == fill_id("paper", trade_id)
    assert (fill.quantity, fill.price, fill.fee, fill.strategy) == (
        D("0.2"),
        D(PRICE),
        D(10),
        "demo",
    )
    [report] = await reports.wait_for(lambda r: r.trigger == "gateway_restart")
    [missing] = [d for d in report.discrepancies if d.kind is ev.ReconDiscrepancyKind.MISSING_FILL]
    assert (missing.key, missing.resolution) == (trade_id, "fill_generated")
    assert report.resolved and not report.clean
    assert [a.event_id for a in report.actions if a.kind == "fill_generated"] == [fill.id]
    await alerts.wait_for(lambda a: a.code is ev.AlertCode.RECON_MISSING_FILL)
    await positions.wait_for(lambda p: p.fill_id == fill.id)

    # The gateway's own announcement of the same trade, later, changes nothing.
    late = msgspec.structs.replace(fill, reconciliation=False)
    ack = await nc.jetstream().publish(
        subjects.fill("paper", "BTC/USDT"),
        msgspec.json.encode(late),
        headers={"Nats-Msg-Id": late.id},
    )
    assert ack.duplicate
    assert len(await ledger_fills(database, trade_id)) == 1


async def test_an_order_filled_while_the_gateway_was_down_is_booked_once(stack, nc, cfg, database):
    await start_clean(stack, nc, cfg)
    await stack.stop("execution-gateway")
    cid = "tbfilledwhiledown01"
    await put_journal(nc, cid, "open")  # resting when the gateway went down
    await put_paper(nc, paper_order(cid, VenueOrderStatus.FILLED, fills=1))
    fills = await collect(nc, "trading.fill.>")
    gates = await collect(nc, subjects.RECON_GATE)
    positions = await collect(nc, "trading.position.>")
    await stack.start("execution-gateway", config=cfg)
    # The gateway's restart resolution and the reconciler both see it; one fill is booked.
    await gates.wait_for(is_gate(ev.ReconGateState.CLEAN), timeout=20)
    [fill] = await fills.wait_for(lambda f: f.trade_id == f"T{cid}-1")
    assert fill.id == fill_id("paper", f"T{cid}-1")
    await positions.wait_for(lambda p: p.fill_id == fill.id)
    assert len(await ledger_fills(database, f"T{cid}-1")) == 1
    assert await journal_status(nc, cid) == "filled"


async def test_an_order_journaled_but_never_at_the_venue_is_resolved_rejected(stack, nc, cfg):
    await start_clean(stack, nc, cfg)
    cid = "tbneverreached0001"
    await put_journal(nc, cid, "submitting")  # sent while the gateway was going down
    orders = await collect(nc, "trading.order.>")
    alerts = await collect(nc, "trading.alert.>")
    reports = await collect(nc, subjects.RECON_REPORT)
    cmd = ev.ControlCommand(action=ev.ControlAction.RECONCILE, reason="test")
    await publish_event(nc, cmd)
    [report] = await reports.wait_for(lambda r: r.causation_id == cmd.id)
    [found] = report.discrepancies
    assert (found.kind, found.key, found.resolution) == (
        ev.ReconDiscrepancyKind.ORDER_UNKNOWN,
        cid,
        "rejected",
    )
    [rejected] = await orders.wait_for(
        lambda e: isinstance(e, ev.OrderRejected) and e.client_order_id == cid
    )
    assert "never reached the venue" in rejected.detail
    await alerts.wait_for(lambda a: a.code is ev.AlertCode.RECON_ORDER_RESOLVED)
    assert await journal_status(nc, cid) == "rejected"


async def test_an_order_canceled_at_the_venue_unseen_is_announced_canceled(stack, nc, cfg):
    await start_clean(stack, nc, cfg)
    cid = "tbcanceledunseen01"
    await put_paper(nc, paper_order(cid, VenueOrderStatus.CANCELED, price="1"))
    await put_journal(nc, cid, "open")  # we still think it rests on the book
    orders = await collect(nc, "trading.order.>")
    reports = await collect(nc, subjects.RECON_REPORT)
    cmd = ev.ControlCommand(action=ev.ControlAction.RECONCILE)
    await publish_event(nc, cmd)
    [report] = await reports.wait_for(lambda r: r.causation_id == cmd.id)
    assert [(d.kind, d.key, d.resolution) for d in report.discrepancies] == [
        (ev.ReconDiscrepancyKind.ORDER_NOT_AT_VENUE, cid, "canceled")
    ]
    [canceled] = await orders.wait_for(
        lambda e: isinstance(e, ev.OrderCanceled) and e.client_order_id == cid
    )
    assert canceled.reason is ev.CancelReason.VENUE
    assert await journal_status(nc, cid) == "canceled"


@pytest.mark.parametrize("policy", ["adopt", "cancel"])
async def test_an_external_order_is_alerted_and_adopted_or_canceled(stack, nc, config, policy):
    cfg = recon_config(config, external_orders=policy)
    await start_clean(stack, nc, cfg)
    await stack.stop("execution-gateway")
    cid = f"manual{policy}"
    await put_paper(nc, paper_order(cid, VenueOrderStatus.OPEN, price="1", strategy=""))
    reports = await collect(nc, subjects.RECON_REPORT)
    alerts = await collect(nc, "trading.alert.>")
    orders = await collect(nc, "trading.order.>")
    gates = await collect(nc, subjects.RECON_GATE)
    await stack.start("execution-gateway", config=cfg)
    [report] = await reports.wait_for(lambda r: r.trigger == "gateway_restart", timeout=20)
    [found] = report.discrepancies
    assert (found.kind, found.key) == (ev.ReconDiscrepancyKind.EXTERNAL_ORDER, cid)
    [alert] = await alerts.wait_for(lambda a: a.code is ev.AlertCode.RECON_EXTERNAL_ORDER)
    assert alert.context["policy"] == policy
    await gates.wait_for(is_gate(ev.ReconGateState.CLEAN))  # resolved by policy
    if policy == "adopt":
        assert found.resolution == "adopted"
        assert await journal_status(nc, cid) == "external"
    else:
        assert found.resolution == "canceled"
        [canceled] = await orders.wait_for(
            lambda e: isinstance(e, ev.OrderCanceled) and e.client_order_id == cid
        )
        assert canceled.reason is ev.CancelReason.RECONCILIATION
        kv = await nc.jetstream().key_value(subjects.BUCKET_PAPER_VENUE)
        record = msgspec.json.decode((await kv.get(f"paper.order.{cid}")).value)
        assert record["status"] == "canceled"


async def test_balance_drift_alerts_and_halts_the_venue_by_policy(stack, nc, config):
    cfg = recon_config(config, drift_action="halt")
    await start_clean(stack, nc, cfg, "risk-gate")
    drifted = msgspec.structs.replace(
        cfg,
        venues={
            "paper": msgspec.structs.replace(
                cfg.venues["paper"], starting_balances={"USDT": D("100000"), "BTC": D("0.5")}
            )
        },
    )
    reports = await collect(nc, subjects.RECON_REPORT)
    alerts = await collect(nc, "trading.alert.>")
    states = await collect(nc, subjects.RISK_STATE)
    await restart_gateway(stack, drifted)
    [report] = await reports.wait_for(lambda r: r.trigger == "gateway_restart", timeout=20)
    [drift] = report.discrepancies
    assert (drift.kind, drift.key, drift.ours, drift.theirs, drift.resolution) == (
        ev.ReconDiscrepancyKind.BALANCE_DRIFT,
        "BTC",
        D(0),
        D("0.5"),
        "",
    )
    assert not report.resolved and report.balances_compared == 2
    [alert] = await alerts.wait_for(lambda a: a.code is ev.AlertCode.RECON_BALANCE_DRIFT)
    assert alert.severity is ev.Severity.ERROR
    [halted] = await states.wait_for(
        lambda s: s.state is ev.TradingState.HALTED and s.scope == "venue:paper"
    )
    assert halted.operator == "reconciler" and "BALANCE_DRIFT BTC" in halted.reason


async def test_the_ledger_takes_its_cash_from_the_balances_the_reconciler_reports(
    stack, nc, config
):
    """L: cash_source = "venue": a real run reports the paper venue's balances on the
    ReconReport, and the ledger's snapshot cash becomes the venue's USDT."""
    cfg = recon_config(config)
    cfg = msgspec.structs.replace(
        cfg,
        ledger=LedgerConfig(cash_source="venue", cash_currency="USDT"),
        venues={
            "paper": msgspec.structs.replace(
                cfg.venues["paper"], starting_balances={"USDT": D("12345.67")}
            )
        },
    )
    reports = await collect(nc, subjects.RECON_REPORT)
    positions = await collect(nc, "trading.position.>")
    await start_clean(stack, nc, cfg)
    [report] = await reports.wait_for(lambda r: r.balances, timeout=20)
    assert report.balances == {"USDT": D("12345.67")} and report.account == "default"
    # A booked fill gives the account a row; its starting cash is the venue's, not config's.
    fill = ev.Fill(
        venue="paper", symbol="BTC/USDT", strategy="demo", client_order_id="cash-1",
        trade_id="cash-1", side=ev.Side.BUY, quantity=D("0.1"), price=D("50000"),
    )  # fmt: skip
    await publish_event(nc, fill)
    await positions.wait_for(lambda e: isinstance(e, ev.PositionChanged))
    reply = await nc.request("rpc.ledger.pnl", b"{}", timeout=10)
    [account] = json.loads(reply.data)["data"]
    assert D(account["snapshot"]["starting_cash"]) == D("12345.67")
    assert D(account["snapshot"]["cash"]) == D("7345.67")  # 12,345.67 - 0.1 x 50,000


async def test_within_tolerance_is_no_drift(stack, nc, config):
    cfg = recon_config(config, balance_tolerance=D("1000"))
    await start_clean(stack, nc, cfg)
    drifted = msgspec.structs.replace(
        cfg,
        venues={
            "paper": msgspec.structs.replace(
                cfg.venues["paper"], starting_balances={"USDT": D("99500")}
            )
        },
    )
    reports = await collect(nc, subjects.RECON_REPORT)
    await restart_gateway(stack, drifted)
    [report] = await reports.wait_for(lambda r: r.trigger == "gateway_restart", timeout=20)
    assert report.clean and report.balances_compared == 1


async def test_an_on_demand_run_on_an_empty_system_is_clean(stack, nc, cfg):
    await start_clean(stack, nc, cfg)
    reports = await collect(nc, subjects.RECON_REPORT)
    cmd = ev.ControlCommand(id=new_id(), action=ev.ControlAction.RECONCILE)
    await publish_event(nc, cmd)
    [report] = await reports.wait_for(lambda r: r.causation_id == cmd.id)
    assert report.clean and report.trigger == "on_demand"
    assert report.orders_compared == 0 and report.trades_compared == 0


# --- C3 when: periodic, end of day; the CLI ------------------------------------------------


async def test_periodic_runs_check_open_orders_and_everything(stack, nc, config):
    cfg = recon_config(
        config, startup_gate=False, open_orders_interval_s=0.2, positions_interval_s=0.5
    )
    reports = await collect(nc, subjects.RECON_REPORT)
    await stack.start(*SERVICES, config=cfg)
    [orders, *_] = await reports.wait_for(lambda r: r.trigger == "periodic" and r.scope == "orders")
    assert orders.clean and orders.trades_compared == 0  # open orders only
    [full, *_] = await reports.wait_for(lambda r: r.trigger == "periodic" and r.scope == "full")
    assert full.clean and full.balances_compared == 1


async def test_end_of_day_report_is_written_as_json_and_csv(stack, nc, cfg, database, tmp_path):
    await start_clean(stack, nc, cfg)
    eod_cfg = msgspec.structs.replace(
        cfg,
        reconciler=msgspec.structs.replace(cfg.reconciler, report_dir=str(tmp_path)),
    )
    pool = await asyncpg.create_pool(database, min_size=1, max_size=2)
    try:
        bus = Bus(nc, eod_cfg.bus, "reconciler")
        engine = Reconciler(eod_cfg, bus, pool, await bus.kv(subjects.BUCKET_ORDER_JOURNAL))
        json_path, csv_path = await EndOfDay(engine, eod_cfg.reconciler, ["paper"]).report(
            datetime.now(UTC)
        )
    finally:
        await pool.close()
    reports = json.loads(json_path.read_text())
    assert [r["trigger"] for r in reports] == ["startup", "end_of_day"]
    rows = list(csv.reader(csv_path.open()))
    assert rows[0] == CSV_COLUMNS and len(rows) == 3
    assert {r[3] for r in rows[1:]} == {"startup", "end_of_day"}


async def _cli(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tradebus_common.cli.main",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_reconcile_accept_command_needs_an_operator(stack, nc, cfg, nats_server):
    await start_clean(stack, nc, cfg)
    code, _, err = await _cli("reconcile", "--accept", "--nats", nats_server.url)
    assert code == 2 and "--operator" in err
    code, out, err = await _cli(
        "reconcile", "--accept", "--operator", "alice", "--nats", nats_server.url
    )
    assert code == 0, err
    assert "startup gate ACCEPTED (by alice)" in out
    code, out, err = await _cli("reconcile", "--json", "--nats", nats_server.url)
    assert code == 0, err
    assert json.loads(out)["clean"] is True


async def test_reconcile_command_shows_a_resolved_order_and_exits_3(stack, nc, cfg, nats_server):
    await start_clean(stack, nc, cfg)
    cid = "tbclicanceled00001"
    await put_paper(nc, paper_order(cid, VenueOrderStatus.CANCELED, price="1"))
    await put_journal(nc, cid, "open")
    code, out, err = await _cli("reconcile", "--nats", nats_server.url)
    assert code == 3, err
    assert f"ORDER_NOT_AT_VENUE {cid} -> canceled" in out
    assert "paper: resolved" in out
