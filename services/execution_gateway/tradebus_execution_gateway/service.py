from __future__ import annotations

import logging
from typing import Any

import msgspec
from nats.aio.msg import Msg

from tradebus_common import subjects
from tradebus_common.bus import Bus, Subscription, typed_decoder
from tradebus_common.codec import decode
from tradebus_common.config import Config
from tradebus_common.control import control_decoder
from tradebus_common.events import (
    ControlCommand,
    Event,
    MarketTick,
    OrderApproved,
    TradingStateChanged,
)
from tradebus_common.runtime import ServiceContext, ServiceSpec

from .handlers import ApprovedOrderHandler, CancelAllHandler, HaltHandler, TickHandler
from .venues.base import Venue
from .venues.paper import PaperVenue

log = logging.getLogger("tradebus.execution_gateway")
_encoder = msgspec.json.Encoder(decimal_format="string")


async def make_venues(config: Config, bus: Bus) -> dict[str, Venue]:
    venues: dict[str, Venue] = {}
    kv = await bus.kv(subjects.BUCKET_PAPER_VENUE)
    for name, venue_cfg in config.venues.items():
        if venue_cfg.kind != "paper":
            log.error(
                "venue kind not supported yet; venue disabled",
                extra={"venue": name, "kind": venue_cfg.kind},
            )
            continue
        paper = PaperVenue(name, venue_cfg, bus, kv)
        await paper.load()
        venues[name] = paper
    return venues


async def serve_positions(ctx: ServiceContext, venues: dict[str, Venue]) -> None:
    """Answer rpc.venue.<venue>.positions (core request/reply) for the reconciler."""
    for name, venue in venues.items():

        async def respond(msg: Msg, venue: Venue = venue) -> None:
            await msg.respond(_encoder.encode(await venue.positions()))

        sub = await ctx.bus.nc.subscribe(subjects.venue_positions_rpc(name), cb=respond)
        ctx.cleanups.append(sub.unsubscribe)


def decode_order_flow(msg: Msg) -> Any:
    """The gateway's main consumer reads approvals, trading-state changes and cancel-all
    commands, in stream order."""
    if msg.subject == subjects.RISK_STATE:
        return decode(msg.data, TradingStateChanged)
    if msg.subject == subjects.CONTROL_CANCEL_ALL:
        return control_decoder(msg)
    return decode(msg.data, OrderApproved)


async def build(ctx: ServiceContext) -> None:
    venues = await make_venues(ctx.config, ctx.bus)
    journal = await ctx.bus.kv(subjects.BUCKET_ORDER_JOURNAL)
    await serve_positions(ctx, venues)
    approvals = ApprovedOrderHandler(venues, journal)
    halts = HaltHandler(venues)
    cancel_all = CancelAllHandler(venues, approvals)

    async def on_order_flow(event: Any) -> list[Event]:
        if isinstance(event, TradingStateChanged):
            return await halts(event)
        if isinstance(event, ControlCommand):
            return await cancel_all(event)
        return await approvals(event)

    ctx.subscriptions.append(
        Subscription(
            durable="execution-gateway",
            filter_subjects=[
                subjects.APPROVED_ALL,
                subjects.RISK_STATE,
                subjects.CONTROL_CANCEL_ALL,
            ],
            decoder=decode_order_flow,
            handler=on_order_flow,
        )
    )
    paper = [name for name, v in venues.items() if isinstance(v, PaperVenue)]
    if paper:
        ctx.subscriptions.append(
            Subscription(
                durable="execution-gateway-md",
                stream=subjects.STREAM_MARKET,
                filter_subjects=[subjects.market_all(name) for name in paper],
                decoder=typed_decoder(MarketTick),
                handler=TickHandler(venues),
            )
        )


SPEC = ServiceSpec(name="execution-gateway", build=build)
