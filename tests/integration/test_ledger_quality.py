"""position-ledger analytics on real NATS and PostgreSQL: MAE/MFE from ticks, exit reasons,
fill rate from order events, unknown-order flags, sessions and run metrics, venue cash."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from decimal import Decimal

import msgspec
import pytest

from tradebus_common import events as ev
from tradebus_common.config import AccountConfig, LedgerConfig
from tradebus_common.errors import ConfigError
from tradebus_common.events import ExitReason

from ..support.bus import collect, publish_event, publish_raw, set_price
from .test_ledger import approval, book, cli, fetch, fill

D = Decimal


async def until(check: Callable[[], Awaitable[object]], timeout: float = 20) -> object:
    """Wait for a condition the ledger reaches on its own (a row written by the tick
    consumer): polled, with a deadline, never a fixed sleep."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


async def tick(nc, price: str, symbol: str = "BTC/USDT", **kw) -> None:
    await publish_event(nc, ev.MarketTick(venue="paper", symbol=symbol, price=D(price), **kw))


async def cycle_range(dsn: str, symbol: str = "BTC/USDT"):
    [row] = await fetch(dsn, "SELECT cycle_low, cycle_high FROM positions WHERE symbol=$1", symbol)
    return row["cycle_low"], row["cycle_high"]


async def rpc(nc, endpoint: str, **body) -> object:
    msg = await nc.request(f"rpc.ledger.{endpoint}", json.dumps(body).encode(), timeout=10)
    reply = json.loads(msg.data)
    assert reply["ok"], reply
    return reply["data"]


async def test_mae_mfe_from_ticks_and_exit_reason_of_the_closing_fill(stack, nc, config):
    """Long 1 @ 100; the market goes 95 .. 112; closed at 110 by a take-profit exit:
    MAE = (100 - 95) / 100 = 5 %, MFE = (112 - 100) / 100 = 12 %."""
    dsn = config.database.dsn
    await stack.start("position-ledger")
    entry = fill("x1", "buy", "1", "100")
    await publish_event(nc, approval(entry))
    await book(stack, nc, [entry])
    await tick(nc, "80", ts=entry.ts - timedelta(minutes=1))  # before the cycle: ignored
    for price in ("98", "95", "112", "104"):
        await tick(nc, price)
    await until(lambda: _range_is(dsn, D(95), D(112)))

    exit_fill = fill("x2", "sell", "1", "110", exit_reason=ExitReason.TAKE_PROFIT)
    await publish_event(nc, approval(exit_fill))
    await book(stack, nc, [exit_fill])
    [c] = await fetch(dsn, "SELECT * FROM position_cycles")
    assert c["exit_reason"] == "TAKE_PROFIT" and c["entry_price"] == 100
    assert (c["low_price"], c["high_price"]) == (95, 112)
    assert c["mae_pct"] == 5 and c["mfe_pct"] == 12
    [f] = await fetch(dsn, "SELECT exit_reason, flags FROM fills WHERE trade_id='x2'")
    assert f["exit_reason"] == "TAKE_PROFIT" and f["flags"] == ""
    assert await cycle_range(dsn) == (None, None)  # flat: no open cycle

    [demo] = await rpc(nc, "stats", strategy="demo")
    assert D(demo["avg_mae_pct"]) == 5 and D(demo["avg_mfe_pct"]) == 12
    assert demo["by_exit_reason"]["TAKE_PROFIT"]["trades"] == 1
    assert D(demo["by_exit_reason"]["TAKE_PROFIT"]["realized_pnl"]) == 10


async def _range_is(dsn: str, low: Decimal, high: Decimal) -> bool:
    return await cycle_range(dsn) == (low, high)


