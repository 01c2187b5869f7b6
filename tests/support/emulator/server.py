"""A local Binance-spot REST emulator (aiohttp), for the real ccxt client to talk to.

It checks X-MBX-APIKEY and the HMAC-SHA256 signature like Binance (-2014 / -1022), matches
orders in `Book`, and lets a test inject faults per operation:

* `fail_next(op, status, count, retry_after_s)`: answer 429 (with Retry-After) or 5xx;
* `accept_then_hang(count)`: the next create is placed, but its response never comes in time;
* `hold_create(place=...)`: the next create waits (placed or not) until the test releases it,
  so a test can kill the caller at exactly that point, waiting on `held.arrived`;
* `fill_on_cancel`: an order fills just before a cancel reaches it (cancel answers -2011).

Operations: create, cancel, fetch_order, open_orders, my_trades, account, exchange_info, ticker.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
from collections import Counter, defaultdict
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from tradebus_common.stack.servers import free_port

from .book import Book, ExchangeReject, Order, SymbolSpec, Trade, now_ms
from .stream import UserStreams

API_KEYS = {"emu-key": "emu-secret"}
DEFAULT_SYMBOLS = {
    "BTCUSDT": SymbolSpec(base="BTC", quote="USDT"),
    "ETHUSDT": SymbolSpec(base="ETH", quote="USDT"),
}


class Fault:
    def __init__(self, status: int, count: int, retry_after_s: int | None) -> None:
        self.status, self.count, self.retry_after_s = status, count, retry_after_s


class Held:
    """One held create: `arrived` is set once it reached the emulator; `release()` lets it go."""

    def __init__(self, place: bool) -> None:
        self.place = place
        self.arrived = asyncio.Event()
        self.released = asyncio.Event()
        self.order: Order | None = None

    def release(self) -> None:
        self.released.set()


class BinanceEmulator:
    def __init__(self, balances: dict[str, Decimal] | None = None) -> None:
        self.book = Book(
            dict(DEFAULT_SYMBOLS),
            balances or {"USDT": Decimal("100000"), "BTC": Decimal("10"), "ETH": Decimal("100")},
        )
        self.port = free_port()
        self.calls: Counter[str] = Counter()
        self.creates_received: list[str] = []  # newClientOrderId of every create that arrived
        self._faults: dict[str, list[Fault]] = defaultdict(list)
        self._hang_creates = 0
        self._held: list[Held] = []
        self.fill_on_cancel = False
        self.hang_s = 30.0
        self._runner: web.AppRunner | None = None
        self._stopping = asyncio.Event()
        self._called = asyncio.Condition()
        # ws-api user data: executionReport pushes; each subscription counts as "subscribe"
        self.streams = UserStreams(API_KEYS, lambda: self._count("subscribe"))

    # --- test controls ------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v3"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws-api/v3"

    def set_price(self, symbol: str, price: str) -> list[Trade]:
        """A new last price; resting orders it crosses fill (and are pushed on the stream)."""
        trades = self.book.set_price(symbol.replace("/", ""), Decimal(price))
        if trades and self.streams.sockets:
            asyncio.get_running_loop().create_task(self._push_trades(trades))
        return trades

    async def _push_trades(self, trades: list[Trade]) -> None:
        for t in trades:
            await self.streams.report(self.book.orders[t.order_id], "TRADE", t)

    def fail_next(
        self, op: str, status: int = 503, count: int = 1, retry_after_s: int | None = None
    ) -> None:
        self._faults[op].append(Fault(status, count, retry_after_s))

    def accept_then_hang(self, count: int = 1) -> None:
        self._hang_creates += count

    def hold_create(self, place: bool) -> Held:
        held = Held(place)
        self._held.append(held)
        return held

    async def _count(self, op: str) -> None:
        self.calls[op] += 1
        async with self._called:
            self._called.notify_all()

    async def wait_calls(self, op: str, count: int, timeout: float = 10.0) -> None:
        """Wait until `op` has been called `count` times (polling shows up here)."""

        async def reached() -> None:
            async with self._called:
                await self._called.wait_for(lambda: self.calls[op] >= count)

        await asyncio.wait_for(reached(), timeout)

    def orders_for(self, client_id: str) -> list[Order]:
        return self.book.orders_with_client_id(client_id)

    # --- server ---------------------------------------------------------------------------

    async def start(self) -> BinanceEmulator:
        app = web.Application(middlewares=[self._errors])
        r = app.router
        r.add_get("/api/v3/ping", _ping)
        r.add_get("/api/v3/time", _time)
        r.add_get("/api/v3/exchangeInfo", self._exchange_info)
        r.add_get("/api/v3/ticker/24hr", self._ticker)
        r.add_get("/api/v3/ticker/price", self._ticker)
        r.add_get("/api/v3/ticker/bookTicker", self._ticker)
        r.add_post("/api/v3/order", self._create)
        r.add_get("/api/v3/order", self._fetch_order)
        r.add_delete("/api/v3/order", self._cancel)
        r.add_get("/api/v3/openOrders", self._open_orders)
        r.add_get("/api/v3/myTrades", self._my_trades)
        r.add_get("/api/v3/account", self._account)
        r.add_get("/ws-api/v3", self.streams.handler)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        self._stopping.set()
        await self.streams.drop_all()
        for held in self._held:
            held.release()
        if self._runner:
            await self._runner.cleanup()

    @web.middleware
    async def _errors(self, request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            return await handler(request)
        except ExchangeReject as e:
            return web.json_response({"code": e.code, "msg": e.msg}, status=e.status)

    # --- auth and faults ------------------------------------------------------------------

    async def _signed(self, request: web.Request, op: str) -> dict[str, str]:
        """The request's parameters once the key and signature check out (else a reject)."""
        self.calls[op] += 1
        async with self._called:
            self._called.notify_all()
        raw = request.query_string if request.method in ("GET", "DELETE") else await request.text()
        if op == "create":  # every create that reached us, even one a fault then refuses
            self.creates_received.append(dict(parse_qsl(raw)).get("newClientOrderId", ""))
        self._inject(op)
        secret = API_KEYS.get(request.headers.get("X-MBX-APIKEY", ""))
        if secret is None:
            raise ExchangeReject(401, -2014, "API-key format invalid.")
        payload, _, signature = raw.rpartition("&signature=")
        expected = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            raise ExchangeReject(400, -1022, "Signature for this request is not valid.")
        params = dict(parse_qsl(payload))
        # Like Binance: a request older than its recvWindow is refused, so a create lost on
        # the way can never be executed later (what makes "not found after the grace" final).
        if now_ms() - int(params.get("timestamp", 0)) > int(params.get("recvWindow", 5000)):
            raise ExchangeReject(
                400, -1021, "Timestamp for this request is outside of the recvWindow."
            )
        return params

    def _inject(self, op: str) -> None:
        queue = self._faults.get(op)
        if not queue:
            return
        fault = queue[0]
        fault.count -= 1
        if fault.count <= 0:
            queue.pop(0)
        headers = {"Retry-After": str(fault.retry_after_s)} if fault.retry_after_s else {}
        body = '{"code":-1003,"msg":"Too many requests."}' if fault.status == 429 else "fault"
        raise _status(fault.status, headers, body)

    # --- endpoints ------------------------------------------------------------------------

    async def _exchange_info(self, request: web.Request) -> web.Response:
        self.calls["exchange_info"] += 1
        self._inject("exchange_info")
        return web.json_response(
            {
                "timezone": "UTC",
                "serverTime": now_ms(),
                "rateLimits": [],
                "exchangeFilters": [],
                "symbols": [_symbol_info(name, s) for name, s in self.book.symbols.items()],
            }
        )

    async def _ticker(self, request: web.Request) -> web.Response:
        self.calls["ticker"] += 1
        self._inject("ticker")
        symbol = request.query.get("symbol", "")
        price = self.book.prices.get(symbol)
        if price is None:
            raise ExchangeReject(400, -1121, "Invalid symbol.")
        return web.json_response(_ticker(symbol, price))

    async def _create(self, request: web.Request) -> web.StreamResponse:
        p = await self._signed(request, "create")
        if self._held:
            return await self._held_create(self._held.pop(0), p)
        order = await self._place(p)
        if self._hang_creates:
            self._hang_creates -= 1
            with contextlib.suppress(TimeoutError):  # placed, but the caller times out first
                await asyncio.wait_for(self._stopping.wait(), self.hang_s)
        return web.json_response(_order_full(order))

    async def _held_create(self, held: Held, p: dict[str, str]) -> web.StreamResponse:
        if held.place:
            held.order = await self._place(p)
        held.arrived.set()
        await held.released.wait()
        if held.order is None:  # never placed: as if the request was lost on the way
            raise ExchangeReject(503, -1001, "Internal error; unable to process your request.")
        return web.json_response(_order_full(held.order))

    async def _place(self, p: dict[str, str]) -> Order:
        order = self.book.place(
            p["symbol"],
            p["side"],
            p["type"],
            Decimal(p["quantity"]),
            Decimal(p.get("price", "0")),
            p.get("newClientOrderId", ""),
        )
        await self.streams.report(order, "NEW")
        for trade in order.trades:
            await self.streams.report(order, "TRADE", trade)
        return order

    async def _fetch_order(self, request: web.Request) -> web.Response:
        p = await self._signed(request, "fetch_order")
        return web.json_response(_order(self._lookup(p)))

    async def _cancel(self, request: web.Request) -> web.Response:
        p = await self._signed(request, "cancel")
        order = self._lookup(p)
        if self.fill_on_cancel and order.open:  # the fill wins the race; the cancel finds none
            await self.streams.report(order, "TRADE", self.book.fill_now(order))
        canceled = self.book.cancel(order)
        await self.streams.report(canceled, "CANCELED")
        return web.json_response(_order(canceled))

    def _lookup(self, p: dict[str, str]) -> Order:
        order_id = int(p["orderId"]) if "orderId" in p else None
        return self.book.find(p.get("symbol", ""), order_id, p.get("origClientOrderId"))

    async def _open_orders(self, request: web.Request) -> web.Response:
        p = await self._signed(request, "open_orders")
        symbol = p.get("symbol")
        orders = [
            o for o in self.book.orders.values() if o.open and (not symbol or o.symbol == symbol)
        ]
        return web.json_response([_order(o) for o in orders])

    async def _my_trades(self, request: web.Request) -> web.Response:
        p = await self._signed(request, "my_trades")
        since = int(p.get("startTime", 0))
        order_id = int(p["orderId"]) if "orderId" in p else None
        trades = [
            t
            for t in self.book.trades
            if t.symbol == p.get("symbol")
            and t.time_ms >= since
            and (order_id is None or t.order_id == order_id)
        ]
        limit = int(p.get("limit", 500))  # oldest first from startTime, one page
        return web.json_response([_trade(t) for t in trades[:limit]])

    async def _account(self, request: web.Request) -> web.Response:
        await self._signed(request, "account")
        balances = [
            {"asset": a, "free": str(q), "locked": "0"} for a, q in self.book.balances.items()
        ]
        return web.json_response(
            {
                "makerCommission": 10,
                "takerCommission": 10,
                "canTrade": True,
                "canWithdraw": True,
                "canDeposit": True,
                "updateTime": now_ms(),
                "accountType": "SPOT",
                "balances": balances,
                "permissions": ["SPOT"],
            }
        )


