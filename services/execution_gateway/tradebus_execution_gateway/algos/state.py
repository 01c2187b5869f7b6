"""An algo parent's durable state, one key per parent in KV `execution_state`.

The children's progress is not stored here: the venue's record of each child is the truth,
re-read at every evaluation. What is stored is what the venue cannot know: which children
the algo planned (written before they are sent), which it asked to cancel, and when it saw
each fill (for time to fill)."""

from __future__ import annotations

from decimal import Decimal

import msgspec
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from tradebus_common.codec import decoder_for
from tradebus_common.errors import TransientError
from tradebus_common.events import AlgoStatus, OrderApproved, OrderType
from tradebus_common.mirror import bucket_entries

from ..quality import TimedFill

PREFIX = "algo."
_encoder = msgspec.json.Encoder(decimal_format="string")


class AlgoChild(msgspec.Struct, kw_only=True):
    slice: int  # 1, 2, ... (the parent's own client id is slice 0 and never sent)
    client_order_id: str
    quantity: Decimal
    order_type: OrderType
    limit_price: Decimal | None = None
    target_index: int = 0  # TWAP: how many schedule slices this child completes
    cancel_requested: bool = False  # the algo itself canceled it (not a halt, not an operator)
    announced: bool = False  # sent and its events published
    final: bool = False  # the venue finished it; filled/status below are then settled
    filled: Decimal = Decimal(0)
    status: str = ""


class AlgoState(msgspec.Struct, kw_only=True):
    parent: OrderApproved
    status: AlgoStatus = AlgoStatus.WORKING
    started_at: float  # epoch seconds, from the engine's clock
    arrival_price: Decimal | None = None
    children: list[AlgoChild] = []
    fills: list[TimedFill] = []
    detail: str = ""
    ttl_at: float = 0.0  # 0: no order TTL
    unfilled_at: float = 0.0  # 0: no unfilled timeout
    reported: str = ""  # the last AlgoProgress published (its signature)

    @property
    def key(self) -> str:
        return PREFIX + self.parent.client_order_id

    @property
    def filled(self) -> Decimal:
        return sum((f.quantity for f in self.fills), Decimal(0))

    def child(self, client_order_id: str) -> AlgoChild | None:
        return next((c for c in self.children if c.client_order_id == client_order_id), None)


_decoder = decoder_for(AlgoState)


class AlgoStore:
    """Compare-and-set on the revision last read: two writers never both win."""

    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv
        self.revisions: dict[str, int] = {}

    async def get(self, parent_cid: str) -> AlgoState | None:
        try:
            entry = await self.kv.get(PREFIX + parent_cid)
        except KeyNotFoundError:
            return None
        if not entry.value:
            return None
        self.revisions[parent_cid] = entry.revision or 0
        return _decoder.decode(entry.value)

    async def create(self, state: AlgoState) -> bool:
        """False when the parent is already there (a redelivered approval)."""
        try:
            rev = await self.kv.create(state.key, _encoder.encode(state))
        except KeyWrongLastSequenceError:
            return False
        self.revisions[state.parent.client_order_id] = rev
        return True

    async def put(self, state: AlgoState) -> None:
        cid = state.parent.client_order_id
        try:
            rev = await self.kv.update(
                state.key, _encoder.encode(state), last=self.revisions.get(cid, 0)
            )
        except KeyWrongLastSequenceError as e:
            raise TransientError(f"algo {cid} changed concurrently") from e
        self.revisions[cid] = rev

    async def all(self) -> list[AlgoState]:
        """Every algo parent, from a complete copy of the bucket (then read with its revision)."""
        states = []
        for key in sorted(await bucket_entries(self.kv)):
            if key.startswith(PREFIX) and (state := await self.get(key[len(PREFIX) :])):
                states.append(state)
        return states
