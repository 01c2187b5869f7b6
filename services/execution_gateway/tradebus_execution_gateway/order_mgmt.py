"""Cancel by client order id, and modify as cancel-confirm-replace (E4).

Both run on the gateway's main consumer, in stream order with approvals and halts, under the
order lock. A cancel that the venue has not confirmed yet raises TransientError: the command
is redelivered, and nothing is replaced until the old order is certainly dead. The
replacement's size is the new total minus what the old order filled, fills that raced the
cancel included, so the two together never exceed what was asked for.
"""

from __future__ import annotations

import logging
from decimal import Decimal

from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from tradebus_common.errors import TransientError
from tradebus_common.events import (
    CancelOrder,
    CancelReason,
    CommandRejectReason,
    Event,
    ModifyOrder,
    OrderApproved,
    OrderCommandRejected,
)
from tradebus_common.ids import client_order_id, derive_id

from .algos.engine import AlgoEngine, Submit
from .events_out import canceled_event
from .venues.base import Venue, VenueOrder

log = logging.getLogger("tradebus.execution_gateway.orders")
MODIFY_PREFIX = "modify."


async def find_order(
    venues: dict[str, Venue], cid: str, venue_name: str = ""
) -> tuple[Venue, VenueOrder] | None:
    for name, venue in venues.items():
        if venue_name and name != venue_name:
            continue
        record = await venue.fetch_order(cid)
        if record is not None:
            return venue, record
    return None


def command_rejected(
    cmd: CancelOrder | ModifyOrder,
    command: str,
    reason: CommandRejectReason,
    detail: str,
    record: VenueOrder | None = None,
    venue: str = "",
) -> OrderCommandRejected:
    return OrderCommandRejected(
        id=derive_id(cmd.id, "rejected"),
        correlation_id=record.correlation_id if record else "",
        client_order_id=cmd.client_order_id,
        venue=venue or cmd.venue,
        symbol=record.symbol if record else "",
        strategy=record.strategy if record else "",
        command=command,
        command_id=cmd.id,
        reason=reason,
        detail=detail,
    )


async def cancel_confirmed(venue: Venue, cid: str) -> VenueOrder:
    after = await venue.cancel(cid)
    if after is None:  # it was there a moment ago: the venue is behind, ask again later
        raise TransientError(f"{venue.name} lost sight of {cid} during its cancel")
    if after.working:
        raise TransientError(f"{venue.name} has not confirmed the cancel of {cid} yet")
    return after


class CancelOrderHandler:
    def __init__(self, venues: dict[str, Venue], engine: AlgoEngine) -> None:
        self.venues = venues
        self.engine = engine

    async def __call__(self, cmd: CancelOrder) -> list[Event]:
        if self.engine.is_parent(cmd.client_order_id) or await self.engine.store.get(
            cmd.client_order_id
        ):
            return await self.engine.cancel_parent(cmd)
        found = await find_order(self.venues, cmd.client_order_id, cmd.venue)
        if found is None:
            return self._refuse(cmd, CommandRejectReason.UNKNOWN_ORDER, "no venue knows it")
        venue, record = found
        if not record.working:
            return self._refuse(
                cmd, CommandRejectReason.NOT_WORKING, record.status.value, record, venue.name
            )
        after = await cancel_confirmed(venue, cmd.client_order_id)
        if after.status.value != "canceled":  # it filled first: the fill is its own event
            return []
        log.info(
            "order canceled",
            extra={"client_order_id": cmd.client_order_id, "reason": cmd.reason.value},
        )
        return [canceled_event(venue.name, after, cmd.reason, cmd.id, cmd.detail)]

    @staticmethod
    def _refuse(
        cmd: CancelOrder,
        reason: CommandRejectReason,
        detail: str,
        record: VenueOrder | None = None,
        venue: str = "",
    ) -> list[Event]:
        if cmd.reason is not CancelReason.OPERATOR:
            return []  # a timeout that lost the race to a fill or a halt: nothing to say
        return [command_rejected(cmd, "cancel", reason, detail, record, venue)]