async def test_short_excursions_and_stats_per_exit_reason(stack, nc, config):
    """A short's adverse move is up. Three trades: a stop loss, a trailing stop, and the
    strategy's own exit ("signal")."""
    dsn = config.database.dsn
    await stack.start("position-ledger")
    legs = [
        fill("s1", "sell", "2", "200"),
        fill("s2", "buy", "2", "210", exit_reason=ExitReason.STOP_LOSS),  # -20
        fill("s3", "buy", "1", "100"),
        fill("s4", "sell", "1", "104", exit_reason=ExitReason.TRAILING_STOP),  # +4
        fill("s5", "buy", "1", "100"),
        fill("s6", "sell", "1", "101"),  # +1, no reason
    ]
    for f in legs:
        await publish_event(nc, approval(f))
    await book(stack, nc, legs[:1])
    await tick(nc, "190")
    await tick(nc, "215")
    await until(lambda: _range_is(dsn, D(190), D(215)))
    await book(stack, nc, legs[1:])
    [short] = await fetch(dsn, "SELECT * FROM position_cycles WHERE direction='short'")
    assert short["mae_pct"] == D("7.5") and short["mfe_pct"] == 5  # (215-200)/200, (200-190)/200

    [demo] = await rpc(nc, "stats", strategy="demo")
    reasons = demo["by_exit_reason"]
    assert sorted(reasons) == ["STOP_LOSS", "TRAILING_STOP", "signal"]
    assert D(reasons["STOP_LOSS"]["realized_pnl"]) == -20 and reasons["STOP_LOSS"]["wins"] == 0
    assert D(reasons["TRAILING_STOP"]["win_rate"]) == 1
    assert D(reasons["signal"]["avg_pnl"]) == 1
    assert D(demo["max_mae_pct"]) == D("7.5")


async def test_fill_rate_and_slippage_from_fills_and_order_events(stack, nc, config):
    """Order A: 1 ordered, 1 filled. Order B: 2 ordered, 0.5 filled, then canceled. Order C:
    still working (1 ordered, nothing filled): left out. With the marker order (0.1 of 0.1):
    fill rate = (1 + 0.5 + 0.1) / (1 + 2 + 0.1)."""
    await stack.start("position-ledger")
    a = fill("fa", "buy", "1", "100", arrival_price=D(100))
    b = fill("fb", "buy", "0.5", "101", arrival_price=D(100))
    c = fill("fc", "buy", "1", "100")
    for f, qty in ((a, "1"), (b, "2"), (c, "1")):
        await publish_event(nc, approval(f, quantity=D(qty)))
        await publish_event(
            nc,
            ev.OrderSubmitted(
                client_order_id=f.client_order_id,
                venue="paper",
                symbol=f.symbol,
                strategy="demo",
                side=f.side,
                quantity=D(qty),
                order_type=ev.OrderType.MARKET,
            ),
        )
    await book(stack, nc, [a, b])
    canceled = ev.OrderCanceled(
        client_order_id=b.client_order_id, venue="paper", symbol=b.symbol, strategy="demo"
    )
    await publish_event(nc, canceled)
    marker = fill("fm", "sell", "0.1", "100", strategy="demo")  # after the cancel, in order
    await publish_event(nc, approval(marker))
    await book(stack, nc, [marker])

    rows = await fetch(config.database.dsn, "SELECT * FROM ledger_orders ORDER BY client_order_id")
    by_id = {r["client_order_id"]: r for r in rows}
    assert by_id[b.client_order_id]["status"] == "closed"
    assert by_id[b.client_order_id]["close_reason"] == "canceled"
    assert by_id[c.client_order_id]["status"] == "submitted"
    [demo] = await rpc(nc, "stats", strategy="demo")
    # A, B and the marker (0.1 of 0.1) are finished; C is still working.
    assert demo["orders"] == 3 and demo["orders_filled"] == 3
    assert D(demo["fill_rate"]) == (D(1) + D("0.5") + D("0.1")) / (D(1) + D(2) + D("0.1"))
    # quantity-weighted: A 0 bps, B (101 - 100) / 100 = 100 bps on 0.5
    assert D(demo["avg_slippage_bps"]) == D(100) * D("0.5") / D("1.5")


async def test_fill_for_an_unknown_order_is_booked_flagged_and_alerted(stack, nc, config):
    dsn = config.database.dsn
    await stack.start("position-ledger")
    alerts = await collect(nc, "trading.alert.>")
    known = fill("k1", "buy", "1", "100")
    await publish_event(nc, approval(known))
    stray = fill("k2", "buy", "1", "100")  # its order was never approved nor submitted
    recon = fill("k3", "buy", "1", "100", reconciliation=True)  # booked by the reconciler
    await book(stack, nc, [known, stray, recon])

    flags = {
        r["trade_id"]: r["flags"] for r in await fetch(dsn, "SELECT trade_id, flags FROM fills")
    }
    assert flags == {"k1": "", "k2": "unknown_order", "k3": ""}
    [a] = await alerts.wait_for(lambda e: isinstance(e, ev.Alert))
    assert a.code is ev.AlertCode.UNKNOWN_FILL and a.severity is ev.Severity.WARNING
    assert a.context["client_order_id"] == stray.client_order_id
    assert a.context["flags"] == "unknown_order"
    [pos] = await fetch(dsn, "SELECT quantity FROM positions")
    assert pos["quantity"] == 3  # booked all the same


