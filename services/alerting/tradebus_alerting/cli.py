"""`tradebus alerts list [--unacked]` and `tradebus alerts ack ID --operator NAME`."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import nats

from tradebus_common import subjects
from tradebus_common.cli.client import ClientError, connected


def register(subparsers: Any, client_opts: Any) -> None:
    p = subparsers.add_parser("alerts", help="list and acknowledge alerts")
    sub = p.add_subparsers(dest="alerts_command", required=True)
    q = sub.add_parser("list", help="recent alerts, newest first")
    client_opts(q)
    q.add_argument("--unacked", action="store_true", help="only unacknowledged, unresolved")
    q.add_argument("--limit", type=int, default=50)
    q.add_argument("--json", action="store_true")
    q.add_argument("--timeout", type=float, default=3.0)
    q.set_defaults(handler=cmd_list)
    a = sub.add_parser("ack", help="acknowledge an alert (stops its escalation)")
    client_opts(a)
    a.add_argument("alert_id")
    a.add_argument("--operator", required=True)
    a.add_argument("--timeout", type=float, default=3.0)
    a.set_defaults(handler=cmd_ack)


async def request(args: Any, subject: str, body: dict[str, Any]) -> dict[str, Any]:
    async with connected(args) as nc:
        try:
            msg = await nc.request(subject, msgspec.json.encode(body), timeout=args.timeout)
        except (nats.errors.NoRespondersError, nats.errors.TimeoutError) as e:
            raise ClientError("the alerting service is not answering (is it running?)") from e
    reply = msgspec.json.decode(msg.data)
    if "error" in reply:
        raise ClientError(reply["error"])
    return reply


def line(a: dict[str, Any]) -> str:
    ack = f"acked by {a['acked_by']}" if a["acked_by"] else "UNACKED"
    if a["resolved"]:
        ack = "resolved"
    return (
        f"{a['ts'][:19]} {a['severity'].upper():<8} {a['source']:<18} {a['code']:<20} "
        f"{ack:<18} {a['id']}  {a['message']}"
    )


async def cmd_list(args: Any) -> int:
    reply = await request(
        args, subjects.ALERTS_RPC_LIST, {"unacked": args.unacked, "limit": args.limit}
    )
    if args.json:
        print(json.dumps(reply["alerts"], indent=2))
    else:
        for a in reply["alerts"]:
            print(line(a))
    return 0


async def cmd_ack(args: Any) -> int:
    if not args.operator.strip():
        raise ClientError("ack needs --operator NAME")
    reply = await request(
        args, subjects.ALERTS_RPC_ACK, {"alert_id": args.alert_id, "operator": args.operator}
    )
    a = reply["alert"]
    print(f"alert {a['id']} acknowledged by {a['acked_by']}: {a['code']} {a['message']}")
    return 0
