"""UNKNOWN orders through the real gateway submit path: the journal (real JetStream KV), the
real ccxt client and the Binance emulator with faults injected. Every UNKNOWN is resolved,
no order is ever placed twice, and every fill is stored once."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import msgspec
import pytest

from tradebus_common import events as ev
from tradebus_common import subjects
from tradebus_common.bus import Bus, ensure_topology
from tradebus_common.ids import client_order_id
from tradebus_execution_gateway.handlers import ApprovedOrderHandler, cancel_in_scope
from tradebus_execution_gateway.journal import Journal
from tradebus_execution_gateway.resolver import OrderResolver
from tradebus_execution_gateway.service import watch_task
from tradebus_execution_gateway.venues.ccxt_venue import CcxtVenue, make_exchange
from tradebus_execution_gateway.venues.ticker import ticker_task

from ..conftest import make_config
from ..support.bus import collect
from ..support.emulator import CREDENTIALS_ENV, BinanceEmulator, venue_config


class Gateway:
    """The gateway's submit path and resolver, wired as service.py wires them."""

    def __init__(self, bus: Bus, venue: CcxtVenue, resolver: OrderResolver, kv) -> None:
        self.bus, self.venue, self.resolver = bus, venue, resolver
        self.journal = Journal(kv)
        self.handler = ApprovedOrderHandler({"emu": venue}, kv, resolver)
        self.task = asyncio.create_task(resolver.run())

    async def approve(self, order: ev.OrderApproved) -> list[ev.Event]:
        events = await self.handler(order)
        await self.bus.publish_all(events)  # what the consume loop does with them
        return events

    async def status(self, cid: str) -> str:
        entry = await self.journal.get(cid)
        return entry.status if entry else ""

    async def reaches(self, cid: str, status: str, timeout: float = 10.0) -> bool:
        """Wait (on the KV watch, not a sleep) until the journal holds `status` for cid."""
        watcher = await self.journal.kv.watch(cid)

        async def seen() -> bool:
            while True:
                entry = await watcher.updates(timeout=timeout)
                if entry is not None and entry.value and status == decode_status(entry.value):
                    return True

        try:
            return await asyncio.wait_for(seen(), timeout)
        finally:
            await watcher.stop()

    def watch(self) -> None:
        """Run the venue's order stream as service.py does when watch_orders is on."""
        self.watcher = asyncio.create_task(watch_task(self.venue, self.resolver)())

    async def close(self) -> None:
        self.resolver.stop()
        await asyncio.wait_for(self.task, 10)
        if getattr(self, "watcher", None) is not None:
            self.watcher.cancel()
            await asyncio.gather(self.watcher, return_exceptions=True)
        await self.venue.close()


def decode_status(value: bytes) -> str:
    return msgspec.json.decode(value).get("status", "")


@pytest.fixture
async def emulator():
    emu = await BinanceEmulator().start()
    emu.set_price("BTC/USDT", "100")
    yield emu
    await emu.stop()


async def start_gateway(nc, nats_server, emulator, monkeypatch, **overrides) -> Gateway:
    for k, v in CREDENTIALS_ENV.items():
        monkeypatch.setenv(k, v)
    cfg = make_config(nats_server.url)
    bus = Bus(nc, cfg.bus, "execution-gateway")
    await ensure_topology(bus.js, cfg.bus, heartbeat_ttl_s=30)
    vcfg = venue_config(emulator, **overrides)
    venue = CcxtVenue("emu", vcfg, make_exchange(vcfg), bus.publish_all)
    await venue.start()
    kv = await bus.kv(subjects.BUCKET_ORDER_JOURNAL)
    resolver = OrderResolver({"emu": venue}, {"emu": vcfg}, Journal(kv), bus.publish_all)
    return Gateway(bus, venue, resolver, kv)


@pytest.fixture
async def gateway(nc, nats_server, emulator, monkeypatch):
    gw = await start_gateway(nc, nats_server, emulator, monkeypatch)
    yield gw
    await gw.close()


