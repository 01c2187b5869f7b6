"""The paper venue keeps balances: configured per currency, moved by every fill (base, quote
and fee), and rebuilt exactly from its stored orders after a restart. It also answers the
venue queries the reconciler uses (my_trades, balances, markets)."""

from __future__ import annotations

from decimal import Decimal

from tradebus_common import events as ev
from tradebus_common import subjects
from tradebus_common.bus import Bus, ensure_topology
from tradebus_common.config import VenueConfig
from tradebus_execution_gateway.venues.paper import PaperVenue

from ..conftest import make_config
from ..support.bus import set_price

CFG = VenueConfig(
    symbols=["BTC/USDT"],
    taker_fee_rate=Decimal("0.001"),
    starting_balances={"USDT": Decimal("1000"), "BTC": Decimal("0")},
)


def buy(n: int, qty: str) -> ev.OrderApproved:
    return ev.OrderApproved(
        id=f"a{n}",
        intent_id=f"i{n}",
        strategy="demo",
        venue="paper",
        symbol="BTC/USDT",
        side=ev.Side.BUY,
        quantity=Decimal(qty),
        order_type=ev.OrderType.MARKET,
        client_order_id=f"tbpaper{n}",
        exit_reason=ev.ExitReason.STOP_LOSS,
    )


async def test_balances_move_with_fills_and_survive_a_restart(nc, nats_server):
    cfg = make_config(nats_server.url)
    bus = Bus(nc, cfg.bus, "execution-gateway")
    await ensure_topology(bus.js, cfg.bus, heartbeat_ttl_s=30)
    kv = await bus.kv(subjects.BUCKET_PAPER_VENUE)
    await set_price(nc, "paper", "BTC/USDT", "100")
    venue = PaperVenue("paper", CFG, bus, kv)
    await venue.load()
    assert await venue.balances() == {"USDT": Decimal("1000")}

    filled = await venue.submit(buy(1, "2"))
    assert filled.exit_reason is ev.ExitReason.STOP_LOSS
    expected = {"BTC": Decimal("2"), "USDT": Decimal("1000") - Decimal("200") - Decimal("0.2")}
    assert await venue.balances() == expected
    [trade] = await venue.my_trades(None)
    assert trade.client_order_id == "tbpaper1" and trade.quantity == Decimal("2")
    assert await venue.markets() == ["BTC/USDT"]

    restarted = PaperVenue("paper", CFG, bus, kv)
    await restarted.load()
    assert await restarted.balances() == expected
    await restarted.submit(buy(1, "2"))  # the same client order id: nothing moves twice
    assert await restarted.balances() == expected
