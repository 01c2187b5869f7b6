"""kill -9 of a real execution-gateway process trading through ccxt (the real client, against
the Binance emulator): killed between the journal write and the venue call, or between the
venue's ack and the event publish. After a restart there is exactly one venue order, and its
fill is stored once. The emulator holds the create request so the kill lands exactly there:
the test waits on the request's arrival, never on a sleep."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import pytest

from tradebus_common import events as ev
from tradebus_common.ids import client_order_id

from ..support.bus import collect, publish_event
from ..support.emulator import CREDENTIALS_ENV, BinanceEmulator, venue_toml
from ..support.procs import ServiceProcess, service_env, write_config

pytestmark = pytest.mark.e2e


def ccxt_config(emulator: BinanceEmulator) -> str:
    return venue_toml(
        emulator, "emu", symbols=["BTC/USDT"], timeout_ms=2000, unknown_grace_s=1.0,
        order_poll_interval_ms=200, retry_base_ms=50,
    )  # fmt: skip


def approval(n: int) -> ev.OrderApproved:
    return ev.OrderApproved(
        id=f"kill-approved-{n}",
        correlation_id=f"kill-sig-{n}",
        intent_id=f"kill-intent-{n}",
        strategy="demo",
        venue="emu",
        symbol="BTC/USDT",
        side=ev.Side.BUY,
        quantity=Decimal("0.1"),
        order_type=ev.OrderType.MARKET,
        client_order_id=client_order_id(f"kill-intent-{n}"),
        reference_price=Decimal("100"),
    )


@pytest.fixture
async def emulator():
    emu = await BinanceEmulator().start()
    emu.set_price("BTC/USDT", "100")
    yield emu
    await emu.stop()


async def stored_fills(nc) -> int:
    info = await nc.jetstream().stream_info("TRADING", subjects_filter="trading.fill.>")
    return sum((info.state.subjects or {}).values())


async def kill_at_create_then_restart(nc, nats_server, emulator, tmp_path, place: bool):
    env = service_env(
        nats_server.url, "", write_config(tmp_path / "tradebus.toml", ccxt_config(emulator))
    )
    env.update(CREDENTIALS_ENV)
    events = await collect(nc, "trading.>")
    beats = await collect(nc, "$KV.health.execution-gateway.>")
    proc = ServiceProcess("execution-gateway", env, tmp_path).start()
    try:
        await beats.wait_for(lambda e: isinstance(e, ev.Heartbeat), timeout=45)
        held = emulator.hold_create(place=place)
        order = approval(1 if place else 2)
        await publish_event(nc, order)
        await asyncio.wait_for(held.arrived.wait(), 30)  # journaled, and the request is here
        proc.kill9()
        held.release()  # answers a dead client: that response is lost
        assert not events.matching(lambda e: isinstance(e, ev.Fill))

        proc = ServiceProcess("execution-gateway", env, tmp_path).start()
        [fill] = await events.wait_for(
            lambda e: isinstance(e, ev.Fill) and e.client_order_id == order.client_order_id,
            timeout=45,
        )
        # The redelivered approval (ack_wait 5 s) re-announces the same events, sends nothing.
        await events.wait_for(
            lambda e: (
                isinstance(e, ev.OrderSubmitted) and e.client_order_id == order.client_order_id
            ),
            count=2 if place else 1,
            timeout=45,
        )
        assert len(emulator.orders_for(order.client_order_id)) == 1, proc.log_tail()
        assert fill.correlation_id == order.correlation_id and fill.quantity == Decimal("0.1")
        assert await stored_fills(nc) == 1
        return order
    finally:
        proc.terminate()


async def test_kill9_between_venue_ack_and_publish_leaves_one_order(
    nats_server, nc, emulator, tmp_path: Path
):
    order = await kill_at_create_then_restart(nc, nats_server, emulator, tmp_path, place=True)
    # Resolved by lookup after the restart: the create was never sent a second time.
    assert emulator.creates_received == [order.client_order_id]


async def test_kill9_between_journal_write_and_venue_call_leaves_one_order(
    nats_server, nc, emulator, tmp_path: Path
):
    order = await kill_at_create_then_restart(nc, nats_server, emulator, tmp_path, place=False)
    # Not found past the grace, so sent again with the same client order id, once.
    assert emulator.creates_received == [order.client_order_id] * 2
