"""The emulator's user data stream: Binance's WebSocket API (`/ws-api/v3`), where
`userDataStream.subscribe.signature` subscribes a signed connection to `executionReport`
events (what ccxt.pro's watch_orders reads for spot). `drop_all` is the "order stream
disconnect" fault."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from aiohttp import WSMsgType, web

from .book import Order, Trade, now_ms


class UserStreams:
    def __init__(self, api_keys: dict[str, str], on_subscribe: Any = None) -> None:
        self.api_keys = api_keys
        self.on_subscribe = on_subscribe  # async callable: counts "subscribe" calls
        self.sockets: list[web.WebSocketResponse] = []
        self.subscribes = 0  # successful subscriptions (reconnects count again)

    async def handler(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            if msg.type is not WSMsgType.TEXT:
                continue
            answer = self._answer(ws, json.loads(msg.data))
            await ws.send_json(answer)
            if answer.get("status") == 200 and self.on_subscribe is not None:
                await self.on_subscribe()
        if ws in self.sockets:
            self.sockets.remove(ws)
        return ws

    def _answer(self, ws: web.WebSocketResponse, req: dict[str, Any]) -> dict[str, Any]:
        if req.get("method") != "userDataStream.subscribe.signature":
            return {"id": req.get("id"), "status": 400, "error": {"code": -1100, "msg": "?"}}
        params = dict(req.get("params") or {})
        signature = str(params.pop("signature", ""))
        secret = self.api_keys.get(str(params.get("apiKey", "")))
        payload = "&".join(f"{k}={params[k]}" for k in sorted(params))
        good = secret and hmac.compare_digest(
            hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest(), signature
        )
        if not good:
            err = {"code": -1022, "msg": "Signature for this request is not valid."}
            return {"id": req.get("id"), "status": 401, "error": err}
        self.sockets.append(ws)
        self.subscribes += 1
        return {"id": req.get("id"), "status": 200, "result": {"subscriptionId": 0}}

    async def report(self, order: Order, exec_type: str, trade: Trade | None = None) -> None:
        event = {"subscriptionId": 0, "event": execution_report(order, exec_type, trade)}
        for ws in list(self.sockets):
            if not ws.closed:
                await ws.send_json(event)

    async def drop_all(self) -> None:
        for ws in list(self.sockets):
            await ws.close()
        self.sockets.clear()


def execution_report(order: Order, exec_type: str, trade: Trade | None) -> dict[str, Any]:
    return {
        "e": "executionReport",
        "E": now_ms(),
        "s": order.symbol,
        "c": order.client_order_id,
        "S": order.side,
        "o": order.type,
        "f": "GTC",
        "q": str(order.orig_qty),
        "p": str(order.price),
        "P": "0",
        "F": "0",
        "g": -1,
        "C": "",
        "x": exec_type,
        "X": order.status,
        "r": "NONE",
        "i": order.order_id,
        "l": str(trade.qty) if trade else "0",
        "z": str(order.executed),
        "L": str(trade.price) if trade else "0",
        "n": str(trade.commission) if trade else "0",
        "N": trade.commission_asset if trade else None,
        "T": now_ms(),
        "t": trade.id if trade else -1,
        "I": 1,
        "w": order.open,
        "m": trade.is_maker if trade else False,
        "M": False,
        "O": order.time_ms,
        "Z": str(order.quote_qty),
        "Y": "0",
        "Q": "0",
    }
