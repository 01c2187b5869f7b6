"""Emergency stop with flatten on a real venue (the real ccxt client against the Binance
emulator): positions come from the ledger's snapshot, coins the account held before tradebus
are never sold, and a long is never sold beyond what the venue holds."""

from __future__ import annotations

from decimal import Decimal

import msgspec
import pytest

from tradebus_common import events as ev
from tradebus_common.config import Config

from ..support.bus import collect, publish_event
from ..support.emulator import CREDENTIALS_ENV, BinanceEmulator, venue_config

D = Decimal


@pytest.fixture
async def emulator():
    # 5 BTC from before tradebus, plus 0.3 bought by it; 1.998 ETH bought as 2 (a 0.1% fee
    # was paid in ETH, so the venue holds less than the ledger's gross position).
    emu = await BinanceEmulator(
        balances={"USDT": D("100000"), "BTC": D("5.3"), "ETH": D("1.998")}
    ).start()
    emu.set_price("BTC/USDT", "100")
    emu.set_price("ETH/USDT", "10")
    yield emu
    await emu.stop()


async def test_flatten_sells_the_ledger_position_capped_at_the_venue_holding(
    stack, nc, config: Config, emulator, monkeypatch
):
    for k, v in CREDENTIALS_ENV.items():
        monkeypatch.setenv(k, v)
    cfg = msgspec.structs.replace(config, venues={"emu": venue_config(emulator)})
    await stack.start("execution-gateway", config=cfg)
    snapshot = ev.LedgerSnapshot(
        positions=[
            ev.PositionView(venue="emu", symbol="BTC/USDT", strategy="demo", quantity=D("0.3")),
            ev.PositionView(venue="emu", symbol="ETH/USDT", strategy="demo", quantity=D("2")),
        ]
    )
    await publish_event(nc, snapshot)
    fills = await collect(nc, "trading.fill.>")
    await publish_event(
        nc,
        ev.ControlCommand(action=ev.ControlAction.CANCEL_ALL, flatten=True, reason="test"),
    )
    found = await fills.wait_for(lambda e: isinstance(e, ev.Fill), count=2, timeout=20)
    sold = {f.symbol: f.quantity for f in found}
    assert all(f.side is ev.Side.SELL and f.strategy == "demo" for f in found)
    assert sold == {"BTC/USDT": D("0.3"), "ETH/USDT": D("1.998")}
    assert emulator.book.balances["BTC"] == D("5")  # the old coins are still there
    assert emulator.book.balances["ETH"] == D("0")
