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

    def starting_cash(self, account: str) -> Decimal:
        acct = self.config.accounts.get(account)
        return acct.starting_cash if acct else self.cfg.default_starting_cash

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


def run_metrics(s: LedgerSnapshot, total_trades: int, uptime_s: float) -> dict[str, object]:
    """L8: initial capital, current value, return %, trades, drawdown, uptime."""
    ret = (s.equity - s.starting_cash) / s.starting_cash * HUNDRED if s.starting_cash else None
    return {
        "initial_capital": s.starting_cash,
        "current_value": s.equity,
        "return_pct": ret,
        "total_trades": total_trades,
        "current_drawdown": s.drawdown,
        "current_drawdown_pct": s.drawdown_pct,
        "uptime_s": round(uptime_s, 3),
    }
