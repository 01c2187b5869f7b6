"""CcxtVenue with the real ccxt client against the local Binance emulator (real HTTP, real
HMAC signing): fills with fees and trade ids, resting limits, pre-send checks, retries with
Retry-After, the circuit breaker, a fill racing a cancel, and credentials checked."""

from __future__ import annotations

import time
from decimal import Decimal

import ccxt.async_support as ccxt
import pytest

from tradebus_common import events as ev
from tradebus_common.ids import client_order_id
from tradebus_execution_gateway.venues.base import VenueOrderStatus
from tradebus_execution_gateway.venues.ccxt_venue import CcxtVenue, make_exchange
from tradebus_execution_gateway.venues.errors import OutcomeUnknown, VenueBreakerOpen
from tradebus_execution_gateway.venues.ticker import tick_from

from ..support.emulator import CREDENTIALS_ENV, BinanceEmulator, venue_config


@pytest.fixture
async def emulator():
    emu = await BinanceEmulator().start()
    emu.set_price("BTC/USDT", "100")
    yield emu
    await emu.stop()


@pytest.fixture
def creds(monkeypatch):
    for k, v in CREDENTIALS_ENV.items():
        monkeypatch.setenv(k, v)


class Emitted(list):
    async def __call__(self, events):
        self.extend(events)


async def open_venue(emulator, **overrides) -> tuple[CcxtVenue, Emitted]:
    cfg = venue_config(emulator, **overrides)
    emitted = Emitted()
    venue = CcxtVenue("emu", cfg, make_exchange(cfg), emitted)
    await venue.start()
    return venue, emitted


def approval(n: int, qty="0.1", limit: str | None = None, side=ev.Side.BUY, ref="100"):
    return ev.OrderApproved(
        id=f"approved-{n}",
        correlation_id=f"sig-{n}",
        intent_id=f"intent-{n}",
        strategy="demo",
        venue="emu",
        symbol="BTC/USDT",
        side=side,
        quantity=Decimal(qty),
        order_type=ev.OrderType.LIMIT if limit else ev.OrderType.MARKET,
        limit_price=Decimal(limit) if limit else None,
        client_order_id=client_order_id(f"intent-{n}"),
        reference_price=Decimal(ref) if ref else None,
        exit_reason=ev.ExitReason.TAKE_PROFIT,
    )


async def test_market_order_fills_with_fee_trade_id_and_our_client_id(emulator, creds):
    venue, emitted = await open_venue(emulator)
    try:
        order = approval(1)
        result = await venue.submit(order)
        assert result.status is VenueOrderStatus.FILLED
        [fill] = result.fills
        assert fill.quantity == Decimal("0.1") and fill.price == Decimal("100")
        assert fill.fee == Decimal("0.0001") and fill.fee_currency == "BTC"
        assert fill.liquidity is ev.Liquidity.TAKER and fill.trade_id.isdigit()
        assert result.exit_reason is ev.ExitReason.TAKE_PROFIT
        assert result.arrival_price == Decimal("100")
        [placed] = emulator.orders_for(order.client_order_id)  # newClientOrderId = ours
        assert result.venue_order_id == str(placed.order_id)
        assert any(isinstance(e, ev.VenueLatencyObserved) for e in emitted)  # load_markets
        trades = await venue.my_trades(None)
        assert [(t.trade_id, t.client_order_id) for t in trades] == [
            (fill.trade_id, order.client_order_id)
        ]
        assert (await venue.balances())["BTC"] == Decimal("10.0999")
    finally:
        await venue.close()


async def test_resting_limit_fills_when_the_price_crosses_and_is_found_by_client_id(
    emulator, creds
):
    venue, _ = await open_venue(emulator)
    try:
        order = approval(2, limit="99")
        assert (await venue.submit(order)).status is VenueOrderStatus.OPEN
        assert [o.client_order_id for o in await venue.open_orders()] == [order.client_order_id]
        emulator.set_price("BTC/USDT", "98.5")
        found = await venue.fetch_order(order.client_order_id)
        assert found is not None and found.status is VenueOrderStatus.FILLED
        [fill] = found.fills
        assert fill.liquidity is ev.Liquidity.MAKER and fill.price == Decimal("99")
        assert await venue.fetch_order("tbnosuchorder") is None
    finally:
        await venue.close()


async def test_an_order_under_min_notional_is_rejected_without_a_request(emulator, creds):
    venue, _ = await open_venue(emulator)
    try:
        result = await venue.submit(approval(3, qty="0.01"))  # 1 USDT < 5 USDT
        assert result.status is VenueOrderStatus.REJECTED
        assert result.reject_reason is ev.RejectReason.INVALID_ORDER
        assert emulator.calls["create"] == 0
    finally:
        await venue.close()


async def test_a_market_order_without_a_reference_price_is_judged_at_the_last_price(
    emulator, creds
):
    venue, _ = await open_venue(emulator)
    try:
        small = await venue.submit(approval(11, qty="0.01", ref=None))  # 1 USDT at 100
        assert small.reject_reason is ev.RejectReason.INVALID_ORDER
        assert (await venue.submit(approval(12, ref=None))).status is VenueOrderStatus.FILLED
        assert emulator.calls["create"] == 1 and emulator.calls["ticker"] == 2
    finally:
        await venue.close()