async def _ping(_: web.Request) -> web.Response:
    return web.json_response({})


async def _time(_: web.Request) -> web.Response:
    return web.json_response({"serverTime": now_ms()})


def _status(status: int, headers: dict[str, str], body: str) -> web.HTTPException:
    """An HTTP error response that can be raised from anywhere in a handler."""
    exc = web.HTTPException(headers=headers, text=body)
    exc.set_status(status)
    return exc


# --- Binance wire shapes ------------------------------------------------------------------


def _symbol_info(name: str, s: SymbolSpec) -> dict[str, Any]:
    return {
        "symbol": name,
        "status": "TRADING",
        "baseAsset": s.base,
        "baseAssetPrecision": 8,
        "quoteAsset": s.quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "orderTypes": ["LIMIT", "MARKET"],
        "icebergAllowed": True,
        "ocoAllowed": False,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "permissions": ["SPOT"],
        "permissionSets": [["SPOT"]],
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": str(s.tick_size),
                "maxPrice": "1000000.00",
                "tickSize": str(s.tick_size),
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": str(s.min_qty),
                "maxQty": "9000.00000",
                "stepSize": str(s.step_size),
            },
            {
                "filterType": "NOTIONAL",
                "minNotional": str(s.min_notional),
                "applyMinToMarket": True,
                "maxNotional": "9000000.00",
                "applyMaxToMarket": False,
                "avgPriceMins": 5,
            },
        ],
    }