def approval(n: int, qty="0.1", limit: str | None = None) -> ev.OrderApproved:
    return ev.OrderApproved(
        id=f"approved-{n}",
        correlation_id=f"sig-{n}",
        intent_id=f"intent-{n}",
        strategy="demo",
        venue="emu",
        symbol="BTC/USDT",
        side=ev.Side.BUY,
        quantity=Decimal(qty),
        order_type=ev.OrderType.LIMIT if limit else ev.OrderType.MARKET,
        limit_price=Decimal(limit) if limit else None,
        client_order_id=client_order_id(f"intent-{n}"),
        reference_price=Decimal("100"),
    )


async def stored_fills(nc) -> int:
    """Fills held in the TRADING stream (what the ledger will read), duplicates dropped."""
    info = await nc.jetstream().stream_info("TRADING", subjects_filter="trading.fill.>")
    return sum((info.state.subjects or {}).values())


def kinds(events) -> list[str]:
    return [type(e).__name__ for e in events]


async def test_accepted_then_timed_out_create_is_unknown_then_resolved_without_resend(
    gateway, emulator, nc
):
    events = await collect(nc, "trading.>")
    order = approval(1)
    emulator.accept_then_hang()  # placed and filled; the answer never comes in time
    out = await gateway.approve(order)
    assert kinds(out)[:2] == ["OrderSubmitted", "OrderUnknown"]
    assert not any(isinstance(e, ev.OrderRejected) for e in out)  # UNKNOWN, never failed
    assert await gateway.status(order.client_order_id) in ("unknown", "filled")

    [fill] = await events.wait_for(lambda e: isinstance(e, ev.Fill))
    await events.wait_for(
        lambda e: isinstance(e, ev.Alert) and e.code is ev.AlertCode.ORDER_UNKNOWN_RESOLVED
    )
    assert fill.client_order_id == order.client_order_id and fill.correlation_id == "sig-1"
    assert fill.arrival_price == Decimal("100") and fill.fee_currency == "BTC"
    assert emulator.creates_received == [order.client_order_id]  # never resent
    assert len(emulator.orders_for(order.client_order_id)) == 1
    assert await gateway.reaches(order.client_order_id, "filled")
    assert events.matching(lambda e: isinstance(e, ev.OrderAccepted))
    assert await stored_fills(nc) == 1


async def test_a_5xx_that_never_placed_is_resent_once_with_the_same_client_id(
    gateway, emulator, nc
):
    events = await collect(nc, "trading.>")
    order = approval(2)
    emulator.fail_next("create", 502)  # refused before placing: the venue never saw it
    out = await gateway.approve(order)
    assert "OrderUnknown" in kinds(out)
    await events.wait_for(lambda e: isinstance(e, ev.Fill))
    # Looked up (not found) until the grace passed, then sent again with the same id.
    assert emulator.creates_received == [order.client_order_id] * 2
    assert len(emulator.orders_for(order.client_order_id)) == 1
    assert emulator.calls["fetch_order"] >= 1
    assert await gateway.reaches(order.client_order_id, "filled")
    assert await stored_fills(nc) == 1


async def test_a_duplicate_client_id_resolves_to_the_live_order_and_its_later_fill(
    gateway, emulator, nc
):
    events = await collect(nc, "trading.>")
    order = approval(3, limit="99")
    # An earlier attempt with this id already rests at the venue.
    emulator.book.place(
        "BTCUSDT", "BUY", "LIMIT", Decimal("0.1"), Decimal("99"), order.client_order_id
    )
    out = await gateway.approve(order)  # -2010 Duplicate order sent: ambiguous, not rejected
    assert "OrderUnknown" in kinds(out) and "OrderRejected" not in kinds(out)
    await events.wait_for(lambda e: isinstance(e, ev.OrderAccepted))
    emulator.set_price("BTC/USDT", "98")  # the resting order fills; polling reports it
    [fill] = await events.wait_for(lambda e: isinstance(e, ev.Fill))
    assert fill.liquidity is ev.Liquidity.MAKER and fill.price == Decimal("99")
    assert len(emulator.orders_for(order.client_order_id)) == 1
    assert await stored_fills(nc) == 1


