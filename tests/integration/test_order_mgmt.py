"""Cancel by client order id, modify as cancel-confirm-replace, order TTL and unfilled
timeout, and execution quality on a scripted price path (E4, E9), on real NATS."""

from __future__ import annotations

import asyncio
import sys
from decimal import Decimal

import msgspec

from tradebus_common import events as ev
from tradebus_common.config import ExecutionConfig, ExecutionTimeouts, VenueConfig
from tradebus_common.ids import client_order_id

from ..support.bus import collect, publish_event

PAPER = "paper"


def approved(
    n: int, qty: str = "1", limit: str | None = "99", side: ev.Side = ev.Side.BUY
) -> ev.OrderApproved:
    return ev.OrderApproved(
        id=f"approved-{n}",
        correlation_id=f"sig-{n}",
        intent_id=f"intent-{n}",
        strategy="demo",
        venue=PAPER,
        symbol="BTC/USDT",
        side=side,
        quantity=Decimal(qty),
        order_type=ev.OrderType.LIMIT if limit else ev.OrderType.MARKET,
        limit_price=Decimal(limit) if limit else None,
        client_order_id=client_order_id(f"intent-{n}"),
    )


async def tick(nc, price: str, volume: str | None = None) -> None:
    await publish_event(
        nc,
        ev.MarketTick(
            venue=PAPER,
            symbol="BTC/USDT",
            price=Decimal(price),
            volume=Decimal(volume) if volume else None,
        ),
    )


def of(cid: str, kind: type):
    return lambda e: isinstance(e, kind) and e.client_order_id == cid


async def resting(stack, nc, order: ev.OrderApproved, config=None):
    await stack.start("execution-gateway", config=config)
    await tick(nc, "100")
    orders = await collect(nc, "trading.order.>")
    fills = await collect(nc, "trading.fill.>")
    await publish_event(nc, order)
    await orders.wait_for(of(order.client_order_id, ev.OrderAccepted))
    return orders, fills


async def test_cancel_by_client_order_id_and_the_order_never_fills(stack, nc):
    order = approved(1)
    orders, fills = await resting(stack, nc, order)
    cmd = ev.CancelOrder(client_order_id=order.client_order_id, operator="alice", detail="fat")
    await publish_event(nc, cmd)
    [canceled] = await orders.wait_for(of(order.client_order_id, ev.OrderCanceled))
    assert canceled.reason is ev.CancelReason.OPERATOR and canceled.causation_id == cmd.id

    again = ev.CancelOrder(client_order_id=order.client_order_id, operator="alice")
    await publish_event(nc, again)
    [refused] = await orders.wait_for(lambda e: isinstance(e, ev.OrderCommandRejected))
    assert refused.reason is ev.CommandRejectReason.NOT_WORKING and refused.command_id == again.id
    unknown = ev.CancelOrder(client_order_id="tbnosuchorder", operator="alice")
    await publish_event(nc, unknown)
    await orders.wait_for(
        lambda e: (
            isinstance(e, ev.OrderCommandRejected)
            and e.reason is ev.CommandRejectReason.UNKNOWN_ORDER
        )
    )
    marker = approved(2, limit=None)  # a market order: proves the tick below was processed
    await tick(nc, "90")
    await publish_event(nc, marker)
    await fills.wait_for(of(marker.client_order_id, ev.Fill))
    assert not fills.matching(of(order.client_order_id, ev.Fill))


async def test_modify_after_a_partial_fill_replaces_only_the_remainder(stack, nc):
    order = approved(3, qty="2")
    orders, fills = await resting(stack, nc, order)
    await tick(nc, "98.9", volume="0.5")  # 0.5 of 2 fills at 99
    await fills.wait_for(of(order.client_order_id, ev.Fill))
    cmd = ev.ModifyOrder(client_order_id=order.client_order_id, limit_price=Decimal("98.5"))
    await publish_event(nc, cmd)
    new_cid = client_order_id(cmd.id)
    [replacement] = await orders.wait_for(of(new_cid, ev.OrderSubmitted))
    assert replacement.quantity == Decimal("1.5") and replacement.limit_price == Decimal("98.5")
    [canceled] = orders.matching(of(order.client_order_id, ev.OrderCanceled))
    assert canceled.reason is ev.CancelReason.REPLACED
    assert orders.events.index(canceled) < orders.events.index(replacement)
    await tick(nc, "98")
    await fills.wait_for(of(new_cid, ev.Fill))
    assert sum(f.quantity for f in fills.events) == Decimal("2")


