"""`tradebus healthcheck [SERVICE]`: the container HEALTHCHECK (services/Dockerfile).

Healthy means: a fresh heartbeat in the health bucket from a service instance on THIS host
(instance ids are `<hostname>-<pid>`, and a container's hostname is its own), so one image
checks whichever service it runs. Connects as the container's own identity ([bus]
creds_file), which may read the health bucket. Exit 0 healthy, 1 not.
"""

from __future__ import annotations

import argparse
import socket
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from ..events import Heartbeat


def register(sub: Any, client_opts: Callable[[argparse.ArgumentParser], None]) -> None:
    p = sub.add_parser("healthcheck", help="exit 0 if a service on this host heartbeats")
    client_opts(p)
    p.add_argument("service", nargs="?", help="only this service (default: any on this host)")
    p.add_argument("--stale-after", type=float, default=20.0, help="seconds (default 20)")
    p.add_argument("--host", default=socket.gethostname(), help=argparse.SUPPRESS)
    p.set_defaults(handler=cmd_healthcheck)


def fresh_local(
    beats: list[Heartbeat], host: str, service: str | None, stale_after_s: float, now: datetime
) -> list[Heartbeat]:
    """Heartbeats from this host (and service), younger than stale_after_s."""
    return [
        b
        for b in beats
        if b.instance.startswith(f"{host}-")
        and (service is None or b.service == service)
        and (now - b.ts).total_seconds() <= stale_after_s
    ]


async def cmd_healthcheck(args: Any) -> int:
    from .client import ClientError, _health, connected

    try:
        async with connected(args) as nc:
            beats = await _health(nc)
    except ClientError as e:
        print(f"unhealthy: {e}", file=sys.stderr)
        return 1
    ok = fresh_local(beats, args.host, args.service, args.stale_after, datetime.now(UTC))
    if not ok:
        print(f"unhealthy: no fresh heartbeat from {args.service or 'a service'} on {args.host}")
        return 1
    print(f"healthy: {', '.join(sorted({b.service for b in ok}))}")
    return 0
