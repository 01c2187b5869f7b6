"""The venue interface and the venue's record of an order (paper.py, ccxt_venue.py)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Protocol

import msgspec

from tradebus_common.events import (
    ExitReason,
    Liquidity,
    OrderApproved,
    OrderType,
    PositionView,
    RejectReason,
    Side,
    VenueTradeView,
)


class VenueOrderStatus(StrEnum):
    OPEN = "open"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"
    REJECTED = "rejected"
    EXPIRED = "expired"


WORKING = (VenueOrderStatus.OPEN, VenueOrderStatus.PARTIALLY_FILLED)


class VenueFill(msgspec.Struct, kw_only=True, frozen=True):
    trade_id: str
    quantity: Decimal
    price: Decimal
    fee: Decimal
    fee_currency: str
    liquidity: Liquidity


class VenueOrder(msgspec.Struct, kw_only=True, frozen=True):
    """The venue's record of one order, keyed by our client order id. It also keeps what the
    gateway needs to announce fills that happen later (strategy, ids of the approval)."""

    client_order_id: str
    venue_order_id: str
    symbol: str
    side: Side
    quantity: Decimal
    status: VenueOrderStatus
    order_type: OrderType = OrderType.MARKET
    limit_price: Decimal | None = None
    arrival_price: Decimal | None = None
    reject_reason: RejectReason | None = None
    reject_detail: str = ""
    fills: list[VenueFill] = []
    strategy: str = ""
    approved_id: str = ""
    correlation_id: str = ""
    last_tick_seq: int = 0  # MARKET sequence of the newest tick this order has seen
    exit_reason: ExitReason | None = None  # copied from the approval onto every fill

    @property
    def filled_quantity(self) -> Decimal:
        return sum((f.quantity for f in self.fills), Decimal(0))

    @property
    def remaining(self) -> Decimal:
        return self.quantity - self.filled_quantity

    @property
    def working(self) -> bool:
        return self.status in WORKING


class Venue(Protocol):
    name: str

    async def submit(self, order: OrderApproved) -> VenueOrder:
        """Idempotent on order.client_order_id: a repeat returns the first outcome."""
        ...

    async def cancel(self, client_order_id: str) -> VenueOrder | None:
        """Cancel a working order; a finished one is returned unchanged, an unknown one None."""
        ...

    async def fetch_order(self, client_order_id: str, symbol: str = "") -> VenueOrder | None:
        """The venue's record by our client order id (None: it has none). `symbol` is a hint
        for venues that look orders up per symbol."""
        ...

    async def open_orders(self) -> list[VenueOrder]: ...

    async def my_trades(self, since: datetime | None) -> list[VenueTradeView]:
        """Our executions at the venue since `since` (None: as far back as it keeps)."""
        ...

    async def balances(self) -> dict[str, Decimal]:
        """Total balance per currency."""
        ...

    async def positions(self) -> list[PositionView]: ...

    async def markets(self) -> list[str]:
        """The symbols this venue trades here."""
        ...
