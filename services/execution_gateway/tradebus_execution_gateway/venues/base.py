"""The venue interface. The foundation has the paper venue; ccxt venues come next."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Protocol

import msgspec

from tradebus_common.events import Liquidity, OrderApproved, PositionView, RejectReason, Side


class VenueOrderStatus(StrEnum):
    FILLED = "filled"
    REJECTED = "rejected"


class VenueFill(msgspec.Struct, kw_only=True, frozen=True):
    trade_id: str
    quantity: Decimal
    price: Decimal
    fee: Decimal
    fee_currency: str
    liquidity: Liquidity


class VenueOrder(msgspec.Struct, kw_only=True, frozen=True):
    """The venue's record of one order, keyed by our client order id."""

    client_order_id: str
    venue_order_id: str
    symbol: str
    side: Side
    quantity: Decimal
    status: VenueOrderStatus
    arrival_price: Decimal | None = None
    reject_reason: RejectReason | None = None
    reject_detail: str = ""
    fills: list[VenueFill] = []


class Venue(Protocol):
    name: str

    async def submit(self, order: OrderApproved) -> VenueOrder:
        """Idempotent on order.client_order_id: a repeat returns the first outcome."""
        ...

    async def fetch_order(self, client_order_id: str) -> VenueOrder | None: ...

    async def positions(self) -> list[PositionView]: ...
