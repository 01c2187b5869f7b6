"""Orders are rounded to the market's precision and checked against its limits before any
request: a typed reject instead of a send (ccxt checks no min notional)."""

from __future__ import annotations

from decimal import Decimal

import ccxt
import pytest

from tradebus_common.config import VenueConfig
from tradebus_common.errors import ConfigError
from tradebus_common.events import RejectReason
from tradebus_execution_gateway.venues.ccxt_venue import make_exchange
from tradebus_execution_gateway.venues.credentials import credentials
from tradebus_execution_gateway.venues.errors import VenueRejected
from tradebus_execution_gateway.venues.sizing import size_order

MARKET = {
    "id": "BTCUSDT",
    "symbol": "BTC/USDT",
    "base": "BTC",
    "quote": "USDT",
    "baseId": "BTC",
    "quoteId": "USDT",
    "type": "spot",
    "spot": True,
    "active": True,
    "precision": {"amount": 0.001, "price": 0.01},
    "limits": {
        "amount": {"min": 0.001, "max": 100.0},
        "price": {"min": 0.01, "max": 1000000.0},
        "cost": {"min": 5.0, "max": None},
    },
}


@pytest.fixture(scope="module")
def exchange():
    ex = ccxt.binance()  # sync client: only its precision helpers are used, no network
    ex.set_markets([MARKET])
    return ex


def size(ex, qty, limit=None, ref=None):
    return size_order(
        ex.market("BTC/USDT"),
        Decimal(qty),
        Decimal(limit) if limit else None,
        Decimal(ref) if ref else None,
        ex.amount_to_precision,
        ex.price_to_precision,
    )


def test_amount_truncates_and_price_rounds_to_the_tick(exchange):
    sized = size(exchange, "0.12345", limit="100.004")
    assert sized.amount == Decimal("0.123") and sized.price == Decimal("100.00")


@pytest.mark.parametrize(
    "qty,limit,ref,words",
    [
        ("0.01", "100", None, "notional"),  # 1 USDT < 5 min notional
        ("0.01", None, "100", "notional"),  # a market order, judged at the reference price
        ("0.0004", "100000", None, "amount"),  # truncates to nothing
        ("200", "100", None, "amount"),  # above the max amount
    ],
)
def test_orders_outside_the_limits_are_rejected_before_sending(exchange, qty, limit, ref, words):
    with pytest.raises(VenueRejected) as e:
        size(exchange, qty, limit, ref)
    assert e.value.reason is RejectReason.INVALID_ORDER and words in str(e.value)


def test_a_market_order_with_no_price_cannot_be_checked_so_it_is_not_sent(exchange):
    with pytest.raises(VenueRejected) as e:
        size(exchange, "1")
    assert e.value.reason is RejectReason.NO_MARKET_DATA


def test_credentials_come_from_env_or_files_and_errors_never_echo_them(tmp_path, monkeypatch):
    secret_file = tmp_path / "secret"
    secret_file.write_text("s3cr3t-value\n")
    monkeypatch.setenv("TB_TEST_KEY", "key-value")
    cfg = VenueConfig(kind="ccxt", api_key_env="TB_TEST_KEY", secret_file=str(secret_file))
    assert credentials(cfg) == {"apiKey": "key-value", "secret": "s3cr3t-value"}
    monkeypatch.delenv("TB_TEST_KEY")
    with pytest.raises(ConfigError) as e:
        credentials(cfg)
    assert "TB_TEST_KEY" in str(e.value) and "key-value" not in str(e.value)


def test_the_exchange_is_sandboxed_first_and_never_retries_by_itself():
    ex = make_exchange(VenueConfig(kind="ccxt", exchange="binance", sandbox=True))
    assert ex.isSandboxModeEnabled and ex.options["maxRetriesOnFailure"] == 0
    assert "testnet" in ex.urls["api"]["public"]
    live = make_exchange(
        VenueConfig(kind="ccxt", exchange="binance", sandbox=False, api_urls={"public": "x"})
    )
    assert not live.isSandboxModeEnabled and live.urls["api"]["public"] == "x"
    with pytest.raises(ValueError):
        make_exchange(VenueConfig(kind="ccxt", exchange="no-such-exchange"))


def test_watch_orders_uses_ccxt_pro_and_ws_urls_point_it_elsewhere():
    import ccxt.pro

    ex = make_exchange(
        VenueConfig(
            kind="ccxt",
            exchange="binance",
            sandbox=False,
            watch_orders=True,
            ws_urls={"ws-api.spot": "ws://127.0.0.1:1/ws-api/v3"},
        )
    )
    assert isinstance(ex, ccxt.pro.binance)
    assert ex.urls["api"]["ws"]["ws-api"]["spot"] == "ws://127.0.0.1:1/ws-api/v3"
