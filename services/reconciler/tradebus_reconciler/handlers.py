"""On a reconcile command: ledger (PostgreSQL) against venue (request/reply) per venue."""

from __future__ import annotations

import logging

import asyncpg
import nats

from tradebus_common import subjects
from tradebus_common.bus import Bus
from tradebus_common.codec import decoder_for
from tradebus_common.config import Config
from tradebus_common.errors import ErrorCode, PermanentError, TransientError
from tradebus_common.events import (
    Alert,
    AlertCode,
    ControlAction,
    ControlCommand,
    Event,
    PositionView,
    ReconReport,
    Severity,
)
from tradebus_common.ids import derive_id

from .compare import compare_positions

log = logging.getLogger("tradebus.reconciler")
_positions_decoder = decoder_for(list[PositionView])
VENUE_RPC_TIMEOUT_S = 5.0

_LEDGER_POSITIONS = """
SELECT venue, symbol, strategy, quantity, avg_price, realized_pnl FROM positions
WHERE venue = $1"""


async def ledger_positions(pool: asyncpg.Pool, venue: str) -> list[PositionView]:
    try:
        rows = await pool.fetch(_LEDGER_POSITIONS, venue)
    except asyncpg.UndefinedTableError:  # the ledger has not migrated yet: nothing booked
        return []
    return [PositionView(**dict(r)) for r in rows]


async def venue_positions(bus: Bus, venue: str) -> list[PositionView]:
    try:
        reply = await bus.nc.request(
            subjects.venue_positions_rpc(venue), b"", timeout=VENUE_RPC_TIMEOUT_S
        )
    except (nats.errors.TimeoutError, nats.errors.NoRespondersError) as e:
        raise TransientError(f"venue {venue} did not answer: {e!r}") from e
    return _positions_decoder.decode(reply.data)


class ReconcileHandler:
    def __init__(self, config: Config, bus: Bus, pool: asyncpg.Pool) -> None:
        self.config = config
        self.bus = bus
        self.pool = pool

    async def __call__(self, cmd: ControlCommand) -> list[Event]:
        if cmd.action is not ControlAction.RECONCILE:
            raise PermanentError(
                f"reconciler does not handle {cmd.action}", ErrorCode.INVALID_COMMAND
            )
        venues = self.venues_in_scope(cmd.scope)
        events: list[Event] = []
        for venue in venues:
            events += await self.reconcile(cmd, venue, len(venues))
        return events

    def venues_in_scope(self, scope: str) -> list[str]:
        if scope in ("", "global", "all"):
            return list(self.config.venues)
        if scope not in self.config.venues:
            raise PermanentError(f"no venue {scope!r} to reconcile", ErrorCode.UNKNOWN_VENUE)
        return [scope]

    async def reconcile(self, cmd: ControlCommand, venue: str, of_total: int) -> list[Event]:
        ledger = await ledger_positions(self.pool, venue)
        remote = await venue_positions(self.bus, venue)
        compared, mismatches = compare_positions(venue, ledger, remote)
        report = ReconReport(
            id=derive_id(cmd.id, "recon", venue),
            venue=venue,
            clean=not mismatches,
            of_total=of_total,
            positions_compared=compared,
            mismatches=mismatches,
        )
        log.info(
            "reconciliation done",
            extra={"venue": venue, "clean": report.clean, "mismatches": len(mismatches)},
        )
        if report.clean:
            return [report]
        return [
            report,
            Alert(
                id=derive_id(cmd.id, "recon-alert", venue),
                severity=Severity.ERROR,
                source="reconciler",
                code=AlertCode.RECON_MISMATCH,
                message=f"{venue}: {len(mismatches)} position mismatch(es) between ledger and venue",
                context={"symbols": [m.symbol for m in mismatches]},
                dedup_key=f"reconciler:positions:{venue}",
            ),
        ]
