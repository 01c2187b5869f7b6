from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import msgspec
from nats.aio.msg import Msg

from tradebus_common import metrics, subjects
from tradebus_common.bus import Bus, Subscription, typed_decoder
from tradebus_common.codec import decode, require_positive
from tradebus_common.config import Config
from tradebus_common.control import control_decoder
from tradebus_common.events import (
    ControlCommand,
    Event,
    LedgerSnapshot,
    MarketTick,
    ModifyOrder,
    OrderApproved,
    TradingStateChanged,
)
from tradebus_common.runtime import ServiceContext, ServiceSpec

from .execution import COMMAND_SUBJECTS, build_order_management, decode_command
from .handlers import ApprovedOrderHandler, CancelAllHandler, HaltHandler, TickHandler
from .journal import Journal
from .resolver import OrderResolver
from .rpc import serve_venue_queries
from .venues.base import Venue
from .venues.ccxt_venue import CcxtVenue
from .venues.factory import make_ccxt_venue
from .venues.paper import PaperVenue
from .venues.ticker import ticker_task

log = logging.getLogger("tradebus.execution_gateway")
_encoder = msgspec.json.Encoder(decimal_format="string")


async def make_venues(config: Config, bus: Bus) -> dict[str, Venue]:
    venues: dict[str, Venue] = {}
    kv = await bus.kv(subjects.BUCKET_PAPER_VENUE)
    for name, venue_cfg in config.venues.items():
        if venue_cfg.kind == "ccxt":  # venues/factory.py: sandbox/demo/live by config
            venues[name] = await make_ccxt_venue(name, venue_cfg, bus)
            continue
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


def decode_order_flow(msg: Msg) -> Any:
    """The gateway's main consumer reads approvals, trading-state changes and cancel-all
    commands, in stream order."""
    if msg.subject == subjects.RISK_STATE:
        return decode(msg.data, TradingStateChanged)
    if msg.subject == subjects.CONTROL_CANCEL_ALL:
        return control_decoder(msg)
    if msg.subject in COMMAND_SUBJECTS:  # execution.py: cancel / modify by client order id
        command = decode_command(msg)
        if isinstance(command, ModifyOrder):
            require_positive(command, "quantity", "limit_price")
        return command
    return require_positive(decode(msg.data, OrderApproved), "quantity", "limit_price")


async def build(ctx: ServiceContext) -> None:
    venues = await make_venues(ctx.config, ctx.bus)
    for venue in venues.values():
        if hasattr(venue, "close"):  # ccxt: its HTTP session
            ctx.cleanups.append(venue.close)
    journal = await ctx.bus.kv(subjects.BUCKET_ORDER_JOURNAL)

    async def publish_observed(events: Sequence[Event]) -> None:
        """Events found outside the consumers (resolver, polling) get their algo parent and
        quality too (execution.py); `orders` is bound below, before anything publishes."""
        await ctx.bus.publish_all(await orders.observe(list(events)))

    # UNKNOWN orders, restart resolution and polling of working orders (resolver.py)
    resolver = OrderResolver(venues, dict(ctx.config.venues), Journal(journal), publish_observed)
    await serve_venue_queries(ctx, venues)  # rpc.py: the reconciler's venue queries
    metrics.watch_open_orders(ctx, venues)  # tradebus_open_orders, sampled per venue
    approvals = ApprovedOrderHandler(venues, journal, resolver)
    halts = HaltHandler(venues)
    account = ctx.config.risk.account

    async def ledger_snapshot() -> LedgerSnapshot | None:
        found = await ctx.bus.last_event(
            subjects.STREAM_TRADING, subjects.ledger_snapshot(account), LedgerSnapshot
        )
        return found[0] if found else None

    cancel_all = CancelAllHandler(venues, approvals, ledger_snapshot)
    orders = await build_order_management(ctx, venues, approvals)  # algos, cancel/modify, TTL

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
                *COMMAND_SUBJECTS,
            ],
            decoder=decode_order_flow,
            handler=orders.order_flow(on_order_flow),
            batch_handler=orders.order_flow_batch(on_order_flow),
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
                handler=orders.observing(TickHandler(venues)),
            )
        )

    # E2 restart: every non-terminal journaled order is resolved against its venue before the
    # consumers start (the runtime starts them after build returns).
    ctx.detail["unresolved_orders"] = await resolver.resolve_at_start()
    ctx.tasks.append(resolver.run)
    for venue in venues.values():  # E8: md ticks from ccxt venues that poll their tickers
        if isinstance(venue, CcxtVenue) and venue.config.ticker_poll_interval_ms > 0:
            ctx.tasks.append(ticker_task(venue, ctx.bus.publish))
        if isinstance(venue, CcxtVenue) and venue.config.watch_orders:  # E6 pushes
            ctx.tasks.append(watch_task(venue, resolver))


def watch_task(venue: CcxtVenue, resolver: OrderResolver) -> Callable[[], Awaitable[None]]:
    def gap() -> None:
        resolver.poke_all(venue.name)

    return lambda: venue.watch_updates(resolver.poke, gap)


SPEC = ServiceSpec(name="execution-gateway", build=build)
