"""Streams, consumers and buckets are created idempotently with the audit guarantees."""

from __future__ import annotations

import pytest
from nats.js.errors import APIError

from tradebus_common import subjects
from tradebus_common.bus import ensure_topology
from tradebus_common.config import BusConfig


async def test_topology_is_idempotent_and_the_trading_stream_refuses_purge(nc, nats_server):
    js = nc.jetstream()
    cfg = BusConfig(url=nats_server.url, duplicate_window_s=300)
    await ensure_topology(js, cfg, heartbeat_ttl_s=30)
    await ensure_topology(js, cfg, heartbeat_ttl_s=30)  # a second service starting
    info = await js.stream_info(subjects.STREAM_TRADING)
    assert info.config.subjects == ["trading.>"]
    assert info.config.deny_delete and info.config.deny_purge
    assert info.config.duplicate_window == 300
    market = await js.stream_info(subjects.STREAM_MARKET)
    assert market.config.subjects == ["md.>"] and market.config.max_age == cfg.market_max_age_s
    await js.publish("trading.signal.x", b"{}")
    with pytest.raises(APIError):
        await js.purge_stream(subjects.STREAM_TRADING)
    with pytest.raises(APIError):
        await js.delete_msg(subjects.STREAM_TRADING, 1)
    for bucket in ("control", "health", "order_journal", "paper_venue", "dedup"):
        assert await js.key_value(bucket)


async def test_changed_heartbeat_ttl_is_applied_to_the_existing_bucket(nc, nats_server):
    js = nc.jetstream()
    cfg = BusConfig(url=nats_server.url)
    await ensure_topology(js, cfg, heartbeat_ttl_s=30)
    await ensure_topology(js, cfg, heartbeat_ttl_s=45)
    info = await js.stream_info("KV_health")
    assert info.config.max_age == 45
