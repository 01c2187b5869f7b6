"""Create every stream and bucket with the admin identity, before the services start.

With auth on, services may not administer streams (bus.manage_topology = false), so what
they used to create on first start is created here: the shared topology (bus.ensure_topology)
plus the buckets that individual services open with ensure_kv.
"""

from __future__ import annotations

from nats.js import JetStreamContext

from .. import subjects
from ..bus import ensure_kv, ensure_topology
from ..config import Config


async def bootstrap_topology(js: JetStreamContext, config: Config) -> None:
    bus = config.bus
    await ensure_topology(js, bus, config.runtime.heartbeat_ttl_s)
    # Same parameters the owning services pass (alerting store, risk-gate service).
    ttl_s = config.alerting.state_ttl_days * 86400
    await ensure_kv(js, subjects.BUCKET_ALERTS, history=1, ttl=ttl_s, replicas=bus.replicas)
    await ensure_kv(js, subjects.BUCKET_RISK_ORDERS, history=1, replicas=bus.replicas)
    await ensure_kv(js, subjects.BUCKET_RISK_PROTECTIONS, history=1, replicas=bus.replicas)
