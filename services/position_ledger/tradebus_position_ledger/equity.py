"""Equity of each account over time: marks from market ticks, high-water mark, drawdown,
daily P&L, and the throttled LedgerSnapshot (at least every interval, and on change)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal

import asyncpg

from tradebus_common.config import Config
from tradebus_common.events import LedgerSnapshot, MarketTick, utcnow
from tradebus_common.ids import derive_id

from . import queries
from .accounting import Valuation, drawdown, trading_day, value_account
from .balances import venue_cash

HUNDRED = Decimal(100)


def should_publish(
    changed: bool, since_last_s: float, min_interval_s: float, interval_s: float
) -> bool:
    """The throttle: always after `interval_s`; on a change, but not more often than
    `min_interval_s`."""
    return since_last_s >= interval_s or (changed and since_last_s >= min_interval_s)


def fingerprint(s: LedgerSnapshot) -> tuple:
    """What counts as a change worth a snapshot (not the timestamp or id)."""
    return (
        s.equity,
        s.cash,
        tuple((p.venue, p.symbol, p.strategy, p.quantity) for p in s.positions),
    )


class EquityBook:
    def __init__(self, config: Config, pool: asyncpg.Pool, clock: Callable[[], datetime] = utcnow):
        self.config = config
        self.cfg = config.ledger
        self.pool = pool
        self.clock = clock
        self.marks: dict[tuple[str, str], Decimal] = {}
        self.hwm: dict[str, Decimal] = {}
        self._published: dict[str, tuple] = {}
        self._last_publish = float("-inf")
        self.started = time.monotonic()
        self.session_id: str | None = None
        # cash_source = "venue": per account, starting cash and latest balance at the venues
        self.venue: dict[str, dict[str, Decimal]] = {}

    def starting_cash(self, account: str) -> Decimal:
        if self.cfg.cash_source == "venue" and account in self.venue:
            return self.venue[account]["starting_cash"]
        acct = self.config.accounts.get(account)
        return acct.starting_cash if acct else self.cfg.default_starting_cash

    async def load_venue_cash(self) -> None:
        async with self.pool.acquire() as conn:
            self.venue = await venue_cash(conn, self.cfg.cash_currency)

    def on_ticks(self, ticks: list[MarketTick]) -> None:
        for t in ticks:  # in stream order: the last tick of a symbol wins
            self.marks[(t.venue, t.symbol)] = t.price

    async def snapshots(self, save: bool) -> list[LedgerSnapshot]:
        """The current snapshot of every account (with positions, or configured)."""
        now = self.clock()
        async with self.pool.acquire() as conn:
            held = await queries.holdings(conn)
            accounts = sorted({h.account for h in held} | set(self.config.accounts))
            return [
                await self._snapshot(conn, now, save, value_account(
                    a, self.starting_cash(a), [h for h in held if h.account == a], self.marks
                ))
                for a in accounts
            ]  # fmt: skip

    async def _snapshot(
        self, conn: asyncpg.Connection, now: datetime, save: bool, v: Valuation
    ) -> LedgerSnapshot:
        if v.account not in self.hwm:
            stored = await queries.high_water_mark(conn, v.account)
            self.hwm[v.account] = max(stored or v.starting_cash, v.starting_cash)
        hwm = self.hwm[v.account] = max(self.hwm[v.account], v.equity)
        dd, dd_pct = drawdown(hwm, v.equity)
        day = trading_day(now, self.cfg.day_timezone, self.cfg.day_start_hour)
        day_open = await queries.day_open_equity(conn, v.account, day)
        day_open = v.equity if day_open is None else day_open
        if save:
            await queries.save_snapshot(conn, v, now, hwm, dd, day, day_open)
        return LedgerSnapshot(
            id=derive_id(f"{v.account}:{now.isoformat()}", "ledger-snapshot"),
            ts=now,
            account=v.account,
            equity=v.equity,
            cash=v.cash,
            daily_pnl=v.equity - day_open,
            drawdown=dd,
            drawdown_pct=dd_pct,
            positions=v.positions,
            realized_pnl=v.realized_pnl,
            unrealized_pnl=v.unrealized_pnl,
            starting_cash=v.starting_cash,
            high_water_mark=hwm,
            gross_exposure=v.gross_exposure,
            net_exposure=v.net_exposure,
            trading_day=day.isoformat(),
        )

    async def due_snapshots(self) -> list[LedgerSnapshot]:
        """The snapshots to publish now, per the throttle (saved to equity_snapshots)."""
        since = time.monotonic() - self._last_publish
        min_s = self.cfg.snapshot_min_interval_ms / 1000
        if since < min_s:
            return []
        current = await self.snapshots(save=False)
        changed = any(self._published.get(s.account) != fingerprint(s) for s in current)
        if not should_publish(changed, since, min_s, self.cfg.snapshot_interval_s):
            return []
        current = await self.snapshots(save=True)
        self._last_publish = time.monotonic()
        self._published = {s.account: fingerprint(s) for s in current}
        return current

    def uptime_s(self) -> float:
        return time.monotonic() - self.started


def return_pct(start: Decimal | None, now: Decimal) -> Decimal | None:
    return (now - start) / start * HUNDRED if start else None


def run_metrics(
    s: LedgerSnapshot,
    total_trades: int,
    uptime_s: float,
    session: dict[str, object] | None = None,
    venue: dict[str, Decimal] | None = None,
) -> dict[str, object]:
    """L8: initial capital, current value, return %, trades, drawdown, uptime; and the
    current session's start equity and return (`session`: id, started_at, start_equity,
    closed_trades)."""
    out: dict[str, object] = {
        "initial_capital": s.starting_cash,
        "current_value": s.equity,
        "return_pct": return_pct(s.starting_cash, s.equity),
        "total_trades": total_trades,
        "current_drawdown": s.drawdown,
        "current_drawdown_pct": s.drawdown_pct,
        "uptime_s": round(uptime_s, 3),
    }
    if session is not None:
        start = session.get("start_equity")
        out["session"] = {
            **session,
            "return_pct": return_pct(start, s.equity) if isinstance(start, Decimal) else None,
        }
    if venue is not None:  # cash_source = "venue": what the venues last reported
        out["venue_cash"] = venue["balance"]
        out["cash_minus_venue"] = s.cash - venue["balance"]
    return out
