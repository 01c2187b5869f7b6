"""Working orders the gateway keeps an eye on: per-order execution quality (E9) and the
order TTL / unfilled timeout (E4).

Every batch of events the gateway publishes passes through `observe` first. An order that is
done within its batch (a market order) costs nothing but its ExecutionQuality event; one
that rests is recorded in KV `execution_state` (key `order.<client id>`) with when it was
sent, its deadlines and the fills seen so far, so a restarted gateway still times it out and
still measures it. Timeouts are not carried out here: the scheduler publishes a CancelOrder
command, and the gateway's ordinary cancel path (serialised with halts and modifies) does it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from decimal import Decimal

import msgspec
from nats.js.kv import KeyValue

from tradebus_common.bus import Bus
from tradebus_common.codec import decoder_for
from tradebus_common.config import ExecutionConfig
from tradebus_common.events import (
    CancelOrder,
    CancelReason,
    Event,
    ExecutionQuality,
    Fill,
    OrderCanceled,
    OrderExpired,
    OrderRejected,
    OrderSubmitted,
    Side,
)
from tradebus_common.ids import derive_id
from tradebus_common.mirror import bucket_entries

from .quality import TimedFill, measure

log = logging.getLogger("tradebus.execution_gateway.tracking")
PREFIX = "order."
_encoder = msgspec.json.Encoder(decimal_format="string")
_ENDED = (OrderCanceled, OrderExpired, OrderRejected)


class TrackedOrder(msgspec.Struct, kw_only=True):
    client_order_id: str
    venue: str
    symbol: str
    strategy: str = ""
    side: Side
    quantity: Decimal
    parent_id: str = ""
    correlation_id: str = ""
    started_at: float
    arrival_price: Decimal | None = None
    fills: list[TimedFill] = []
    ttl_at: float = 0.0
    unfilled_at: float = 0.0

    @property
    def filled(self) -> Decimal:
        return sum((f.quantity for f in self.fills), Decimal(0))


_decoder = decoder_for(TrackedOrder)


def timeouts(config: ExecutionConfig, strategy: str, now: float) -> tuple[float, float]:
    """(ttl_at, unfilled_at) for an order of `strategy` sent at `now`; 0 = none."""
    own = config.strategies.get(strategy)
    ttl = own.order_ttl_s if own and own.order_ttl_s is not None else config.order_ttl_s
    unfilled = config.unfilled_timeout_s
    if own and own.unfilled_timeout_s is not None:
        unfilled = own.unfilled_timeout_s
    return (now + ttl if ttl > 0 else 0.0, now + unfilled if unfilled > 0 else 0.0)


def due_timeout(order: TrackedOrder, now: float) -> CancelReason | None:
    if order.ttl_at and now >= order.ttl_at:
        return CancelReason.TTL_EXPIRED
    if order.unfilled_at and now >= order.unfilled_at and not order.fills:
        return CancelReason.UNFILLED_TIMEOUT
    return None


class OrderTracker:
    def __init__(
        self,
        config: ExecutionConfig,
        kv: KeyValue,
        bus: Bus,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.kv = kv
        self.bus = bus
        self.clock = clock
        self.orders: dict[str, TrackedOrder] = {}
        self.requested: set[str] = set()  # timeouts already asked for
        self._early: dict[str, list[Fill]] = defaultdict(list)  # fills seen before the submit
        self._lock = asyncio.Lock()

    async def load(self) -> None:
        """Every tracked order, from a complete copy of the bucket."""
        for key, found in (await bucket_entries(self.kv)).items():
            if key.startswith(PREFIX) and found.data:
                order = _decoder.decode(found.data)
                self.orders[order.client_order_id] = order

    async def observe(self, events: list[Event]) -> list[Event]:
        """The events plus an ExecutionQuality for every order they finish."""
        groups: dict[str, list[Event]] = defaultdict(list)
        for event in events:
            cid = getattr(event, "client_order_id", None)
            if cid and isinstance(event, (OrderSubmitted, Fill, *_ENDED)):
                groups[cid].append(event)
        extra: list[Event] = []
        async with self._lock:
            for cid, group in groups.items():
                extra += await self._observe_order(cid, group)
        return [*events, *extra]

    async def _observe_order(self, cid: str, group: list[Event]) -> list[Event]:
        order, is_new = self.orders.get(cid), False
        submitted = next((e for e in group if isinstance(e, OrderSubmitted)), None)
        if order is None and submitted is not None:
            order, is_new = self._new(submitted), True
            group = [*self._early.pop(cid, []), *group]
        if order is None:
            self._remember_early(cid, group)
            return []
        changed = self._add_fills(order, group) or is_new
        if any(isinstance(e, _ENDED) for e in group) or order.filled >= order.quantity:
            return await self._finished(order, group)
        if changed:
            if order.arrival_price is None:
                order.arrival_price = await self._last_price(order)
            self.orders[cid] = order
            await self.kv.put(PREFIX + cid, _encoder.encode(order))
        return []

    def _new(self, sub: OrderSubmitted) -> TrackedOrder:
        now = self.clock()
        # An algo's children answer to their parent's timeouts, not their own.
        ttl_at, unfilled_at = (
            (0.0, 0.0) if sub.parent_id else timeouts(self.config, sub.strategy, now)
        )
        return TrackedOrder(
            client_order_id=sub.client_order_id,
            venue=sub.venue,
            symbol=sub.symbol,
            strategy=sub.strategy,
            side=sub.side,
            quantity=sub.quantity,
            parent_id=sub.parent_id,
            correlation_id=sub.correlation_id,
            started_at=now,
            ttl_at=ttl_at,
            unfilled_at=unfilled_at,
        )

    def _remember_early(self, cid: str, group: list[Event]) -> None:
        """A fill can be announced by the tick path before its submit's events are: keep it
        until the OrderSubmitted comes (memory only; a lost one just skips the metric)."""
        fills = [e for e in group if isinstance(e, Fill)]
        if fills and len(self._early) < 10_000:
            self._early[cid].extend(fills)

    def _add_fills(self, order: TrackedOrder, group: list[Event]) -> bool:
        seen = {f.trade_id for f in order.fills}
        now = self.clock()
        added = False
        for fill in group:
            if not isinstance(fill, Fill) or fill.trade_id in seen:
                continue
            seen.add(fill.trade_id)
            order.fills.append(
                TimedFill(
                    trade_id=fill.trade_id,
                    quantity=fill.quantity,
                    price=fill.price,
                    fee=fill.fee,
                    ts=now,
                )
            )
            if order.arrival_price is None:
                order.arrival_price = fill.arrival_price
            added = True
        return added

    async def _finished(self, order: TrackedOrder, group: list[Event]) -> list[Event]:
        cid = order.client_order_id
        if self.orders.pop(cid, None) is not None:
            await self.kv.delete(PREFIX + cid)
        self.requested.discard(cid)
        if not order.fills and any(isinstance(e, OrderRejected) for e in group):
            return []  # never worked: nothing to measure
        last = await self._last_price(order) if order.filled < order.quantity else None
        figures = measure(
            order.side,
            order.quantity,
            order.fills,
            order.started_at,
            order.arrival_price,
            order.arrival_price,
            last,
        )
        return [
            ExecutionQuality(
                id=derive_id(cid, "quality"),
                correlation_id=order.correlation_id,
                client_order_id=cid,
                venue=order.venue,
                symbol=order.symbol,
                strategy=order.strategy,
                parent_id=order.parent_id,
                side=order.side,
                quantity=order.quantity,
                **msgspec.structs.asdict(figures),
            )
        ]

    async def drop(self, cid: str) -> None:
        """Forget an order without measuring it (it ended where we could not see it)."""
        async with self._lock:
            if self.orders.pop(cid, None) is not None:
                await self.kv.delete(PREFIX + cid)
            self.requested.discard(cid)

    async def _last_price(self, order: TrackedOrder) -> Decimal | None:
        tick = await self.bus.last_tick(order.venue, order.symbol)
        return tick.price if tick is not None else None

    def expired(self, now: float) -> list[CancelOrder]:
        """Working orders past their TTL or unfilled timeout: the cancel commands to send."""
        out = []
        for cid, order in self.orders.items():
            reason = due_timeout(order, now)
            if reason is None or cid in self.requested:
                continue
            out.append(
                CancelOrder(
                    id=derive_id(cid, "timeout", reason.value),
                    correlation_id=order.correlation_id,
                    client_order_id=cid,
                    venue=order.venue,
                    reason=reason,
                )
            )
        return out