async def test_sessions_split_trades_and_run_metrics(stack, nc, config, nats_server):
    """Two runs of the ledger: each run is a session; its trades and return are its own."""
    await stack.start("position-ledger")
    first = [fill("p1", "buy", "1", "100"), fill("p2", "sell", "1", "110")]  # +10
    await book(stack, nc, first)
    await stack.stop("position-ledger")
    await stack.start("position-ledger")
    second = [fill("p3", "buy", "1", "100"), fill("p4", "sell", "1", "95")]  # -5
    await book(stack, nc, second)

    sessions = await rpc(nc, "sessions")
    assert len(sessions) == 2 and [s["current"] for s in sessions] == [True, False]
    now, before = sessions
    assert now["stats"]["trades"] == 1 and D(now["stats"]["realized_pnl"]) == -5
    assert before["stats"]["trades"] == 1 and D(before["stats"]["realized_pnl"]) == 10
    assert before["ended_at"] == now["started_at"] and now["ended_at"] is None
    assert D(now["start_equity"]["default"]) == D(100000) + 10

    [demo] = await rpc(nc, "stats", strategy="demo", session="current")
    assert demo["trades"] == 1 and D(demo["realized_pnl"]) == -5
    [demo] = await rpc(nc, "stats", strategy="demo", session=before["session_id"])
    assert demo["trades"] == 1 and D(demo["realized_pnl"]) == 10

    [acct] = await rpc(nc, "pnl")
    m = acct["metrics"]
    assert D(m["initial_capital"]) == 100000 and D(m["current_value"]) == 100005
    assert D(m["return_pct"]) == D("0.005") and m["total_trades"] == 4
    assert m["session"]["closed_trades"] == 1
    assert D(m["session"]["return_pct"]) == D(-5) / D(100010) * 100
    assert m["uptime_s"] >= 0 and D(m["current_drawdown"]) >= 0

    code, out, err = await cli("stats", "--nats", nats_server.url)
    assert code == 0, err
    assert "run metrics" in out and "initial_capital" in out and "per exit reason" in out
    code, out, err = await cli("sessions", "--nats", nats_server.url)
    assert code == 0 and now["session_id"] + " *" in out, err


async def test_cash_from_venue_balances(stack, nc, config):
    """cash_source = "venue": the first reported balance fixes the starting cash so that the
    ledger's cash equals the venue's then; later reports are shown, not absorbed."""
    cfg = msgspec.structs.replace(
        config,
        ledger=LedgerConfig(cash_source="venue", cash_currency="USDT"),
        accounts={"default": AccountConfig(starting_cash=D(1000))},
    )
    await stack.start("position-ledger", config=cfg)
    await book(stack, nc, [fill("v1", "buy", "1", "100", fee=D(1), fee_currency="USDT")])
    [acct] = await rpc(nc, "pnl")
    assert D(acct["snapshot"]["starting_cash"]) == 1000  # config until a venue reports

    report = ev.ReconReport(venue="paper", clean=True, balances={"USDT": D(5000), "BTC": D(1)})
    await publish_event(nc, report)
    [acct] = await until(lambda: _pnl_with(nc, "starting_cash", D(5101)))
    # ledger cash change then: -1 (fee) - 100 (cost of the open long) -> 5000 + 101
    assert D(acct["snapshot"]["cash"]) == 5000
    assert D(acct["metrics"]["venue_cash"]) == 5000

    await publish_event(nc, ev.ReconReport(venue="paper", clean=True, balances={"USDT": D(4990)}))
    [acct] = await until(lambda: _metric_is(nc, "venue_cash", D(4990)))
    assert D(acct["snapshot"]["starting_cash"]) == 5101  # the starting capital stays put
    assert D(acct["metrics"]["cash_minus_venue"]) == 10


async def _pnl_with(nc, field: str, value: Decimal) -> object:
    data = await rpc(nc, "pnl")
    return data if D(data[0]["snapshot"][field]) == value else None


async def _metric_is(nc, field: str, value: Decimal) -> object:
    data = await rpc(nc, "pnl")
    got = data[0]["metrics"].get(field)
    return data if got is not None and D(got) == value else None