def _ticker(symbol: str, price: Decimal) -> dict[str, Any]:
    p = str(price)
    return {
        "symbol": symbol,
        "price": p,
        "lastPrice": p,
        "bidPrice": p,
        "askPrice": p,
        "bidQty": "1",
        "askQty": "1",
        "openPrice": p,
        "highPrice": p,
        "lowPrice": p,
        "volume": "0",
        "quoteVolume": "0",
        "openTime": now_ms() - 86_400_000,
        "closeTime": now_ms(),
        "count": 0,
    }


def _order(o: Order) -> dict[str, Any]:
    return {
        "symbol": o.symbol,
        "orderId": o.order_id,
        "orderListId": -1,
        "clientOrderId": o.client_order_id,
        "price": str(o.price),
        "origQty": str(o.orig_qty),
        "executedQty": str(o.executed),
        "cummulativeQuoteQty": str(o.quote_qty),
        "status": o.status,
        "timeInForce": "GTC",
        "type": o.type,
        "side": o.side,
        "time": o.time_ms,
        "updateTime": now_ms(),
        "isWorking": o.open,
        "workingTime": o.time_ms,
        "origQuoteOrderQty": "0",
        "selfTradePreventionMode": "NONE",
    }


def _order_full(o: Order) -> dict[str, Any]:
    fills = [
        {
            "price": str(t.price),
            "qty": str(t.qty),
            "commission": str(t.commission),
            "commissionAsset": t.commission_asset,
            "tradeId": t.id,
        }
        for t in o.trades
    ]
    return {**_order(o), "transactTime": o.time_ms, "fills": fills}


def _trade(t: Trade) -> dict[str, Any]:
    return {
        "symbol": t.symbol,
        "id": t.id,
        "orderId": t.order_id,
        "orderListId": -1,
        "price": str(t.price),
        "qty": str(t.qty),
        "quoteQty": str(t.qty * t.price),
        "commission": str(t.commission),
        "commissionAsset": t.commission_asset,
        "time": t.time_ms,
        "isBuyer": t.side == "BUY",
        "isMaker": t.is_maker,
        "isBestMatch": True,
    }
