"""position-ledger on real NATS and PostgreSQL: batched ingest, idempotency, mark-to-market,
the query API and CLI, replay, migrations."""

from __future__ import annotations

import asyncio
import json
import sys
from decimal import Decimal
from pathlib import Path

import asyncpg
import msgspec
import pytest

from tradebus_common import events as ev
from tradebus_common.bus import ensure_topology
from tradebus_common.codec import encode
from tradebus_common.config import AccountConfig, LedgerConfig
from tradebus_common.errors import ConfigError, ErrorCode
from tradebus_position_ledger.migrations import available, migrate

from ..support.bus import collect, publish_event, publish_raw, set_price

D = Decimal


def fill(trade_id: str, side: str, qty: str, price: str, **kw) -> ev.Fill:
    return ev.Fill(
        venue="paper",
        symbol=kw.pop("symbol", "BTC/USDT"),
        strategy=kw.pop("strategy", "demo"),
        client_order_id=f"c-{trade_id}",
        trade_id=trade_id,
        side=ev.Side(side),
        quantity=D(qty),
        price=D(price),
        **kw,
    )


async def fetch(dsn: str, sql: str, *args):
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def cli(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tradebus_common.cli.main", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode, out.decode(), err.decode()


SESSION = [  # a mixed session: partial closes, a flip, fees in base and quote, a short
    fill("m1", "buy", "2", "100", fee=D("0.2"), fee_currency="USDT", arrival_price=D("99.9")),
    fill("m2", "buy", "1", "130", fee=D("0.001"), fee_currency="BTC"),
    fill("m3", "sell", "1.5", "140", fee=D("0.21"), fee_currency="USDT"),
    fill("m4", "sell", "3", "90", fee=D("0.27"), fee_currency="USDT"),  # flip to short 1.5
    fill("m5", "buy", "1.5", "80"),  # closes the short
    fill("m6", "sell", "2", "3000", symbol="ETH/USDT", strategy="mr"),
    fill("m7", "buy", "0.5", "2900", symbol="ETH/USDT", strategy="mr", fee=D("1")),
]


async def book(stack, nc, fills: list[ev.Fill]) -> None:
    positions = await collect(nc, "trading.position.>")
    for f in fills:
        await publish_event(nc, f)
    ids = {f.id for f in fills}
    await positions.wait_for(lambda e: e.fill_id in ids, count=len(ids), timeout=20)


async def test_a_fetched_batch_is_booked_in_one_transaction(stack, nc, config):
    n = 40
    fills = [fill(f"b{i}", "buy", "0.1", str(100 + i)) for i in range(n)]
    await ensure_topology(nc.jetstream(), config.bus, 30)
    for f in fills:  # all in the stream before the ledger starts: one fetch takes them all
        await publish_event(nc, f)
    positions = await collect(nc, "trading.position.>")
    await stack.start("position-ledger")
    await positions.wait_for(lambda e: isinstance(e, ev.PositionChanged), count=n, timeout=20)
    dsn = config.database.dsn
    [row] = await fetch(dsn, "SELECT count(*) AS n, count(DISTINCT xmin::text) AS txs FROM fills")
    assert row["n"] == n and row["txs"] < n  # xmin: the transaction that wrote each row
    [seq] = await fetch(dsn, "SELECT stream_seq FROM processed_sequence")
    [last] = await fetch(dsn, "SELECT max(stream_seq) AS s FROM fills")
    assert seq["stream_seq"] == last["s"] == n
    [pos] = await fetch(dsn, "SELECT quantity, fill_count FROM positions")
    assert pos["quantity"] == D("4.0") and pos["fill_count"] == n


async def test_poison_fill_in_a_batch_is_dead_lettered_alone(stack, nc, config):
    good1, good2 = fill("g1", "buy", "1", "100"), fill("g2", "buy", "1", "102")
    bad = msgspec.json.decode(encode(fill("bad", "buy", "1", "1")))
    bad["price"] = "0"  # passes the schema, fails the table's check
    await ensure_topology(nc.jetstream(), config.bus, 30)
    await publish_event(nc, good1)
    await publish_raw(nc, "trading.fill.paper.BTC-USDT", bad)
    await publish_event(nc, good2)
    dead = await collect(nc, "trading.deadletter.>")
    positions = await collect(nc, "trading.position.>")
    await stack.start("position-ledger")
    await positions.wait_for(lambda e: e.fill_id in {good1.id, good2.id}, count=2)
    [d] = await dead.wait_for(lambda e: isinstance(e, ev.MessageDeadLettered), timeout=20)
    assert d.reason is ErrorCode.MAX_DELIVERIES and d.stream_seq == 2
    rows = await fetch(config.database.dsn, "SELECT trade_id FROM fills ORDER BY trade_id")
    assert [r["trade_id"] for r in rows] == ["g1", "g2"]


async def test_every_fill_twice_and_out_of_order_after_restart_changes_nothing(stack, nc, config):
    await stack.start("position-ledger")
    await book(stack, nc, SESSION)
    dsn = config.database.dsn
    before = await fetch(dsn, "SELECT * FROM positions ORDER BY symbol, strategy")
    cycles = await fetch(dsn, "SELECT * FROM position_cycles ORDER BY closing_fill_id")
    await stack.stop("position-ledger")
    positions = await collect(nc, "trading.position.>")
    for f in reversed(SESSION):  # redelivered as new stream messages, in reverse order
        await publish_raw(nc, "trading.fill.paper.x", encode(f), {"Nats-Msg-Id": f"again-{f.id}"})
    await stack.start("position-ledger")
    marker = fill("marker", "buy", "1", "1", symbol="SOL/USDT")
    await publish_event(nc, marker)
    await positions.wait_for(lambda e: e.fill_id == marker.id)  # booked in order: all seen
    re_announced = positions.matching(lambda e: e.fill_id != marker.id)
    assert {e.fill_id for e in re_announced} == {f.id for f in SESSION}
    after = await fetch(
        dsn, "SELECT * FROM positions WHERE symbol != 'SOL/USDT' ORDER BY symbol, strategy"
    )
    assert [dict(r) | {"updated_at": 0} for r in after] == [
        dict(r) | {"updated_at": 0} for r in before
    ]
    assert await fetch(dsn, "SELECT * FROM position_cycles ORDER BY closing_fill_id") == cycles
    [n] = await fetch(dsn, "SELECT count(*) AS n FROM fills")
    assert n["n"] == len(SESSION) + 1


async def test_accounting_of_a_mixed_session(stack, nc, config):
    await stack.start("position-ledger")
    await book(stack, nc, SESSION)
    rows = await fetch(config.database.dsn, "SELECT * FROM positions ORDER BY symbol")
    btc, eth = rows[0], rows[1]
    # m1+m2: 3 @ cost 330, fees 0.2 + 0.13; m3 sells 1.5 @ 140: +1.5*(140-110) - 0.21;
    # m4 closes 1.5 @ 90: 1.5*(90-110) and opens short 1.5 @ 90, fee 0.27; m5 covers @ 80.
    assert btc["quantity"] == 0
    assert btc["realized_pnl"] == D("45") - D("30") + D("15") - D("0.2") - D("0.13") - D(
        "0.21"
    ) - D("0.27")
    assert eth["quantity"] == D("-1.5") and eth["realized_pnl"] == D(50) - 1
    cycles = await fetch(
        config.database.dsn, "SELECT * FROM position_cycles ORDER BY closed_at, closing_fill_id"
    )
    assert [(c["direction"], c["realized_pnl"]) for c in cycles] == [
        ("long", D("45") - D("30") - D("0.2") - D("0.13") - D("0.21") - D("0.27")),
        ("short", D("15")),
    ]


def approval(f: ev.Fill, **kw) -> ev.OrderApproved:
    return ev.OrderApproved(
        intent_id=f"i-{f.client_order_id}",
        strategy=f.strategy,
        venue=f.venue,
        symbol=f.symbol,
        side=f.side,
        quantity=kw.pop("quantity", f.quantity),
        order_type=ev.OrderType.MARKET,
        client_order_id=f.client_order_id,
        **kw,
    )


async def test_fill_for_an_unknown_strategy_is_booked_flagged_and_alerted(stack, nc, config):
    await stack.start("position-ledger")
    alerts = await collect(nc, "trading.alert.>")
    stray = fill("u1", "buy", "1", "100", strategy="ghost")
    await publish_event(nc, approval(stray))  # a known order: only the strategy is unknown
    await book(stack, nc, [stray])
    [a] = await alerts.wait_for(lambda e: isinstance(e, ev.Alert))
    assert a.code is ev.AlertCode.UNKNOWN_FILL and a.context["strategy"] == "ghost"
    [row] = await fetch(config.database.dsn, "SELECT flags FROM fills")
    assert row["flags"] == "unknown_strategy"


@pytest.fixture
def mtm_config(config):
    ledger = LedgerConfig(snapshot_interval_s=30, snapshot_min_interval_ms=50)
    return msgspec.structs.replace(
        config, ledger=ledger, accounts={"default": AccountConfig(starting_cash=D(10000))}
    )


async def test_mark_to_market_drawdown_on_a_scripted_price_path(stack, nc, mtm_config):
    snaps = await collect(nc, "trading.ledger.snapshot.>")
    await stack.start("position-ledger", config=mtm_config)
    await snaps.wait_for(lambda s: s.equity == D(10000) and s.cash == D(10000))
    await set_price(nc, "paper", "BTC/USDT", "100")
    await publish_event(nc, fill("p1", "buy", "2", "100", fee=D("1"), fee_currency="USDT"))
    path = [  # price -> (equity, high-water mark, drawdown)
        ("100", D(9999), D(10000), D(1)),
        ("120", D(10039), D(10039), D(0)),
        ("90", D(9979), D(10039), D(60)),
        ("110", D(10019), D(10039), D(20)),
    ]
    for price, equity, hwm, dd in path:
        await set_price(nc, "paper", "BTC/USDT", price)
        [s] = (await snaps.wait_for(lambda s, e=equity: s.equity == e))[-1:]
        assert (s.high_water_mark, s.drawdown) == (hwm, dd)
        assert s.cash == D(10000) - 200 - 1
        assert s.daily_pnl == equity - D(10000)
        assert s.gross_exposure == s.net_exposure == 2 * D(price)
        [p] = s.positions
        assert p.mark_price == D(price) and p.unrealized_pnl == 2 * (D(price) - 100)
    assert s.drawdown_pct == D(20) / D(10039) * 100
    rows = await fetch(
        mtm_config.database.dsn, "SELECT max(high_water_mark) AS h FROM equity_snapshots"
    )
    assert rows[0]["h"] == D(10039)
    [day] = await fetch(mtm_config.database.dsn, "SELECT * FROM daily_pnl")
    assert day["open_equity"] == D(10000) and day["pnl"] == D(19)


async def test_query_api_and_cli(stack, nc, config, nats_server, tmp_path: Path):
    await stack.start("position-ledger")
    await set_price(nc, "paper", "ETH/USDT", "2800")
    await book(stack, nc, SESSION)
    code, out, err = await cli("positions", "--json", "--nats", nats_server.url)
    assert code == 0, err
    [eth] = json.loads(out)
    assert eth["symbol"] == "ETH/USDT" and D(eth["quantity"]) == D("-1.5")
    assert D(eth["mark_price"]) == 2800 and D(eth["unrealized_pnl"]) == D("-1.5") * (2800 - 3000)

    code, out, err = await cli("pnl", "--json", "--nats", nats_server.url)
    assert code == 0, err
    [acct] = json.loads(out)
    assert D(acct["snapshot"]["unrealized_pnl"]) == D(300)
    assert acct["metrics"]["total_trades"] == len(SESSION)

    code, out, err = await cli("stats", "--strategy", "demo", "--json", "--nats", nats_server.url)
    assert code == 0, err
    [demo] = json.loads(out)
    assert demo["trades"] == 2 and demo["wins"] == 2 and D(demo["win_rate"]) == 1
    assert D(demo["realized_pnl"]) == D("29.19") and demo["profit_factor"] is None
    assert D(demo["avg_slippage_bps"]) == (D(100) - D("99.9")) / D("99.9") * 10000

    report = tmp_path / "report.csv"
    code, out, err = await cli(
        "report", "--format", "csv", "--out", str(report), "--nats", nats_server.url
    )
    assert code == 0, err
    lines = report.read_text().splitlines()
    assert lines[0].startswith("fill_id,") and len(lines) == len(SESSION) + 1


async def test_replay_after_a_mixed_session_is_identical(stack, nc, config, nats_server):
    await stack.start("position-ledger")
    await book(stack, nc, SESSION)
    await publish_raw(nc, "trading.fill.paper.x", encode(SESSION[0]), {"Nats-Msg-Id": "dup"})
    await publish_raw(nc, "trading.fill.paper.x", b"not json")
    marker = fill("z", "buy", "1", "5", symbol="SOL/USDT")
    await book(stack, nc, [marker])
    dsn = config.database.dsn
    code, out, err = await cli("replay", "--json", "--nats", nats_server.url, "--dsn", dsn)
    assert code == 0, out + err
    result = json.loads(out)
    assert result["identical"] is True and result["replayed"] == len(SESSION) + 2
    assert result["unreadable"] == 1 and "replayed up to stream seq" in err

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "UPDATE positions SET realized_pnl = realized_pnl + 0.01 WHERE symbol='ETH/USDT'"
        )
    finally:
        await conn.close()
    code, out, err = await cli("replay", "--nats", nats_server.url, "--dsn", dsn)
    assert code == 1 and "DIFFERENT" in out and "positions only_live" in out


async def test_database_newer_than_the_code_is_refused(database):
    conn = await asyncpg.connect(database)
    try:
        assert await migrate(conn) == [m.version for m in available()]
        assert await migrate(conn) == []  # idempotent
        await conn.execute("INSERT INTO schema_migrations (version, name) VALUES (999, 'future')")
        with pytest.raises(ConfigError, match="newer than this code"):
            await migrate(conn)
    finally:
        await conn.close()
