"""Queries over core NATS request/reply (`rpc.alerts.*`, not stored): list, ack, status.
An ack changes state, so it is also published as AlertAcknowledged on the stream."""

from __future__ import annotations

import logging
from typing import Any

import msgspec

from .delivery import Dispatcher
from .engine import AlertEngine
from .model import AlertRecord

log = logging.getLogger("tradebus.alerting")


class AckRequest(msgspec.Struct, kw_only=True):
    alert_id: str
    operator: str


class ListRequest(msgspec.Struct, kw_only=True):
    unacked: bool = False
    limit: int = 50


def brief(r: AlertRecord) -> dict[str, Any]:
    a = r.alert
    return {
        "id": a.id,
        "ts": a.ts.isoformat(),
        "severity": a.severity.value,
        "source": a.source,
        "code": a.code.value,
        "message": a.message,
        "dedup_key": a.dedup_key,
        "acked_by": r.acked_by,
        "escalations": r.escalations,
        "resolved": r.resolved,
        "deliveries": r.deliveries,
    }


class AlertsRpc:
    def __init__(self, engine: AlertEngine, dispatcher: Dispatcher) -> None:
        self.engine = engine
        self.dispatcher = dispatcher

    async def list(self, data: bytes) -> dict[str, Any]:
        req = msgspec.json.decode(data or b"{}", type=ListRequest)
        return {"alerts": [brief(r) for r in self.engine.list(req.unacked, req.limit)]}

    async def ack(self, data: bytes) -> dict[str, Any]:
        req = msgspec.json.decode(data, type=AckRequest)
        if not req.operator.strip():
            return {"error": "an acknowledgement needs an operator"}
        record = await self.engine.ack(req.alert_id, req.operator)
        if record is None:
            return {"error": f"no alert {req.alert_id}"}
        return {"alert": brief(record)}

    async def status(self, data: bytes) -> dict[str, Any]:
        return {
            "unacked": [brief(r) for r in self.engine.list(unacked_only=True, limit=10)],
            "sinks": {
                name: {
                    **msgspec.to_builtins(h),
                    "configured": self.dispatcher.sinks[name].configured,
                }
                for name, h in self.dispatcher.health.items()
            },
        }

    async def serve(self, msg: Any, method: Any) -> None:
        try:
            body = await method(msg.data)
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            body = {"error": f"bad request: {e}"}
        except Exception as e:  # the operator gets an answer, the service stays up
            log.exception("alerts rpc failed")
            body = {"error": f"internal error: {type(e).__name__}"}
        await msg.respond(msgspec.json.encode(body))
