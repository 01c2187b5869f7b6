"""Venue queries over core NATS request/reply, for the reconciler (docs/reconciliation.md).

rpc.venue.<venue>.<query>, JSON in and out:

| query | request | reply |
|---|---|---|
| positions | - | list[PositionView] |
| open_orders | - | list[VenueOrderView] |
| order | {"client_order_id"} | VenueOrderView or null (the venue does not know it) |
| trades | {"since"} (ISO time or null) | list[VenueTradeView] |
| balances | - | list[BalanceView] ([] when the venue has no balances) |
| cancel | {"client_order_id"} | VenueOrderView or null |

A failure answers {"error": "..."} so the reconciler reports the venue unavailable instead of
waiting for its timeout. Nothing here changes state except `cancel`, which the reconciler
sends only by policy (external orders).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import msgspec
from nats.aio.msg import Msg

from tradebus_common import subjects
from tradebus_common.bus import Bus
from tradebus_common.events import (
    BalanceView,
    ReconGate,
    ReconGateState,
    VenueOrderView,
    VenueTradeView,
)
from tradebus_common.mirror import bucket_entries
from tradebus_common.runtime import ServiceContext

from .venues.base import Venue, VenueOrder

log = logging.getLogger("tradebus.execution_gateway.rpc")
_encoder = msgspec.json.Encoder(decimal_format="string")


class _Query(msgspec.Struct, kw_only=True):
    client_order_id: str = ""
    since: datetime | None = None


_query_decoder = msgspec.json.Decoder(_Query)
Query = Callable[[Venue, _Query], Awaitable[Any]]


def order_view(order: VenueOrder) -> VenueOrderView:
    return VenueOrderView(
        client_order_id=order.client_order_id,
        venue_order_id=order.venue_order_id,
        symbol=order.symbol,
        side=order.side,
        quantity=order.quantity,
        filled=order.filled_quantity,
        status=order.status.value,
        order_type=order.order_type,
        limit_price=order.limit_price,
        strategy=order.strategy,
    )


def trade_views(order: VenueOrder) -> list[VenueTradeView]:
    return [
        VenueTradeView(
            trade_id=f.trade_id,
            client_order_id=order.client_order_id,
            venue_order_id=order.venue_order_id,
            symbol=order.symbol,
            side=order.side,
            quantity=f.quantity,
            price=f.price,
            fee=f.fee,
            fee_currency=f.fee_currency,
            liquidity=f.liquidity,
            strategy=order.strategy,
            correlation_id=order.correlation_id,
        )
        for f in order.fills
    ]


async def _stored_orders(venue: Any) -> list[VenueOrder]:
    """Every order a KV-backed venue (paper) has stored: its whole trade history."""
    prefix = f"{subjects.token(venue.name)}.order."
    orders = []
    for key in sorted(await bucket_entries(venue.kv)):  # a complete copy of the bucket
        if key.startswith(prefix):
            order = await venue.fetch_order(key[len(prefix) :])
            if order is not None:
                orders.append(order)
    return orders


async def _trades(venue: Venue, q: _Query) -> list[VenueTradeView]:
    my_trades = getattr(venue, "my_trades", None)
    if my_trades is not None:
        return [_as_trade_view(t) for t in await my_trades(q.since)]
    if hasattr(venue, "kv"):  # paper venue without my_trades yet: its stored orders
        return [t for o in await _stored_orders(venue) for t in trade_views(o)]
    raise NotImplementedError(f"venue {venue.name} cannot list its trades")


def _as_trade_view(trade: Any) -> VenueTradeView:
    if isinstance(trade, VenueTradeView):
        return trade
    return msgspec.convert(msgspec.to_builtins(trade), VenueTradeView, strict=False)


async def _balances(venue: Venue, q: _Query) -> list[BalanceView]:
    balances = getattr(venue, "balances", None)
    if balances is None:
        return []
    found = await balances()
    if isinstance(found, dict):  # {currency: total} or {currency: {total, free}}
        return [_balance(cur, v) for cur, v in sorted(found.items())]
    return [msgspec.convert(msgspec.to_builtins(b), BalanceView, strict=False) for b in found]


def _balance(currency: str, value: Any) -> BalanceView:
    if isinstance(value, dict) or hasattr(value, "__struct_fields__"):
        raw = msgspec.to_builtins(value)
        return BalanceView(currency=currency, total=raw["total"], free=raw.get("free"))
    return BalanceView(currency=currency, total=value)


async def _order(venue: Venue, q: _Query) -> VenueOrderView | None:
    order = await venue.fetch_order(q.client_order_id)
    return order_view(order) if order else None


async def _cancel(venue: Venue, q: _Query) -> VenueOrderView | None:
    order = await venue.cancel(q.client_order_id)
    return order_view(order) if order else None


async def _open_orders(venue: Venue, q: _Query) -> list[VenueOrderView]:
    return [order_view(o) for o in await venue.open_orders()]


async def _positions(venue: Venue, q: _Query) -> Any:
    return await venue.positions()


QUERIES: dict[str, Query] = {
    "positions": _positions,
    "open_orders": _open_orders,
    "order": _order,
    "trades": _trades,
    "balances": _balances,
    "cancel": _cancel,
}


async def answer(venue: Venue, query: Query, data: bytes) -> bytes:
    try:
        q = _query_decoder.decode(data) if data.strip() else _Query()
        return _encoder.encode(await query(venue, q))
    except Exception as e:  # the caller must hear why, not time out
        log.warning("venue query failed", extra={"venue": venue.name, "error": repr(e)})
        return _encoder.encode({"error": f"{type(e).__name__}: {e}"})


async def serve_venue_queries(ctx: ServiceContext, venues: dict[str, Venue]) -> None:
    """Answer rpc.venue.<venue>.<query> for every venue, then (startup gate on) mark the
    system RECONCILING: a restarted gateway may have missed fills and orders."""
    for name, venue in venues.items():
        for query_name, query in QUERIES.items():

            async def respond(msg: Msg, venue: Venue = venue, query: Query = query) -> None:
                await msg.respond(await answer(venue, query, msg.data))

            sub = await ctx.bus.nc.subscribe(subjects.venue_rpc(name, query_name), cb=respond)
            ctx.cleanups.append(sub.unsubscribe)
    if ctx.config.reconciler.startup_gate:
        await mark_reconciling(ctx.bus, f"execution-gateway {ctx.instance} started")


async def mark_reconciling(bus: Bus, reason: str) -> None:
    """The gateway's restart closes the gate; the reconciler watches the key and runs."""
    kv = await bus.kv(subjects.BUCKET_CONTROL)
    gate = ReconGate(state=ReconGateState.RECONCILING, reason=reason)
    await kv.put(subjects.KEY_RECON_GATE, msgspec.json.encode(gate))
    log.warning("startup gate set RECONCILING", extra={"reason": reason})