async def test_modify_racing_a_fill_never_doubles_the_exposure(stack, nc):
    order = approved(4, qty="2")
    orders, fills = await resting(stack, nc, order)
    cmd = ev.ModifyOrder(client_order_id=order.client_order_id, limit_price=Decimal("98.5"))
    # The crossing tick and the modify race: either the old order fills first (nothing to
    # replace) or it is canceled first (the replacement takes the whole rest).
    await asyncio.gather(tick(nc, "98"), publish_event(nc, cmd))
    await orders.wait_for(
        lambda e: (
            (isinstance(e, ev.OrderSubmitted) and e.client_order_id == client_order_id(cmd.id))
            or (isinstance(e, ev.OrderCommandRejected) and e.command_id == cmd.id)
        )
    )
    await tick(nc, "97")  # fills a resting replacement, if there is one
    marker = approved(5, limit=None)
    await publish_event(nc, marker)
    await fills.wait_for(of(marker.client_order_id, ev.Fill))
    ours = [f for f in fills.events if f.client_order_id != marker.client_order_id]
    assert sum(f.quantity for f in ours) == Decimal("2")


async def test_order_ttl_cancels_a_resting_order_and_reports_its_quality(stack, nc, config):
    cfg = msgspec.structs.replace(config, execution=ExecutionConfig(order_ttl_s=0.3))
    order = approved(6)
    orders, _ = await resting(stack, nc, order, cfg)
    [canceled] = await orders.wait_for(of(order.client_order_id, ev.OrderCanceled))
    assert canceled.reason is ev.CancelReason.TTL_EXPIRED
    [quality] = await orders.wait_for(of(order.client_order_id, ev.ExecutionQuality))
    assert quality.fill_rate == 0 and quality.filled_quantity == 0
    assert quality.time_to_first_fill_ms is None


async def test_unfilled_timeout_per_strategy(stack, nc, config):
    execution = ExecutionConfig(
        order_ttl_s=600, strategies={"demo": ExecutionTimeouts(unfilled_timeout_s=0.3)}
    )
    order = approved(7)
    orders, _ = await resting(
        stack, nc, order, msgspec.structs.replace(config, execution=execution)
    )
    [canceled] = await orders.wait_for(of(order.client_order_id, ev.OrderCanceled))
    assert canceled.reason is ev.CancelReason.UNFILLED_TIMEOUT


async def test_quality_of_a_market_buy_on_a_scripted_price(stack, nc, config):
    venue = VenueConfig(symbols=["BTC/USDT"], slippage_bps=Decimal("5"))
    cfg = msgspec.structs.replace(config, venues={PAPER: venue})
    await stack.start("execution-gateway", config=cfg)
    await tick(nc, "100")
    orders = await collect(nc, "trading.order.>")
    order = approved(8, qty="2", limit=None)
    await publish_event(nc, order)
    [q] = await orders.wait_for(of(order.client_order_id, ev.ExecutionQuality))
    # filled 2 at 100.05 (5 bps of slippage), taker fee 0.1%: 0.2001
    assert q.avg_price == Decimal("100.05") and q.arrival_price == Decimal("100")
    assert q.slippage_bps == Decimal("5.00") and q.fill_rate == Decimal("1")
    assert q.fees == Decimal("0.20010000")
    assert q.implementation_shortfall == Decimal("0.30010000")  # 2 x 0.05 + fees
    assert q.implementation_shortfall_bps == Decimal("15.01")  # of 2 x 100
    assert q.time_to_first_fill_ms is not None and q.time_to_first_fill_ms >= 0


async def test_quality_of_a_resting_sell_filled_later_at_a_better_price(stack, nc):
    order = approved(9, limit="101", side=ev.Side.SELL)
    orders, _ = await resting(stack, nc, order)
    await tick(nc, "101.5")
    [q] = await orders.wait_for(of(order.client_order_id, ev.ExecutionQuality))
    # sold at 101 (maker) against an arrival of 100: 100 bps better than arrival
    assert q.avg_price == Decimal("101") and q.slippage_bps == Decimal("-100.00")
    assert q.fees == Decimal("0.08080000")  # 101 x 0.0008 maker
    assert q.implementation_shortfall == Decimal("-0.91920000")
    assert q.time_to_last_fill_ms >= q.time_to_first_fill_ms >= 0


async def test_the_cli_cancels_by_client_order_id(stack, nc, nats_server):
    order = approved(10)
    orders, _ = await resting(stack, nc, order)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from tradebus_common.cli.main import main; raise SystemExit(main())",
        *("order", "cancel", order.client_order_id, "--operator", "alice"),
        *("--nats", nats_server.url),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    assert f"canceled {order.client_order_id} (OPERATOR)" in out.decode()
    await orders.wait_for(of(order.client_order_id, ev.OrderCanceled))


async def test_the_cli_modifies_and_prints_the_replacement(stack, nc, nats_server):
    order = approved(11, qty="2")
    orders, _ = await resting(stack, nc, order)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from tradebus_common.cli.main import main; raise SystemExit(main())",
        *("order", "modify", order.client_order_id, "--qty", "3", "--price", "98.5"),
        *("--nats", nats_server.url),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    assert "replacement tb" in out.decode() and ": buy 3 @ 98.5" in out.decode()
    await orders.wait_for(of(order.client_order_id, ev.OrderCanceled))
