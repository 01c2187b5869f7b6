"""Reconciler against the local Binance emulator through the real ccxt venue: orders and
trades made at the venue while the gateway was down (someone else's, or by hand) are found,
adopted, booked, and a balance change without a trade is drift."""

from __future__ import annotations

from decimal import Decimal

import msgspec
import pytest

from tradebus_common import events as ev
from tradebus_common import subjects
from tradebus_common.config import Config, ReconcilerConfig

from ..support.bus import collect
from ..support.emulator import CREDENTIALS_ENV, BinanceEmulator, venue_config

D = Decimal
SERVICES = ("position-ledger", "execution-gateway", "reconciler")


@pytest.fixture
async def emulator():
    emu = await BinanceEmulator().start()
    emu.set_price("BTC/USDT", "100")
    emu.set_price("ETH/USDT", "10")
    yield emu
    await emu.stop()


@pytest.fixture
def emu_config(config: Config, emulator, monkeypatch) -> Config:
    for k, v in CREDENTIALS_ENV.items():
        monkeypatch.setenv(k, v)
    recon = ReconcilerConfig(
        startup_gate=True,
        open_orders_interval_s=0,
        positions_interval_s=0,
        audit_checkpoint_interval_s=0,
        audit_checkpoint_every_msgs=0,
        drift_action="alert",
        # spot: the position is the base balance, and buy fees are paid in it
        position_tolerance=D("0.001"),
        balance_tolerance=D("0.00000001"),
    )
    return msgspec.structs.replace(config, venues={"emu": venue_config(emulator)}, reconciler=recon)


def is_gate(state: ev.ReconGateState):
    return lambda e: isinstance(e, ev.ReconGateChanged) and e.state is state


async def start_clean(stack, nc, cfg: Config) -> None:
    gates = await collect(nc, subjects.RECON_GATE)
    await stack.start(*SERVICES, config=cfg)
    await gates.wait_for(is_gate(ev.ReconGateState.CLEAN), timeout=30)


async def test_venue_activity_while_the_gateway_was_down_is_adopted_and_booked(
    stack, nc, emulator, emu_config
):
    await start_clean(stack, nc, emu_config)
    await stack.stop("execution-gateway")
    # Someone trades on the account by hand: a resting order and a market buy.
    emulator.book.place("BTCUSDT", "BUY", "LIMIT", D("0.1"), D("50"), "by-hand-resting")
    emulator.book.place("BTCUSDT", "BUY", "MARKET", D("0.2"), D(0), "by-hand-market")
    reports = await collect(nc, subjects.RECON_REPORT)
    fills = await collect(nc, "trading.fill.>")
    alerts = await collect(nc, "trading.alert.>")
    gates = await collect(nc, subjects.RECON_GATE)
    positions = await collect(nc, "trading.position.>")
    await stack.start("execution-gateway", config=emu_config)

    [report] = await reports.wait_for(lambda r: r.trigger == "gateway_restart", timeout=30)
    kinds = sorted((d.kind.value, d.resolution) for d in report.discrepancies)
    assert kinds == [("EXTERNAL_ORDER", "adopted"), ("MISSING_FILL", "fill_generated")], report
    [fill] = await fills.wait_for(lambda f: f.reconciliation)
    assert (fill.venue, fill.symbol, fill.side, fill.quantity) == (
        "emu",
        "BTC/USDT",
        "buy",
        D("0.2"),
    )
    assert fill.strategy == "external"
    await alerts.wait_for(lambda a: a.code is ev.AlertCode.RECON_EXTERNAL_ORDER)
    await alerts.wait_for(lambda a: a.code is ev.AlertCode.RECON_MISSING_FILL)
    await gates.wait_for(is_gate(ev.ReconGateState.CLEAN))
    await positions.wait_for(lambda p: p.fill_id == fill.id)


async def test_a_balance_change_without_a_trade_blocks_the_gate(stack, nc, emulator, emu_config):
    await start_clean(stack, nc, emu_config)
    await stack.stop("execution-gateway")
    emulator.book.balances["USDT"] -= D("2500")  # a withdrawal
    reports = await collect(nc, subjects.RECON_REPORT)
    gates = await collect(nc, subjects.RECON_GATE)
    await stack.start("execution-gateway", config=emu_config)
    [report] = await reports.wait_for(lambda r: r.trigger == "gateway_restart", timeout=30)
    [drift] = report.discrepancies
    assert (drift.kind, drift.key, drift.theirs - drift.ours) == (
        ev.ReconDiscrepancyKind.BALANCE_DRIFT,
        "USDT",
        D("-2500"),
    )
    await gates.wait_for(is_gate(ev.ReconGateState.BLOCKED))
