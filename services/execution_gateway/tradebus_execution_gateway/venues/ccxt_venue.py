"""CcxtVenue: a real exchange through ccxt.async_support (E1, E3).

* One exchange instance per venue (= per API key), so ccxt's rate limiter is per key.
* Sandbox or demo by config; `set_sandbox_mode` is the first call after construction.
* Credentials only from the environment variables or secret files the config names.
* Markets loaded once and cached; orders sized to precision and limits before sending.
* Create is sent once: ccxt's own retry is off, and an error that may have reached the venue
  raises OutcomeUnknown (the gateway marks the order UNKNOWN and looks it up by client id).
* Reads and cancels retry transient errors with backoff and jitter, honouring Retry-After.
* Every call passes the venue's circuit breaker; every call's latency is published.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import ccxt.async_support as ccxt
import ccxt.pro as ccxtpro
import msgspec

from tradebus_common.bus import raise_if_cancelling
from tradebus_common.config import VenueConfig
from tradebus_common.events import (
    Event,
    Liquidity,
    OrderApproved,
    OrderType,
    PositionView,
    RejectReason,
    Side,
    VenueLatencyObserved,
    VenueTradeView,
)

from .base import VenueFill, VenueOrder, VenueOrderStatus
from .breaker_events import breaker_events
from .credentials import credentials
from .errors import (
    ErrorClass,
    OutcomeUnknown,
    VenueBreakerOpen,
    VenueRejected,
    VenueUnavailable,
    classify,
    reject_reason,
    retry_after_s,
)
from .resilience import CircuitBreaker, backoff_s
from .sizing import dec, size_order

log = logging.getLogger("tradebus.execution_gateway.ccxt")

Emit = Callable[[list[Event]], Awaitable[None]]
CLOSE_TIMEOUT_S = 5.0
TRADES_PAGE = 500  # Binance's default page of myTrades
REMEMBERED_ORDERS = 20_000

_STATUS = {
    "closed": VenueOrderStatus.FILLED,
    "canceled": VenueOrderStatus.CANCELED,
    "cancelled": VenueOrderStatus.CANCELED,
    "expired": VenueOrderStatus.EXPIRED,
    "rejected": VenueOrderStatus.REJECTED,
}


def make_exchange(config: VenueConfig) -> ccxt.Exchange:
    """The ccxt client for one venue: sandbox/demo first, our retry policy, no secrets logged."""
    if config.exchange not in ccxt.exchanges:
        raise ValueError(f"unknown ccxt exchange id {config.exchange!r}")
    if config.watch_orders and config.exchange not in ccxtpro.exchanges:
        raise ValueError(f"ccxt.pro has no {config.exchange!r}: set watch_orders = false")
    params: dict[str, Any] = {
        "enableRateLimit": True,
        "timeout": config.timeout_ms,
        "options": _options(config),
        **credentials(config),
    }
    if config.rate_limit_ms:
        params["rateLimit"] = config.rate_limit_ms
    module = ccxtpro if config.watch_orders else ccxt  # ccxt.pro: the same REST, plus ws
    exchange = getattr(module, config.exchange)(params)
    if config.sandbox and not config.demo:
        exchange.set_sandbox_mode(True)  # must come before any other call
    if config.demo:
        exchange.enable_demo_trading(True)
    # Never let ccxt resend a request by itself (a resent create is a duplicate order).
    exchange.options["maxRetriesOnFailure"] = 0
    for key, url in config.api_urls.items():
        exchange.urls["api"][key] = url
    for path, url in config.ws_urls.items():  # "ws-api.spot" -> urls['api']['ws']['ws-api']['spot']
        *parents, leaf = path.split(".")
        node = exchange.urls["api"]["ws"]
        for part in parents:
            node = node[part]
        node[leaf] = url
    return exchange


def _options(config: VenueConfig) -> dict[str, Any]:
    options: dict[str, Any] = {"defaultType": config.market_type}
    if config.exchange.startswith("binance"):
        # Only the markets we trade; no sapi margin/currency calls a spot key may not have.
        options |= {
            "fetchMarkets": {"types": [config.market_type]},
            "fetchCurrencies": False,
            "fetchMargins": False,
        }
    return options


class CcxtVenue:
    needs_polling = True  # order updates come from REST polling of working orders (E6)

    def __init__(
        self,
        name: str,
        config: VenueConfig,
        exchange: ccxt.Exchange,
        emit: Emit,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self.exchange = exchange
        self.emit = emit
        self.clock = clock
        self.rng = rng or random.Random()
        self.breaker = CircuitBreaker(config.breaker_failures, config.breaker_open_s)
        self._symbol_of: dict[str, str] = {}  # client order id -> symbol (lookups need it)
        # Our orders' approvals: the venue's records lack who asked (strategy, ids, exit
        # reason), which halt scopes and fills need. Refilled from the journal on restart.
        self._approval_of: dict[str, OrderApproved] = {}
        self._cid_of: dict[str, str] = {}  # venue order id -> client order id
        # Cancels we asked for: whoever cancels announces it, so polling must not again.
        self.cancel_requested: set[str] = set()
        self.trades_page = TRADES_PAGE

    async def start(self) -> None:
        await self._call("load_markets", self.exchange.load_markets)

    async def close(self) -> None:
        """Close the HTTP session; bounded, so a stuck connection cannot hold up a shutdown."""
        try:
            await asyncio.wait_for(self.exchange.close(), CLOSE_TIMEOUT_S)
        except TimeoutError:
            log.warning("ccxt session close timed out", extra={"venue": self.name})

    # --- orders ---------------------------------------------------------------------------

    async def submit(self, order: OrderApproved) -> VenueOrder:
        """Send once. A business reject (ours or the venue's) is a REJECTED record; a maybe-sent
        error raises OutcomeUnknown; an open breaker raises VenueBreakerOpen (not sent)."""
        self.remember(order)
        reference = order.reference_price
        if order.order_type is OrderType.MARKET and reference is None:
            reference = await self._last_price(order.symbol)
        try:
            sized = size_order(
                self._market(order.symbol),
                order.quantity,
                order.limit_price if order.order_type is OrderType.LIMIT else None,
                reference,
                self.exchange.amount_to_precision,
                self.exchange.price_to_precision,
            )
        except VenueRejected as e:
            return self._rejected(order, e.reason, str(e))
        try:
            raw = await self._call(
                "create_order",
                self.exchange.create_order,
                order.symbol,
                order.order_type.value,
                order.side.value,
                float(sized.amount),
                float(sized.price) if sized.price is not None else None,
                self._create_params(order),
                create=True,
            )
        except (VenueBreakerOpen, OutcomeUnknown):
            raise
        except ccxt.BaseError as e:  # final: the venue refused the order
            return self._rejected(order, reject_reason(e), str(e))
        result = self._from_approval(order, self._to_order(raw, order.symbol, [], order))
        if result.arrival_price is None:  # judged at the venue's last price instead
            result = msgspec.structs.replace(result, arrival_price=reference)
        return self._settled(result)

    def _create_params(self, order: OrderApproved) -> dict[str, Any]:
        params: dict[str, Any] = {"clientOrderId": order.client_order_id}
        if order.reduce_only and self.config.market_type != "spot":  # spot has no such flag
            params["reduceOnly"] = True
        return params

    def remember(self, approval: OrderApproved) -> None:
        """An order of ours (at submit, or from the journal after a restart)."""
        self._symbol_of[approval.client_order_id] = approval.symbol
        self._approval_of.pop(approval.client_order_id, None)  # now the newest
        self._approval_of[approval.client_order_id] = approval

    async def _last_price(self, symbol: str) -> Decimal | None:
        """The last price, to judge a market order's notional when the approval has none."""
        try:
            ticker = await self.fetch_ticker(symbol)
        except Exception as e:  # no price: the order is refused NO_MARKET_DATA, not sent
            log.warning("no last price", extra={"venue": self.name, "error": repr(e)})
            return None
        return dec(ticker.get("last") or ticker.get("close"))

    async def fetch_order(self, client_order_id: str, symbol: str = "") -> VenueOrder | None:
        """The venue's record by our client order id, with its fills; None when it has none.
        Without a symbol, the configured symbols are tried in turn."""
        symbols = [symbol or self._symbol_of.get(client_order_id, "")]
        if not symbols[0]:
            symbols = list(self.config.symbols)
        for sym in symbols:
            try:
                raw = await self._call(
                    "fetch_order",
                    self.exchange.fetch_order,
                    None,
                    sym,
                    {"clientOrderId": client_order_id},
                )
            except ccxt.OrderNotFound:
                continue
            self._symbol_of[client_order_id] = sym
            return await self._with_fills(raw, sym)
        return None

    async def cancel(self, client_order_id: str) -> VenueOrder | None:
        """Cancel a working order. When a fill won the race the venue says "unknown order":
        the order is then looked up, so its fills are reported instead of a cancel."""
        symbol = self._symbol_of.get(client_order_id, "")
        found = None if symbol else await self.fetch_order(client_order_id)
        if found is not None and not found.working:  # nothing left to cancel
            return found
        symbol = symbol or (found.symbol if found else "")
        if not symbol:
            return None
        self.cancel_requested.add(client_order_id)
        try:
            await self._call(
                "cancel_order",
                self.exchange.cancel_order,
                None,
                symbol,
                {"clientOrderId": client_order_id},
            )
        except ccxt.OrderNotFound:
            log.info(
                "cancel found no open order (filled or gone): looking it up",
                extra={"venue": self.name, "client_order_id": client_order_id},
            )
        return await self.fetch_order(client_order_id, symbol)

    async def open_orders(self) -> list[VenueOrder]:
        orders: list[VenueOrder] = []
        for symbol in self.config.symbols:
            raws = await self._call("fetch_open_orders", self.exchange.fetch_open_orders, symbol)
            for raw in raws:
                orders.append(await self._with_fills(raw, symbol))
        return orders

    async def my_trades(self, since: datetime | None) -> list[VenueTradeView]:
        since_ms = int(since.timestamp() * 1000) if since else None
        views: list[VenueTradeView] = []
        for symbol in self.config.symbols:
            for t in await self._all_trades(symbol, since_ms):
                views.append(await self._trade_view(t, symbol))
        return views

    async def _all_trades(self, symbol: str, since_ms: int | None) -> list[dict[str, Any]]:
        """Every page: the next one starts at the last trade's time (inclusive, so trades
        sharing that millisecond are not skipped; repeats are dropped by trade id)."""
        found: dict[str, dict[str, Any]] = {}
        while True:
            page = await self._call(
                "fetch_my_trades", self.exchange.fetch_my_trades, symbol, since_ms, self.trades_page
            )
            fresh = [t for t in page if str(t.get("id")) not in found]
            found.update((str(t.get("id")), t) for t in fresh)
            if len(page) < self.trades_page or not fresh or page[-1].get("timestamp") is None:
                return list(found.values())
            since_ms = page[-1]["timestamp"]

    async def balances(self) -> dict[str, Decimal]:
        raw = await self._call("fetch_balance", self.exchange.fetch_balance)
        totals = raw.get("total") or {}
        return {c: q for c, v in sorted(totals.items()) if (q := dec(v))}

    async def positions(self) -> list[PositionView]:
        """Spot: the base currency's balance per configured symbol; derivatives: positions."""
        if self.config.market_type != "spot":
            raws = await self._call("fetch_positions", self.exchange.fetch_positions)
            return [_position_view(self.name, p) for p in raws if p.get("contracts")]
        balances = await self.balances()
        return [
            PositionView(
                venue=self.name, symbol=s, quantity=balances.get(s.split("/")[0], Decimal(0))
            )
            for s in self.config.symbols
        ]

    async def markets(self) -> list[str]:
        loaded = self.exchange.markets or {}
        return [s for s in self.config.symbols if s in loaded] or sorted(loaded)

    async def watch_updates(self, updated: Callable[[str], None], gap: Callable[[], None]) -> None:
        """ccxt.pro watch_orders (E6): each pushed update names an order to look up now; the
        lookup (REST) stays the truth, so a push only makes it sooner. A dropped stream calls
        `gap` (look up every working order now), then reconnects with backoff; polling goes
        on meanwhile, so nothing is lost across the gap."""
        failures = 0
        while True:
            try:
                orders = await self.exchange.watch_orders()
            except Exception as e:
                raise_if_cancelling()
                failures += 1
                log.warning(
                    "order stream lost; polling catches up",
                    extra={"venue": self.name, "error": repr(e)[:200]},
                )
                gap()
                await asyncio.sleep(
                    backoff_s(
                        failures,
                        self.config.retry_base_ms / 1000,
                        self.config.retry_max_ms / 1000,
                        self.rng,
                    )
                )
                continue
            failures = 0
            for raw in orders:
                if raw.get("clientOrderId"):
                    updated(raw["clientOrderId"])

    async def fetch_ticker(self, symbol: str) -> dict[str, Any]:
        return await self._call("fetch_ticker", self.exchange.fetch_ticker, symbol)

    # --- the one call path: breaker, timing, classification, retries ------------------------

    async def _call(
        self, op: str, fn: Callable[..., Awaitable[Any]], *args: Any, create: bool = False
    ) -> Any:
        attempt = 0
        while True:
            attempt += 1
            try:
                return await self._once(op, fn, args, create)
            except VenueUnavailable as e:
                if (
                    create
                    or attempt >= self.config.retry_attempts
                    or isinstance(e, VenueBreakerOpen)
                ):
                    raise
                delay = backoff_s(
                    attempt,
                    self.config.retry_base_ms / 1000,
                    self.config.retry_max_ms / 1000,
                    self.rng,
                    e.retry_after_s,
                )
                log.warning(
                    "venue call failed; retrying",
                    extra={"venue": self.name, "op": op, "attempt": attempt, "delay_s": delay},
                )
                await asyncio.sleep(delay)

    async def _once(
        self, op: str, fn: Callable[..., Awaitable[Any]], args: tuple, create: bool
    ) -> Any:
        allowed, moved = self.breaker.allow(self.clock())
        await self._breaker_moved(moved)
        if not allowed:
            raise VenueBreakerOpen(f"{self.name}: circuit breaker {self.breaker.state}")
        started = time.perf_counter()
        try:
            result = await fn(*args)
        except Exception as e:
            kind = classify(e, create)
            await self._latency(op, started, ok=kind is ErrorClass.FINAL, create=create)
            if kind is ErrorClass.FINAL:  # the venue answered: it is up
                await self._breaker_moved(self.breaker.success())
                raise
            await self._breaker_moved(
                self.breaker.failure(self.clock(), f"{op}: {type(e).__name__}")
            )
            wait = retry_after_s(getattr(self.exchange, "last_response_headers", None))
            if kind is ErrorClass.AMBIGUOUS:
                raise OutcomeUnknown(f"{op} outcome unknown: {type(e).__name__}: {e}") from e
            raise VenueUnavailable(f"{op}: {type(e).__name__}: {e}", wait) from e
        await self._latency(op, started, ok=True, create=create)
        await self._breaker_moved(self.breaker.success())
        return result

    async def _latency(self, op: str, started: float, ok: bool, create: bool) -> None:
        if create:  # the gateway's handler publishes the create latency (derived id)
            return
        ms = round((time.perf_counter() - started) * 1000)
        await self._emit(
            [VenueLatencyObserved(venue=self.name, operation=op, latency_ms=ms, ok=ok)]
        )

    async def _breaker_moved(self, moved: Any) -> None:
        if moved is not None:
            log.warning(
                "venue circuit breaker moved",
                extra={"venue": self.name, "state": moved.state.value, "reason": moved.reason},
            )
            await self._emit(breaker_events(self.name, moved))

    async def _emit(self, events: list[Event]) -> None:
        try:
            await self.emit(events)
        except Exception as e:  # telemetry must never fail an order path
            log.warning("venue event publish failed", extra={"venue": self.name, "error": repr(e)})

    # --- ccxt structures -> ours ----------------------------------------------------------

    def _market(self, symbol: str) -> dict[str, Any]:
        try:
            return self.exchange.market(symbol)
        except ccxt.BaseError as e:
            raise VenueRejected(
                f"{self.name}: unknown symbol {symbol}", RejectReason.INVALID_ORDER
            ) from e

    async def _with_fills(self, raw: dict[str, Any], symbol: str) -> VenueOrder:
        trades = raw.get("trades") or []
        if (dec(raw.get("filled")) or 0) > 0 and not trades and raw.get("id"):
            trades = await self._call(
                "fetch_order_trades", self.exchange.fetch_order_trades, raw["id"], symbol
            )
        order = self._to_order(raw, symbol, trades, None)
        approval = self._approval_of.get(order.client_order_id)
        return self._settled(self._from_approval(approval, order) if approval else order)

    def _settled(self, order: VenueOrder) -> VenueOrder:
        """Bound the memory of our orders: the oldest are forgotten first (the journal keeps
        them all; a forgotten order's symbol is found by trying the configured ones)."""
        while len(self._approval_of) > REMEMBERED_ORDERS:
            cid = next(iter(self._approval_of))
            del self._approval_of[cid]
            self._symbol_of.pop(cid, None)
        return order

    def _to_order(
        self,
        raw: dict[str, Any],
        symbol: str,
        trades: list[dict[str, Any]],
        approval: OrderApproved | None,
    ) -> VenueOrder:
        trades = trades or raw.get("trades") or []
        fills = [_fill(t) for t in trades if t.get("id") is not None]
        filled = dec(raw.get("filled")) or Decimal(0)
        status = _STATUS.get(raw.get("status") or "", VenueOrderStatus.OPEN)
        if status is VenueOrderStatus.OPEN and filled > 0:
            status = VenueOrderStatus.PARTIALLY_FILLED
        cid = raw.get("clientOrderId") or (approval.client_order_id if approval else "")
        if raw.get("id"):
            self._cid_of[str(raw["id"])] = cid
        return VenueOrder(
            client_order_id=cid,
            venue_order_id=str(raw.get("id") or ""),
            symbol=symbol,
            side=Side(raw.get("side") or (approval.side if approval else "buy")),
            quantity=dec(raw.get("amount")) or (approval.quantity if approval else Decimal(0)),
            status=status,
            order_type=OrderType.LIMIT if raw.get("type") == "limit" else OrderType.MARKET,
            limit_price=dec(raw.get("price")) if raw.get("type") == "limit" else None,
            fills=fills,
        )

    def _from_approval(self, approval: OrderApproved, order: VenueOrder) -> VenueOrder:
        return msgspec.structs.replace(
            order,
            strategy=approval.strategy,
            approved_id=approval.id,
            correlation_id=approval.correlation_id,
            arrival_price=approval.reference_price,
            exit_reason=approval.exit_reason,
        )

    def _rejected(self, approval: OrderApproved, reason: RejectReason, detail: str) -> VenueOrder:
        log.warning(
            "order rejected",
            extra={
                "venue": self.name,
                "client_order_id": approval.client_order_id,
                "reason": reason,
            },
        )
        return self._from_approval(
            approval,
            VenueOrder(
                client_order_id=approval.client_order_id,
                venue_order_id="",
                symbol=approval.symbol,
                side=approval.side,
                quantity=approval.quantity,
                status=VenueOrderStatus.REJECTED,
                order_type=approval.order_type,
                limit_price=approval.limit_price,
                reject_reason=reason,
                reject_detail=detail[:300],
            ),
        )

    async def _trade_view(self, t: dict[str, Any], symbol: str) -> VenueTradeView:
        order_id = str(t.get("order") or "")
        cid = self._cid_of.get(order_id, "")
        if order_id and not cid:  # a trade of an order we have not seen here: ask once
            raw = await self._call("fetch_order", self.exchange.fetch_order, order_id, symbol)
            cid = self._cid_of[order_id] = raw.get("clientOrderId") or ""
        fill = _fill(t)
        ts = t.get("timestamp")
        return VenueTradeView(
            trade_id=fill.trade_id,
            client_order_id=cid,
            venue_order_id=order_id,
            symbol=symbol,
            side=Side(t.get("side") or "buy"),
            quantity=fill.quantity,
            price=fill.price,
            fee=fill.fee,
            fee_currency=fill.fee_currency,
            liquidity=fill.liquidity,
            ts=datetime.fromtimestamp(ts / 1000, UTC) if ts else None,
        )


def _fill(t: dict[str, Any]) -> VenueFill:
    fee = t.get("fee") or {}
    # Fills in a create's answer carry no maker/taker flag: they executed on arrival (taker).
    maker = t.get("takerOrMaker") == "maker"
    return VenueFill(
        trade_id=str(t["id"]),
        quantity=dec(t.get("amount")) or Decimal(0),
        price=dec(t.get("price")) or Decimal(0),
        fee=dec(fee.get("cost")) or Decimal(0),
        fee_currency=fee.get("currency") or "",
        liquidity=Liquidity.MAKER if maker else Liquidity.TAKER,
    )


def _position_view(venue: str, p: dict[str, Any]) -> PositionView:
    qty = dec(p.get("contracts")) or Decimal(0)
    return PositionView(
        venue=venue,
        symbol=p.get("symbol", ""),
        quantity=-qty if p.get("side") == "short" else qty,
        avg_price=dec(p.get("entryPrice")) or Decimal(0),
        mark_price=dec(p.get("markPrice")),
        unrealized_pnl=dec(p.get("unrealizedPnl")) or Decimal(0),
    )