async def test_replay_with_orders_exits_and_ticks_is_identical(stack, nc, config, nats_server):
    await stack.start("position-ledger")
    legs = [
        fill("r1", "buy", "1", "100"),
        fill("r2", "sell", "1", "90", exit_reason=ExitReason.STOP_LOSS),
        fill("r3", "buy", "1", "100"),  # unknown order: flagged the same way on replay
    ]
    await publish_event(nc, approval(legs[0]))
    await publish_event(nc, approval(legs[1]))
    await book(stack, nc, legs[:1])
    await tick(nc, "85")
    await until(lambda: _range_is(config.database.dsn, D(85), D(100)))
    await book(stack, nc, legs[1:])
    code, out, err = await cli(
        "replay", "--json", "--nats", nats_server.url, "--dsn", config.database.dsn
    )
    assert code == 0, out + err
    result = json.loads(out)
    assert result["identical"] is True and result["replayed"] == 5  # 3 fills + 2 approvals


async def test_an_unknown_cash_source_is_refused_at_start(stack, config):
    cfg = msgspec.structs.replace(config, ledger=LedgerConfig(cash_source="broker"))
    with pytest.raises(ConfigError, match="cash_source"):
        await stack.start("position-ledger", config=cfg)


async def test_fills_from_the_real_pipeline_are_known_orders(stack, nc, config):
    """Signal -> risk-gate -> gateway -> ledger: the approval and the gateway's submission
    reach the ledger before the fill, so nothing is flagged and the fill rate is 1."""
    await stack.start("signal", "risk-gate", "execution-gateway", "position-ledger")
    await set_price(nc, "paper", "BTC/USDT", "20000")
    positions = await collect(nc, "trading.position.>")
    alerts = await collect(nc, "trading.alert.>")
    body = {
        "id": "known-1", "strategy": "demo", "venue": "paper", "symbol": "BTC/USDT",
        "side": "buy", "quantity": "0.5",
    }  # fmt: skip
    await publish_raw(nc, "trading.signal.demo", body)
    [p] = await positions.wait_for(lambda e: isinstance(e, ev.PositionChanged))
    [f] = await fetch(config.database.dsn, "SELECT flags, client_order_id FROM fills")
    assert f["flags"] == ""
    [o] = await fetch(config.database.dsn, "SELECT * FROM ledger_orders")
    assert o["client_order_id"] == f["client_order_id"] and o["approved_quantity"] == D("0.5")
    assert o["submitted_quantity"] == D("0.5")
    [demo] = await rpc(nc, "stats", strategy="demo")
    assert demo["orders"] == 1 and D(demo["fill_rate"]) == 1
    assert not alerts.matching(lambda e: getattr(e, "code", None) is ev.AlertCode.UNKNOWN_FILL)
    assert p.quantity == D("0.5")


async def test_gateway_quality_reports_and_other_order_events(stack, nc, config, nats_server):
    """ExecutionQuality reports are aggregated per strategy; an order event the ledger does
    not book (an algo's progress) is acked, not dead-lettered, and booking goes on."""
    await stack.start("position-ledger")
    dead = await collect(nc, "trading.deadletter.>")
    base = {"venue": "paper", "symbol": "BTC/USDT", "strategy": "demo", "side": ev.Side.BUY}
    reports = [
        ev.ExecutionQuality(
            client_order_id="q1", quantity=D(1), filled_quantity=D(1), fill_rate=D(1),
            time_to_first_fill_ms=100, implementation_shortfall=D("0.5"),
            implementation_shortfall_bps=D(5), **base,
        ),
        ev.ExecutionQuality(
            client_order_id="q2", quantity=D(3), filled_quantity=D(3), fill_rate=D(1),
            time_to_first_fill_ms=300, implementation_shortfall=D("1.5"),
            implementation_shortfall_bps=D(1), children=3, **base,
        ),
    ]  # fmt: skip
    for r in reports:
        await publish_event(nc, r)
    await publish_event(
        nc,
        ev.AlgoProgress(
            client_order_id="q2", kind=ev.AlgoKind.TWAP, status=ev.AlgoStatus.WORKING,
            quantity=D(3), **base,
        ),
    )  # fmt: skip
    await book(stack, nc, [fill("q-marker", "buy", "1", "100")])  # booked after them, in order
    [demo] = await rpc(nc, "stats", strategy="demo")
    assert demo["quality_reports"] == 2 and D(demo["avg_time_to_fill_ms"]) == 200
    assert D(demo["implementation_shortfall"]) == 2
    assert D(demo["implementation_shortfall_bps"]) == (D(5) * 1 + D(1) * 3) / 4
    assert dead.matching(lambda e: True) == []
    code, out, err = await cli(
        "replay", "--json", "--nats", nats_server.url, "--dsn", config.database.dsn
    )
    assert code == 0, out + err
    assert json.loads(out)["replayed"] == 3  # two reports and the fill; the progress skipped