async def test_a_redelivered_approval_while_unknown_sends_nothing(gateway, emulator, nc):
    events = await collect(nc, "trading.>")
    order = approval(4)
    emulator.accept_then_hang()
    await gateway.approve(order)
    assert await gateway.handler(order) == []  # a redelivery: the resolver owns it
    await events.wait_for(lambda e: isinstance(e, ev.Fill))
    again = await gateway.approve(order)  # after resolution: the same events, same ids
    assert {e.id for e in again} <= {e.id for e in events.events}
    assert emulator.creates_received == [order.client_order_id]
    assert await stored_fills(nc) == 1


async def test_unknown_not_found_and_too_old_to_resend_is_rejected_not_sent(
    nc, nats_server, emulator, monkeypatch
):
    gw = await start_gateway(nc, nats_server, emulator, monkeypatch, resubmit_max_age_s=0)
    try:
        events = await collect(nc, "trading.>")
        order = approval(5)
        emulator.fail_next("create", 503)
        await gw.approve(order)
        [rejected] = await events.wait_for(lambda e: isinstance(e, ev.OrderRejected))
        assert rejected.reason is ev.RejectReason.NOT_SENT
        assert emulator.creates_received == [order.client_order_id]
        assert emulator.orders_for(order.client_order_id) == []
        assert await gw.reaches(order.client_order_id, "rejected")
    finally:
        await gw.close()


async def test_a_polling_gap_loses_no_fill(gateway, emulator, nc):
    events = await collect(nc, "trading.>")
    order = approval(6, limit="99")
    await gateway.approve(order)
    emulator.fail_next("fetch_order", 503, count=10)  # polls go unanswered for a while
    emulator.set_price("BTC/USDT", "98")
    [fill] = await events.wait_for(lambda e: isinstance(e, ev.Fill), timeout=15)
    assert fill.quantity == Decimal("0.1")
    states = [e.state for e in events.matching(lambda e: isinstance(e, ev.VenueBreakerChanged))]
    assert states[0] is ev.VenueBreakerState.OPEN  # it noticed, and recovered to fetch the fill
    assert states[-1] is ev.VenueBreakerState.CLOSED
    assert await gateway.reaches(order.client_order_id, "filled")
    assert await stored_fills(nc) == 1


async def test_a_fill_during_a_halt_cancel_is_published_once_and_no_cancel(gateway, emulator, nc):
    events = await collect(nc, "trading.>")
    order = approval(7, limit="95")
    await gateway.approve(order)
    emulator.fill_on_cancel = True
    canceled = await cancel_in_scope({"emu": gateway.venue}, "global", "halt-1", "halt")
    assert canceled == []  # it filled first
    [fill] = await events.wait_for(lambda e: isinstance(e, ev.Fill))
    assert fill.price == Decimal("95")
    assert not events.matching(lambda e: isinstance(e, ev.OrderCanceled))
    assert await stored_fills(nc) == 1


async def test_a_halt_cancel_is_announced_once_and_a_venue_side_cancel_by_polling(
    gateway, emulator, nc
):
    events = await collect(nc, "trading.>")
    ours, theirs = approval(8, limit="90"), approval(9, limit="91")
    await gateway.approve(ours)
    others = await cancel_in_scope({"emu": gateway.venue}, "strategy:other", "halt-1", "halt")
    assert others == []  # the venue's records know whose orders they are
    [halted] = await cancel_in_scope({"emu": gateway.venue}, "strategy:demo", "halt-2", "halt")
    assert halted.strategy == "demo" and halted.correlation_id == "sig-8"
    await gateway.bus.publish_all([halted])  # what the consume loop does with it
    assert await gateway.reaches(ours.client_order_id, "canceled")  # polling saw it too
    await gateway.approve(theirs)
    emulator.book.cancel(emulator.orders_for(theirs.client_order_id)[0])  # the venue's own
    await events.wait_for(
        lambda e: isinstance(e, ev.OrderCanceled) and e.client_order_id == theirs.client_order_id
    )
    cancels = events.matching(lambda e: isinstance(e, ev.OrderCanceled))
    assert sorted(c.client_order_id for c in cancels) == sorted(
        [ours.client_order_id, theirs.client_order_id]
    )


