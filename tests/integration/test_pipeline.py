"""Signal -> intent -> approval -> fill -> position, in-process services on real NATS + PostgreSQL."""

from __future__ import annotations

from decimal import Decimal

import asyncpg
import msgspec

from tradebus_common import events as ev
from tradebus_common.codec import encode

from ..support.bus import collect, publish_raw, set_price

ALL = ("alerting", "signal", "risk-gate", "execution-gateway", "position-ledger")


def signal_body(sid: str, qty: str = "0.5", symbol: str = "BTC/USDT", **extra) -> dict:
    return {
        "id": sid,
        "strategy": "demo",
        "venue": "paper",
        "symbol": symbol,
        "side": "buy",
        "quantity": qty,
        **extra,
    }


async def position_row(dsn: str, symbol: str = "BTC/USDT") -> asyncpg.Record:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchrow("SELECT * FROM positions WHERE symbol=$1", symbol)
    finally:
        await conn.close()


async def count(dsn: str, sql: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


async def test_same_signal_twice_gives_one_order_and_one_fill(stack, nc, config):
    await stack.start(*ALL)
    await set_price(nc, "paper", "BTC/USDT", "20000")
    fills = await collect(nc, "trading.fill.>")
    positions = await collect(nc, "trading.position.>")
    orders = await collect(nc, "trading.order.>")
    # The second copy has no Nats-Msg-Id, so the stream keeps it: the signal service must dedup.
    await publish_raw(nc, "trading.signal.demo", signal_body("dup-1"))
    await positions.wait_for(lambda e: isinstance(e, ev.PositionChanged))
    await publish_raw(nc, "trading.signal.demo", signal_body("dup-1"))
    await publish_raw(nc, "trading.signal.demo", signal_body("after-dup", qty="0.25"))
    await positions.wait_for(lambda e: isinstance(e, ev.PositionChanged), count=2)

    submitted = orders.matching(lambda e: isinstance(e, ev.OrderSubmitted))
    assert len(submitted) == 2  # dup-1 once, after-dup once
    assert len(fills.matching(lambda e: e.correlation_id == "dup-1")) == 1
    row = await position_row(config.database.dsn)
    assert row["quantity"] == Decimal("0.75")
    assert await count(config.database.dsn, "SELECT count(*) FROM fills") == 2


async def test_redelivered_fill_is_a_no_op(stack, nc, config):
    await stack.start("position-ledger")
    positions = await collect(nc, "trading.position.>")
    fill = ev.Fill(
        venue="paper",
        symbol="BTC/USDT",
        strategy="demo",
        client_order_id="c1",
        trade_id="t-1",
        side=ev.Side.BUY,
        quantity=Decimal("2"),
        price=Decimal("100"),
        fee=Decimal("0.2"),
        fee_currency="USDT",
    )
    await publish_raw(nc, "trading.fill.paper.BTC-USDT", encode(fill), {"Nats-Msg-Id": fill.id})
    # A redelivery from a replay: a new stream message (different Nats-Msg-Id), same trade id.
    await publish_raw(nc, "trading.fill.paper.BTC-USDT", encode(fill), {"Nats-Msg-Id": "again"})
    marker = ev.Fill(
        venue="paper",
        symbol="ETH/USDT",
        strategy="demo",
        client_order_id="c2",
        trade_id="t-2",
        side=ev.Side.SELL,
        quantity=Decimal("1"),
        price=Decimal("10"),
    )
    await publish_raw(nc, "trading.fill.paper.ETH-USDT", encode(marker))
    # The ledger consumes in order, so once the marker is booked the duplicate was handled.
    await positions.wait_for(lambda e: e.symbol == "ETH/USDT")
    # Re-announced under the same id (core subscribers see the copy; the stream keeps one).
    announced = positions.matching(lambda e: e.symbol == "BTC/USDT")
    assert {e.id for e in announced} == {announced[0].id}
    assert all(e.quantity == Decimal("2") for e in announced)
    row = await position_row(config.database.dsn)
    assert row["quantity"] == Decimal("2")
    assert row["avg_price"] == Decimal("100")
    assert row["realized_pnl"] == Decimal("-0.2")
    assert await count(config.database.dsn, "SELECT count(*) FROM fills") == 2


async def test_max_notional_denies_with_reason_and_numbers(stack, nc, config):
    await stack.start("signal", "risk-gate")
    await set_price(nc, "paper", "BTC/USDT", "60000")
    denied = await collect(nc, "trading.order.denied.>")
    await publish_raw(nc, "trading.signal.demo", signal_body("big", qty="1"))  # 60k > 50k
    [d] = await denied.wait_for(lambda e: isinstance(e, ev.OrderDenied))
    assert d.reason is ev.DenyReason.MAX_NOTIONAL
    assert d.limit == Decimal("50000") and d.current == Decimal("60000")
    assert d.correlation_id == "big"


async def test_intent_without_market_price_is_denied(stack, nc, config):
    await stack.start("signal", "risk-gate")
    denied = await collect(nc, "trading.order.denied.>")
    await publish_raw(nc, "trading.signal.demo", signal_body("no-price", symbol="ETH/USDT"))
    [d] = await denied.wait_for(lambda e: isinstance(e, ev.OrderDenied))
    assert d.reason is ev.DenyReason.NO_MARKET_PRICE


async def test_trace_context_and_correlation_flow_from_signal_to_position(stack, nc):
    await stack.start(*ALL)
    await set_price(nc, "paper", "BTC/USDT", "1000")
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    fills = await collect(nc, "trading.fill.>")
    positions = await collect(nc, "trading.position.>")
    await publish_raw(
        nc,
        "trading.signal.demo",
        signal_body("traced"),
        {"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"},
    )
    [position] = await positions.wait_for(lambda e: isinstance(e, ev.PositionChanged))
    [fill] = fills.events
    assert fill.correlation_id == position.correlation_id == "traced"
    assert position.causation_id == fill.id
    for headers in (fills.headers[0], positions.headers[0]):
        assert headers["traceparent"].split("-")[1] == trace_id
        assert headers["Nats-Msg-Id"]


async def test_order_without_market_data_is_rejected_with_a_reason_code(stack, nc, config):
    """A gate told to pass limit orders without a tick: the venue has no price either, so it
    rejects with a code, and nothing fills."""
    lenient = msgspec.structs.replace(
        config, risk=msgspec.structs.replace(config.risk, deny_without_market_data=False)
    )
    await stack.start("signal", "risk-gate", "execution-gateway", config=lenient)
    orders = await collect(nc, "trading.order.event.>")
    await publish_raw(
        nc,
        "trading.signal.demo",
        signal_body("no-tick", symbol="ETH/USDT", order_type="limit", limit_price="10"),
    )
    [rejected] = await orders.wait_for(lambda e: isinstance(e, ev.OrderRejected))
    assert rejected.reason is ev.RejectReason.NO_MARKET_DATA
    assert rejected.correlation_id == "no-tick"
