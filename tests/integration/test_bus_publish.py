"""Pipelined publishing keeps the order of a handler's events and never loses a failure."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tradebus_common import events as ev
from tradebus_common.bus import Bus, ensure_topology
from tradebus_common.config import BusConfig
from tradebus_common.errors import TransientError


def ticks(n: int) -> list[ev.MarketTick]:
    return [
        ev.MarketTick(venue="paper", symbol="BTC/USDT", price=Decimal(100 + i)) for i in range(n)
    ]


async def test_publish_all_keeps_order_and_sets_message_ids(nc, nats_server):
    cfg = BusConfig(url=nats_server.url)
    bus = Bus(nc, cfg, "test")
    await ensure_topology(bus.js, cfg, heartbeat_ttl_s=30)
    events = ticks(20)
    await bus.publish_all(events)
    await bus.publish_all(events)  # a retry: the stream keeps one copy of each
    info = await bus.js.stream_info("MARKET")
    assert info.state.messages == 20
    stored = [await bus.js.get_msg("MARKET", seq) for seq in range(1, 21)]
    assert [m.headers["Nats-Msg-Id"] for m in stored] == [e.id for e in events]


async def test_publish_all_with_no_stream_to_take_them_is_transient(nc, nats_server):
    bus = Bus(nc, BusConfig(url=nats_server.url), "test")  # no topology: no MARKET stream
    with pytest.raises(TransientError):
        await bus.publish_all(ticks(3))