async def test_with_the_breaker_open_an_order_is_rejected_unsent(
    nc, nats_server, emulator, monkeypatch
):
    gw = await start_gateway(nc, nats_server, emulator, monkeypatch, breaker_failures=1)
    try:
        emulator.fail_next("create", 503)
        await gw.approve(approval(10))  # UNKNOWN, and the breaker opens
        out = await gw.approve(approval(11))
        [rejected] = [e for e in out if isinstance(e, ev.OrderRejected)]
        assert rejected.reason is ev.RejectReason.VENUE_UNAVAILABLE
        assert approval(11).client_order_id not in emulator.creates_received
        assert await gw.status(approval(11).client_order_id) == "rejected"
    finally:
        await gw.close()


async def test_polled_tickers_are_published_as_md_ticks(gateway, emulator, nc):
    ticks = await collect(nc, "md.emu.>")
    task = asyncio.create_task(ticker_task(gateway.venue, gateway.bus.publish)())
    try:
        [tick] = await ticks.wait_for(lambda e: isinstance(e, ev.MarketTick))
        assert tick.symbol in ("BTC/USDT", "ETH/USDT") and tick.venue == "emu"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_working_orders_are_polled_by_one_listing_not_one_lookup_each(gateway, emulator, nc):
    events = await collect(nc, "trading.>")
    first, second = approval(12, limit="90"), approval(13, limit="80")
    await gateway.approve(first)
    await gateway.approve(second)
    await emulator.wait_calls("open_orders", 3)  # three polling rounds
    assert emulator.calls["fetch_order"] == 0  # nothing changed: no per-order lookups
    emulator.set_price("BTC/USDT", "85")  # fills `first` only
    [fill] = await events.wait_for(lambda e: isinstance(e, ev.Fill))
    assert fill.client_order_id == first.client_order_id
    assert await gateway.reaches(first.client_order_id, "filled")
    assert await gateway.status(second.client_order_id) == "open"


async def test_pushed_order_updates_fill_at_once_and_a_stream_gap_loses_nothing(
    nc, nats_server, emulator, monkeypatch
):
    gw = await start_gateway(
        nc,
        nats_server,
        emulator,
        monkeypatch,
        watch_orders=True,
        ws_urls={"ws-api.spot": emulator.ws_url},
        order_poll_interval_ms=600_000,  # no polling in this test's time: pushes or gaps only
    )
    gw.watch()
    try:
        events = await collect(nc, "trading.>")
        first, second = approval(14, limit="90"), approval(15, limit="80")
        await gw.approve(first)
        await gw.approve(second)
        await emulator.wait_calls("subscribe", 1)
        emulator.set_price("BTC/USDT", "89")  # pushed: the lookup follows the push
        await events.wait_for(lambda e: isinstance(e, ev.Fill))
        await emulator.streams.drop_all()  # the order stream disconnects ...
        emulator.set_price("BTC/USDT", "79")  # ... and a fill happens in the gap
        fills = await events.wait_for(lambda e: isinstance(e, ev.Fill), count=2)
        assert {f.client_order_id for f in fills} == {first.client_order_id, second.client_order_id}
        await emulator.wait_calls("subscribe", 2)  # and the stream came back
        assert await stored_fills(nc) == 2
    finally:
        await gw.close()


async def test_lookups_failing_raise_an_error_alert_and_resolution_still_follows(
    nc, nats_server, emulator, monkeypatch
):
    gw = await start_gateway(nc, nats_server, emulator, monkeypatch, unknown_resolve_attempts=2)
    try:
        events = await collect(nc, "trading.>")
        order = approval(16)
        emulator.accept_then_hang()
        emulator.fail_next("fetch_order", 503, count=12)  # the venue is sick for a while
        await gw.approve(order)
        [stuck] = await events.wait_for(
            lambda e: (
                isinstance(e, ev.Alert)
                and e.code is ev.AlertCode.ORDER_UNKNOWN
                and e.severity is ev.Severity.ERROR
            )
        )
        assert order.client_order_id in stuck.message
        await events.wait_for(lambda e: isinstance(e, ev.Fill), timeout=20)
        assert await gw.reaches(order.client_order_id, "filled")
        assert emulator.creates_received == [order.client_order_id]
    finally:
        await gw.close()
