"""The emulated exchange's state: orders, trades and balances, matched like Binance spot.

Market orders fill at once at the symbol's current price. Limit orders that cross on arrival
fill as taker; others rest and fill as maker when `set_price` crosses them. Balances move
with every fill (quote = USDT). A newClientOrderId that is already on an OPEN order is a
duplicate, as on Binance; ids of finished orders may be reused there, so the gateway must look
an id up before it ever sends it again.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from decimal import Decimal

MAKER_FEE = Decimal("0.001")
TAKER_FEE = Decimal("0.001")


class ExchangeReject(Exception):
    """A Binance error body: HTTP status, code and message."""

    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(msg)
        self.status, self.code, self.msg = status, code, msg


@dataclass
class SymbolSpec:
    base: str
    quote: str
    tick_size: Decimal = Decimal("0.01")
    step_size: Decimal = Decimal("0.00001")
    min_qty: Decimal = Decimal("0.00001")
    min_notional: Decimal = Decimal("5")


@dataclass
class Trade:
    id: int
    order_id: int
    symbol: str
    side: str
    price: Decimal
    qty: Decimal
    commission: Decimal
    commission_asset: str
    is_maker: bool
    time_ms: int


@dataclass
class Order:
    order_id: int
    client_order_id: str
    symbol: str
    side: str  # BUY | SELL
    type: str  # MARKET | LIMIT
    orig_qty: Decimal
    price: Decimal  # 0 for market orders
    time_ms: int
    status: str = "NEW"
    trades: list[Trade] = field(default_factory=list)

    @property
    def executed(self) -> Decimal:
        return sum((t.qty for t in self.trades), Decimal(0))

    @property
    def quote_qty(self) -> Decimal:
        return sum((t.qty * t.price for t in self.trades), Decimal(0))

    @property
    def open(self) -> bool:
        return self.status in ("NEW", "PARTIALLY_FILLED")


def now_ms() -> int:
    return int(time.time() * 1000)


class Book:
    def __init__(self, symbols: dict[str, SymbolSpec], balances: dict[str, Decimal]) -> None:
        self.symbols = symbols
        self.prices: dict[str, Decimal] = {}
        self.balances = dict(balances)
        self.orders: dict[int, Order] = {}
        self.trades: list[Trade] = []
        self._order_ids = itertools.count(1000)
        self._trade_ids = itertools.count(5000)

    # --- lookups ------------------------------------------------------------------------

    def spec(self, symbol: str) -> SymbolSpec:
        if symbol not in self.symbols:
            raise ExchangeReject(400, -1121, "Invalid symbol.")
        return self.symbols[symbol]

    def find(self, symbol: str, order_id: int | None, client_id: str | None) -> Order:
        for order in reversed(list(self.orders.values())):  # the newest with that client id
            if order.symbol != symbol:
                continue
            if order_id is not None and order.order_id == order_id:
                return order
            if order_id is None and client_id is not None and order.client_order_id == client_id:
                return order
        raise ExchangeReject(400, -2013, "Order does not exist.")

    def orders_with_client_id(self, client_id: str) -> list[Order]:
        return [o for o in self.orders.values() if o.client_order_id == client_id]

    # --- commands -----------------------------------------------------------------------

    def place(
        self, symbol: str, side: str, type_: str, qty: Decimal, price: Decimal, client_id: str
    ) -> Order:
        spec = self.spec(symbol)
        if any(o.open for o in self.orders_with_client_id(client_id)):
            raise ExchangeReject(400, -2010, "Duplicate order sent.")
        if qty < spec.min_qty or qty % spec.step_size:
            raise ExchangeReject(400, -1013, "Filter failure: LOT_SIZE")
        last = self.prices.get(symbol)
        if last is None:
            raise ExchangeReject(400, -1013, "Market is closed.")
        if qty * (price or last) < spec.min_notional:
            raise ExchangeReject(400, -1013, "Filter failure: NOTIONAL")
        self._check_funds(spec, side, qty, price or last)
        order = Order(
            order_id=next(self._order_ids),
            client_order_id=client_id,
            symbol=symbol,
            side=side,
            type=type_,
            orig_qty=qty,
            price=price,
            time_ms=now_ms(),
        )
        self.orders[order.order_id] = order
        if type_ == "MARKET" or self._crosses(order, last):
            fill_price = last if type_ == "MARKET" else price
            self._fill(order, order.orig_qty, fill_price, is_maker=False)
        return order

    def cancel(self, order: Order) -> Order:
        if not order.open:
            raise ExchangeReject(400, -2011, "Unknown order sent.")
        order.status = "CANCELED"
        return order

    def set_price(self, symbol: str, price: Decimal) -> list[Trade]:
        """A new last price: resting limit orders it crosses fill as maker at their price."""
        self.prices[symbol] = price
        filled: list[Trade] = []
        for order in list(self.orders.values()):
            if order.symbol == symbol and order.open and self._crosses(order, price):
                filled.append(self._fill(order, order.orig_qty - order.executed, order.price, True))
        return filled

    def fill_now(self, order: Order) -> Trade:
        """Test hook: the rest of an open order fills at its limit (a fill racing a cancel)."""
        return self._fill(order, order.orig_qty - order.executed, order.price, True)

    # --- internals ----------------------------------------------------------------------

    @staticmethod
    def _crosses(order: Order, last: Decimal) -> bool:
        if order.type != "LIMIT":
            return False
        return last <= order.price if order.side == "BUY" else last >= order.price

    def _check_funds(self, spec: SymbolSpec, side: str, qty: Decimal, price: Decimal) -> None:
        need, asset = (qty * price, spec.quote) if side == "BUY" else (qty, spec.base)
        if self.balances.get(asset, Decimal(0)) < need:
            raise ExchangeReject(
                400, -2010, "Account has insufficient balance for requested action."
            )

    def _fill(self, order: Order, qty: Decimal, price: Decimal, is_maker: bool) -> Trade:
        spec = self.symbols[order.symbol]
        rate = MAKER_FEE if is_maker else TAKER_FEE
        fee_asset = spec.base if order.side == "BUY" else spec.quote
        fee = (qty if order.side == "BUY" else qty * price) * rate
        trade = Trade(
            id=next(self._trade_ids),
            order_id=order.order_id,
            symbol=order.symbol,
            side=order.side,
            price=price,
            qty=qty,
            commission=fee,
            commission_asset=fee_asset,
            is_maker=is_maker,
            time_ms=now_ms(),
        )
        order.trades.append(trade)
        self.trades.append(trade)
        order.status = "FILLED" if order.executed >= order.orig_qty else "PARTIALLY_FILLED"
        sign = 1 if order.side == "BUY" else -1
        self._move(spec.base, sign * qty)
        self._move(spec.quote, -sign * qty * price)
        self._move(fee_asset, -fee)
        return trade

    def _move(self, asset: str, delta: Decimal) -> None:
        self.balances[asset] = self.balances.get(asset, Decimal(0)) + delta
