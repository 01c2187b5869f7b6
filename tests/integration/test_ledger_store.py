"""The ledger's batch booking against a real PostgreSQL, without the bus: mixed batches of
booked and new fills (the optimistic path's rollback and redo), order events in the batch,
and ticks widening open cycles."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import asyncpg
import pytest

from tradebus_common import events as ev
from tradebus_position_ledger.migrations import migrate
from tradebus_position_ledger.store import record_batch, widen_cycles

D = Decimal


def fill(trade_id: str, side: str, qty: str, price: str, **kw) -> ev.Fill:
    return ev.Fill(
        venue="paper",
        symbol=kw.pop("symbol", "BTC/USDT"),
        strategy="demo",
        client_order_id=f"c-{trade_id}",
        trade_id=trade_id,
        side=ev.Side(side),
        quantity=D(qty),
        price=D(price),
        **kw,
    )


@pytest.fixture
async def conn(database):
    c = await asyncpg.connect(database)
    await migrate(c)
    yield c
    await c.close()


async def test_a_batch_mixing_booked_and_new_fills_books_each_once(conn):
    a, b, c = (
        fill("a", "buy", "1", "100"),
        fill("b", "buy", "1", "110"),
        fill("c", "sell", "2", "120"),
    )
    [ra] = await record_batch(conn, [(a, 1)], {"demo"}, "t")
    assert ra.new
    # a again (booked), b new, b again in the same batch, c new and closing the cycle
    out = await record_batch(conn, [(a, 5), (b, 6), (b, 7), (c, 8)], {"demo"}, "t")
    assert [r.new for r in out] == [False, True, False, True]
    assert out[0].fill_id == a.id and out[0].position == ra.position
    assert out[2].position == out[1].position
    [pos] = await conn.fetch("SELECT quantity, realized_pnl, fill_count FROM positions")
    assert (pos["quantity"], pos["realized_pnl"], pos["fill_count"]) == (0, 30, 3)
    assert await conn.fetchval("SELECT count(*) FROM fills") == 3
    assert await conn.fetchval("SELECT count(*) FROM position_cycles") == 1
    assert await conn.fetchval("SELECT stream_seq FROM processed_sequence") == 8


async def test_order_events_in_a_batch_make_later_fills_known(conn):
    f = fill("k", "buy", "1", "100")
    approved = ev.OrderApproved(
        intent_id="i", strategy="demo", venue="paper", symbol="BTC/USDT", side=ev.Side.BUY,
        quantity=D(1), order_type=ev.OrderType.MARKET, client_order_id=f.client_order_id,
    )  # fmt: skip
    early = fill("e", "buy", "1", "100")
    out = await record_batch(conn, [(early, 1), (approved, 2), (f, 3)], {"demo"}, "t")
    assert out[1] is None and out[0].flags == "unknown_order" and out[2].flags == ""
    [o] = await conn.fetch("SELECT status, approved_quantity FROM ledger_orders")
    assert (o["status"], o["approved_quantity"]) == ("approved", 1)
    # an older event of the same order never moves it back
    await record_batch(conn, [(approved, 2)], {"demo"}, "t")
    assert await conn.fetchval("SELECT count(*) FROM ledger_orders") == 1


async def test_ticks_widen_only_open_cycles_from_their_opening_on(conn):
    f = fill("o", "sell", "1", "100")
    await record_batch(
        conn, [(f, 1), (fill("x", "buy", "1", "5", symbol="ETH/USDT"), 2)], None, "t"
    )
    await record_batch(conn, [(fill("y", "sell", "1", "5", symbol="ETH/USDT"), 3)], None, "t")
    ticks = [
        ev.MarketTick(venue="paper", symbol="BTC/USDT", price=D(50), ts=f.ts - timedelta(1)),
        ev.MarketTick(venue="paper", symbol="BTC/USDT", price=D(97)),
        ev.MarketTick(venue="paper", symbol="BTC/USDT", price=D(104)),
        ev.MarketTick(venue="paper", symbol="ETH/USDT", price=D(1)),  # flat: untouched
    ]
    await widen_cycles(conn, ticks)
    rows = await conn.fetch("SELECT symbol, cycle_low, cycle_high FROM positions ORDER BY 1")
    assert [tuple(r) for r in rows] == [("BTC/USDT", 97, 104), ("ETH/USDT", None, None)]
    [closed] = await record_batch(conn, [(fill("z", "buy", "1", "101"), 4)], None, "t")
    assert closed.closed is not None
    assert closed.closed.mae_pct == 4 and closed.closed.mfe_pct == 3  # short: 104 up, 97 down
