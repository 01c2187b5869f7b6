"""The query API: core NATS request/reply on rpc.ledger.<endpoint> (positions, pnl, stats,
fills). Not under trading.>: the TRADING stream captures that subject space, so every request
would be stored in the audit stream and answered by the stream's ack, not by the ledger."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg
import msgspec
from nats.aio.client import Client as NATS

from tradebus_common import subjects

from . import queries
from .equity import EquityBook, run_metrics
from .sessions import Session, find, sessions
from .stats import Stats, avg_slippage_bps, compute

log = logging.getLogger("tradebus.position_ledger.query")
QUEUE = "position-ledger"
MAX_FILLS = 10_000


class Request(msgspec.Struct, kw_only=True):
    strategy: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 1000
    session: str | None = None  # a session id, or "current": stats within that run


class Reply(msgspec.Struct, kw_only=True, omit_defaults=True):
    ok: bool
    data: Any = None
    error: str = ""


_request = msgspec.json.Decoder(Request)


class QueryApi:
    def __init__(self, pool: asyncpg.Pool, book: EquityBook) -> None:
        self.pool = pool
        self.book = book
        self.endpoints: dict[str, Callable[[Request], Awaitable[Any]]] = {
            "positions": self.positions,
            "pnl": self.pnl,
            "stats": self.stats,
            "fills": self.fills,
            "sessions": self.sessions,
        }

    async def subscribe(self, nc: NATS) -> list[Any]:
        subs = []
        for name, fn in self.endpoints.items():
            subs.append(await nc.subscribe(subjects.ledger_rpc(name), queue=QUEUE, cb=self._cb(fn)))
        return subs

    def _cb(self, fn: Callable[[Request], Awaitable[Any]]) -> Callable[[Any], Awaitable[None]]:
        async def on_request(msg: Any) -> None:
            await msg.respond(msgspec.json.encode(await self.answer(fn, msg.data)))

        return on_request

    async def answer(self, fn: Callable[[Request], Awaitable[Any]], body: bytes) -> Reply:
        try:
            req = _request.decode(body) if body.strip() else Request()
        except msgspec.DecodeError as e:
            return Reply(ok=False, error=f"bad request: {e}")
        try:
            return Reply(ok=True, data=await fn(req))
        except Exception as e:  # an answer, never a silent timeout for the operator
            log.exception("query failed")
            return Reply(ok=False, error=repr(e))

    async def positions(self, req: Request) -> Any:
        snaps = await self.book.snapshots(save=False)
        return [p for s in snaps for p in s.positions if req.strategy in (None, p.strategy)]

    async def pnl(self, req: Request) -> Any:
        snaps = await self.book.snapshots(save=False)
        async with self.pool.acquire() as conn:
            trades = await queries.fill_count(conn)
            current = await self._current_session(conn)
            closed = await queries.closed_trade_count(conn, current.started_at if current else None)
        uptime = self.book.uptime_s()
        out = []
        for s in snaps:
            session = None
            if current is not None:
                session = {
                    "session_id": current.session_id,
                    "started_at": current.started_at,
                    "start_equity": current.start_equity.get(s.account),
                    "closed_trades": closed,
                }
            venue = self.book.venue.get(s.account) if self.book.cfg.cash_source == "venue" else None
            out.append({"snapshot": s, "metrics": run_metrics(s, trades, uptime, session, venue)})
        return out

    async def _current_session(self, conn: asyncpg.Connection) -> Session | None:
        if self.book.session_id is None:
            return None
        return find(await sessions(conn, 1), "current", self.book.session_id)

    async def _window(self, req: Request) -> Request:
        """The request's time window, narrowed to a session when one is asked for."""
        if req.session is None:
            return req
        async with self.pool.acquire() as conn:
            found = find(await sessions(conn, 10_000), req.session, self.book.session_id)
        if found is None:
            raise LookupError(f"no session {req.session!r}")
        since = max(filter(None, [req.since, found.started_at]))
        until = min(filter(None, [req.until, found.ended_at]), default=None)
        return msgspec.structs.replace(req, since=since, until=until)

    async def stats(self, req: Request) -> Any:
        req = await self._window(req)
        snaps = await self.book.snapshots(save=False)
        async with self.pool.acquire() as conn:
            trades = await queries.closed_trades(conn, req.strategy, req.since, req.until)
            names = await queries.strategies(conn)
            execs = await queries.executions(conn, req.strategy, req.since, req.until)
            rates = await queries.fill_rates(conn, req.strategy, req.since, req.until)
            reports = await queries.quality(conn, req.strategy, req.since, req.until)
        upnl: dict[str, Decimal] = {}
        for p in (p for s in snaps for p in s.positions):
            upnl[p.strategy] = upnl.get(p.strategy, Decimal(0)) + p.unrealized_pnl
        every = set(names) | set(trades) | set(rates) | set(reports)
        wanted = [req.strategy] if req.strategy else sorted(every)
        out = [compute(n, trades.get(n, []), upnl.get(n, Decimal(0))) for n in wanted]
        for st in out:
            st.avg_slippage_bps = avg_slippage_bps(execs.get(st.strategy, []))
            _fill_rate(st, rates.get(st.strategy))
            _quality(st, reports.get(st.strategy))
        return out

    async def sessions(self, req: Request) -> Any:
        """Each run of the ledger (newest first) with the statistics of the trades it closed."""
        async with self.pool.acquire() as conn:
            found = await sessions(conn, min(req.limit, 1000))
            out = []
            for s in found:
                trades = await queries.closed_trades(conn, req.strategy, s.started_at, s.ended_at)
                every = [t for ts in trades.values() for t in ts]
                out.append(
                    {
                        "session_id": s.session_id,
                        "instance": s.instance,
                        "current": s.session_id == self.book.session_id,
                        "started_at": s.started_at,
                        "ended_at": s.ended_at,
                        "start_equity": s.start_equity,
                        "stats": compute(req.strategy or "*", every),
                    }
                )
        return out

    async def fills(self, req: Request) -> Any:
        async with self.pool.acquire() as conn:
            return await queries.fills(conn, req.since, req.until, min(req.limit, MAX_FILLS))


def _fill_rate(st: Stats, rate: Any) -> None:
    if rate is not None:
        st.orders, st.orders_filled, st.fill_rate = rate.orders, rate.orders_filled, rate.rate


def _quality(st: Stats, r: Any) -> None:
    if r is not None:
        st.quality_reports = r["reports"]
        st.avg_time_to_fill_ms = r["ttf_ms"]
        st.implementation_shortfall = r["shortfall"]
        st.implementation_shortfall_bps = r["shortfall_bps"]