class ModifyOrderHandler:
    def __init__(
        self, venues: dict[str, Venue], engine: AlgoEngine, submit: Submit, kv: KeyValue
    ) -> None:
        self.venues = venues
        self.engine = engine
        self.submit = submit
        self.kv = kv  # `modify.<command id>`: canceling the old order, replacement not yet sent

    async def __call__(self, cmd: ModifyOrder) -> list[Event]:
        if self.engine.is_parent(cmd.client_order_id):
            return self._refuse(cmd, CommandRejectReason.NOT_SUPPORTED, "an algo parent")
        if cmd.client_order_id in self.engine.parent_of:  # the algo owns its children
            detail = "an algo child: cancel its parent instead"
            return self._refuse(cmd, CommandRejectReason.NOT_SUPPORTED, detail)
        found = await find_order(self.venues, cmd.client_order_id, cmd.venue)
        if found is None:
            return self._refuse(cmd, CommandRejectReason.UNKNOWN_ORDER, "no venue knows it")
        venue, record = found
        new_cid = client_order_id(cmd.id)
        resumed = await self._started(cmd) or await venue.fetch_order(new_cid) is not None
        if not record.working and not resumed:
            return self._refuse(
                cmd, CommandRejectReason.NOT_WORKING, record.status.value, record, venue.name
            )
        after = record
        if record.working:
            await self.kv.put(MODIFY_PREFIX + cmd.id, record.client_order_id.encode())
            after = await cancel_confirmed(venue, record.client_order_id)
        events: list[Event] = []
        if after.status.value == "canceled":
            detail = f"modify: replaced by {new_cid}"
            events.append(canceled_event(venue.name, after, CancelReason.REPLACED, cmd.id, detail))
        wanted = cmd.quantity if cmd.quantity is not None else after.quantity
        rest = wanted - after.filled_quantity
        if rest <= 0:
            detail = f"{after.filled_quantity} already filled of {after.quantity}"
            refusal = command_rejected(
                cmd, "modify", CommandRejectReason.NOTHING_TO_REPLACE, detail, after, venue.name
            )
            await self.kv.delete(MODIFY_PREFIX + cmd.id)
            return [*events, refusal]
        events += await self.submit(replacement(cmd, after, venue.name, new_cid, rest))
        # From here the replacement itself (at the venue) marks the modify as under way.
        await self.kv.delete(MODIFY_PREFIX + cmd.id)
        return events

    async def _started(self, cmd: ModifyOrder) -> bool:
        """A redelivered modify whose cancel already went through must still replace."""
        try:
            await self.kv.get(MODIFY_PREFIX + cmd.id)
        except KeyNotFoundError:
            return False
        return True

    @staticmethod
    def _refuse(
        cmd: ModifyOrder,
        reason: CommandRejectReason,
        detail: str,
        record: VenueOrder | None = None,
        venue: str = "",
    ) -> list[Event]:
        return [command_rejected(cmd, "modify", reason, detail, record, venue)]


def replacement(
    cmd: ModifyOrder, old: VenueOrder, venue: str, new_cid: str, quantity: Decimal
) -> OrderApproved:
    """The new order: the old one's side and symbol, the new size and price, an id derived
    from the command (a redelivered modify re-sends the same order, which the venue knows)."""
    return OrderApproved(
        id=derive_id(cmd.id, "replacement"),
        correlation_id=old.correlation_id,
        causation_id=cmd.id,
        intent_id=old.approved_id,
        strategy=old.strategy,
        venue=venue,
        symbol=old.symbol,
        side=old.side,
        quantity=quantity,
        order_type=old.order_type,
        limit_price=cmd.limit_price if cmd.limit_price is not None else old.limit_price,
        client_order_id=new_cid,
    )