async def test_a_venue_reject_is_final_and_typed(emulator, creds):
    venue, _ = await open_venue(emulator)
    try:
        result = await venue.submit(approval(4, qty="5000", limit="100"))  # > 100k USDT
        assert result.status is VenueOrderStatus.REJECTED
        assert result.reject_reason is ev.RejectReason.INSUFFICIENT_FUNDS
        assert venue.breaker.failures == 0  # a business reject says nothing about health
    finally:
        await venue.close()


async def test_reads_retry_on_429_after_the_retry_after_delay(emulator, creds):
    venue, emitted = await open_venue(emulator)
    try:
        order = approval(5)
        await venue.submit(order)
        emulator.fail_next("fetch_order", 429, retry_after_s=1)
        started = time.monotonic()
        found = await venue.fetch_order(order.client_order_id, "BTC/USDT")
        assert found is not None and found.status is VenueOrderStatus.FILLED
        assert time.monotonic() - started >= 1.0  # the venue's Retry-After, not our 20 ms
        assert emulator.calls["fetch_order"] == 2
        assert any(isinstance(e, ev.VenueLatencyObserved) and not e.ok for e in emitted)
    finally:
        await venue.close()


async def test_create_is_never_retried_a_5xx_makes_the_outcome_unknown(emulator, creds):
    venue, _ = await open_venue(emulator)
    try:
        emulator.fail_next("create", 502)
        with pytest.raises(OutcomeUnknown):
            await venue.submit(approval(6))
        assert emulator.calls["create"] == 1  # exactly one request, no ccxt retry
    finally:
        await venue.close()


async def test_breaker_opens_after_failures_refuses_then_probes_and_closes(emulator, creds):
    now = [1000.0]  # the breaker's clock, moved by the test (no sleeping)
    cfg = venue_config(emulator, breaker_failures=2, breaker_open_s=30)
    emitted = Emitted()
    venue = CcxtVenue("emu", cfg, make_exchange(cfg), emitted, clock=lambda: now[0])
    await venue.start()
    try:
        emulator.fail_next("create", 503, count=2)
        for n in (7, 8):
            with pytest.raises(OutcomeUnknown):
                await venue.submit(approval(n))
        with pytest.raises(VenueBreakerOpen):  # refused without a request
            await venue.submit(approval(9))
        assert emulator.calls["create"] == 2
        now[0] += 31  # the open period is over: the next call is the probe
        assert await venue.fetch_order("tbprobe", "BTC/USDT") is None  # OrderNotFound: it is up
        changes = [e for e in emitted if isinstance(e, ev.VenueBreakerChanged)]
        assert [c.state for c in changes] == [
            ev.VenueBreakerState.OPEN,
            ev.VenueBreakerState.HALF_OPEN,
            ev.VenueBreakerState.CLOSED,
        ]
        assert changes[0].failures == 2 and changes[0].venue == "emu"
        codes = [e.code for e in emitted if isinstance(e, ev.Alert)]
        assert codes == [
            ev.AlertCode.VENUE_BREAKER_OPEN,
            ev.AlertCode.VENUE_BREAKER_HALF_OPEN,
            ev.AlertCode.VENUE_BREAKER_CLOSED,
        ]
    finally:
        await venue.close()


async def test_a_fill_racing_a_cancel_reports_the_fill_not_a_cancel(emulator, creds):
    venue, _ = await open_venue(emulator)
    try:
        order = approval(10, limit="95")
        await venue.submit(order)
        emulator.fill_on_cancel = True
        after = await venue.cancel(order.client_order_id)
        assert after is not None and after.status is VenueOrderStatus.FILLED
        assert len(after.fills) == 1 and after.fills[0].price == Decimal("95")
    finally:
        await venue.close()


async def test_my_trades_reads_every_page(emulator, creds):
    venue, _ = await open_venue(emulator)
    venue.trades_page = 2  # Binance pages at 500; five trades over pages of two here
    try:
        orders = [approval(20 + n) for n in range(5)]
        for order in orders:
            await venue.submit(order)
        trades = await venue.my_trades(None)
        assert sorted(t.client_order_id for t in trades) == sorted(
            o.client_order_id for o in orders
        )
        assert len({t.trade_id for t in trades}) == 5
        assert emulator.calls["my_trades"] >= 3
    finally:
        await venue.close()


async def test_tickers_become_md_ticks(emulator, creds):
    venue, _ = await open_venue(emulator)
    try:
        tick = tick_from("emu", "BTC/USDT", await venue.fetch_ticker("BTC/USDT"))
        assert tick is not None and tick.price == Decimal("100") and tick.bid == Decimal("100")
        assert tick.venue == "emu" and tick.symbol == "BTC/USDT"
    finally:
        await venue.close()


async def test_a_bad_secret_is_an_authentication_error_not_a_retry(emulator, monkeypatch):
    monkeypatch.setenv("TB_EMU_KEY", "emu-key")
    monkeypatch.setenv("TB_EMU_SECRET", "wrong")
    venue, _ = await open_venue(emulator)
    try:
        with pytest.raises(ccxt.AuthenticationError):
            await venue.balances()
        assert emulator.calls["account"] == 1
    finally:
        await venue.close()
