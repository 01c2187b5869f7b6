"""The venue as the reconciler sees it: request/reply to the execution-gateway
(rpc.venue.<venue>.<query>, served by tradebus_execution_gateway.rpc)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
import nats
from nats.aio.client import Client as NATS

from tradebus_common import subjects
from tradebus_common.errors import TransientError
from tradebus_common.events import BalanceView, PositionView, VenueOrderView, VenueTradeView


class VenueUnavailable(TransientError):
    """The gateway did not answer, or the venue query failed there."""


class _Error(msgspec.Struct):
    error: str


_error = msgspec.json.Decoder(_Error)
_decoders: dict[Any, msgspec.json.Decoder[Any]] = {}


def _decode(data: bytes, type_: Any) -> Any:
    if data.startswith(b'{"error"'):
        raise VenueUnavailable(_error.decode(data).error)
    if type_ not in _decoders:
        _decoders[type_] = msgspec.json.Decoder(type_)
    return _decoders[type_].decode(data)


class VenueClient:
    def __init__(self, nc: NATS, venue: str, timeout_s: float = 5.0) -> None:
        self.nc = nc
        self.venue = venue
        self.timeout_s = timeout_s

    async def _ask(self, query: str, body: dict[str, Any], type_: Any) -> Any:
        subject = subjects.venue_rpc(self.venue, query)
        try:
            reply = await self.nc.request(
                subject, msgspec.json.encode(body), timeout=self.timeout_s
            )
        except (nats.errors.TimeoutError, nats.errors.NoRespondersError) as e:
            raise VenueUnavailable(f"venue {self.venue} did not answer {query}: {e!r}") from e
        return _decode(reply.data, type_)

    async def positions(self) -> list[PositionView]:
        return await self._ask("positions", {}, list[PositionView])

    async def open_orders(self) -> list[VenueOrderView]:
        return await self._ask("open_orders", {}, list[VenueOrderView])

    async def order(self, client_order_id: str) -> VenueOrderView | None:
        return await self._ask("order", {"client_order_id": client_order_id}, VenueOrderView | None)

    async def trades(self, since: datetime | None) -> list[VenueTradeView]:
        body = {"since": since.isoformat() if since else None}
        return await self._ask("trades", body, list[VenueTradeView])

    async def balances(self) -> list[BalanceView]:
        return await self._ask("balances", {}, list[BalanceView])

    async def cancel(self, client_order_id: str) -> VenueOrderView | None:
        return await self._ask(
            "cancel", {"client_order_id": client_order_id}, VenueOrderView | None
        )
