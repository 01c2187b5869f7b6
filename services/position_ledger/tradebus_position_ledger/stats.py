"""Performance statistics of closed cycles (trades), pure and in Decimal.

Ratios are per trade, not annualized: Sharpe = mean / sample standard deviation of the trades'
net P&L; Sortino = mean / downside deviation (root mean square of the losses over all trades).
Max drawdown is on the cumulative realized P&L of the trades in close order, from zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import msgspec

ZERO = Decimal(0)


@dataclass(frozen=True)
class Trade:
    realized_pnl: Decimal
    opened_at: datetime
    closed_at: datetime
    exit_reason: str | None = None  # None: the strategy's own exit (a plain signal)
    mae_pct: Decimal | None = None  # None: closed before excursions were kept
    mfe_pct: Decimal | None = None


SIGNAL_EXIT = "signal"  # the exit-reason bucket of trades closed without an ExitReason


class ExitStats(msgspec.Struct, kw_only=True):
    trades: int = 0
    wins: int = 0
    win_rate: Decimal | None = None
    realized_pnl: Decimal = ZERO
    avg_pnl: Decimal | None = None


class Stats(msgspec.Struct, kw_only=True):
    strategy: str
    trades: int = 0
    wins: int = 0
    losses: int = 0
    win_rate: Decimal | None = None
    profit_factor: Decimal | None = None  # None: no losing trade to divide by
    sharpe: Decimal | None = None
    sortino: Decimal | None = None
    max_drawdown: Decimal = ZERO
    avg_holding_s: Decimal | None = None
    realized_pnl: Decimal = ZERO
    unrealized_pnl: Decimal = ZERO
    gross_profit: Decimal = ZERO
    gross_loss: Decimal = ZERO
    avg_slippage_bps: Decimal | None = None  # quantity-weighted; positive = worse than arrival
    avg_mae_pct: Decimal | None = None  # mean max adverse excursion of the trades, % of entry
    avg_mfe_pct: Decimal | None = None
    max_mae_pct: Decimal | None = None
    by_exit_reason: dict[str, ExitStats] = {}
    orders: int = 0  # finished orders (filled, or closed by the venue/cancel) in the window
    orders_filled: int = 0  # ... with at least one fill
    fill_rate: Decimal | None = None  # filled quantity / ordered quantity of those orders
    # From the gateway's ExecutionQuality reports (one per finished order or algo parent):
    quality_reports: int = 0
    avg_time_to_fill_ms: Decimal | None = None  # mean time to the first fill
    implementation_shortfall: Decimal | None = None  # sum, quote currency; positive = cost
    implementation_shortfall_bps: Decimal | None = None  # quantity-weighted


def compute(strategy: str, trades: Sequence[Trade], unrealized: Decimal = ZERO) -> Stats:
    trades = sorted(trades, key=lambda t: t.closed_at)
    pnl = [t.realized_pnl for t in trades]
    n = len(pnl)
    gains = sum((p for p in pnl if p > 0), ZERO)
    losses = sum((p for p in pnl if p < 0), ZERO)
    stats = Stats(
        strategy=strategy,
        trades=n,
        wins=sum(1 for p in pnl if p > 0),
        losses=sum(1 for p in pnl if p < 0),
        realized_pnl=sum(pnl, ZERO),
        unrealized_pnl=unrealized,
        gross_profit=gains,
        gross_loss=losses,
        max_drawdown=max_drawdown(pnl),
    )
    if n:
        stats.win_rate = Decimal(stats.wins) / n
        stats.profit_factor = gains / -losses if losses else None
        stats.sharpe = sharpe(pnl)
        stats.sortino = sortino(pnl)
        held = sum(Decimal(str((t.closed_at - t.opened_at).total_seconds())) for t in trades)
        stats.avg_holding_s = held / n
    maes = [t.mae_pct for t in trades if t.mae_pct is not None]
    mfes = [t.mfe_pct for t in trades if t.mfe_pct is not None]
    if maes:
        stats.avg_mae_pct, stats.max_mae_pct = mean(maes), max(maes)
    if mfes:
        stats.avg_mfe_pct = mean(mfes)
    stats.by_exit_reason = by_exit_reason(trades)
    return stats


def by_exit_reason(trades: Sequence[Trade]) -> dict[str, ExitStats]:
    """Trades, wins and P&L per exit reason (stop loss, take profit, ..., or "signal")."""
    out: dict[str, ExitStats] = {}
    for t in trades:
        e = out.setdefault(t.exit_reason or SIGNAL_EXIT, ExitStats())
        e.trades += 1
        e.wins += t.realized_pnl > 0
        e.realized_pnl += t.realized_pnl
    for e in out.values():
        e.win_rate = Decimal(e.wins) / e.trades
        e.avg_pnl = e.realized_pnl / e.trades
    return dict(sorted(out.items()))


@dataclass(frozen=True)
class FillRate:
    orders: int
    orders_filled: int
    filled_quantity: Decimal
    ordered_quantity: Decimal

    @property
    def rate(self) -> Decimal | None:
        return self.filled_quantity / self.ordered_quantity if self.ordered_quantity else None


def mean(xs: Sequence[Decimal]) -> Decimal:
    return sum(xs, ZERO) / len(xs)


def sharpe(pnl: Sequence[Decimal]) -> Decimal | None:
    if len(pnl) < 2:
        return None
    m = mean(pnl)
    var = sum(((p - m) ** 2 for p in pnl), ZERO) / (len(pnl) - 1)
    return m / var.sqrt() if var > 0 else None


def sortino(pnl: Sequence[Decimal]) -> Decimal | None:
    if not pnl:
        return None
    downside = sum((min(p, ZERO) ** 2 for p in pnl), ZERO) / len(pnl)
    return mean(pnl) / downside.sqrt() if downside > 0 else None


def max_drawdown(pnl: Sequence[Decimal]) -> Decimal:
    peak = equity = worst = ZERO
    for p in pnl:
        equity += p
        peak = max(peak, equity)
        worst = max(worst, peak - equity)
    return worst


@dataclass(frozen=True)
class Execution:
    side: str  # buy | sell
    quantity: Decimal
    price: Decimal
    arrival_price: Decimal


def slippage_bps(e: Execution) -> Decimal:
    """Against the arrival price, signed so that a cost is positive: paying up on a buy,
    selling below on a sell."""
    sign = 1 if e.side == "buy" else -1
    return (e.price - e.arrival_price) / e.arrival_price * 10_000 * sign


def avg_slippage_bps(executions: Sequence[Execution]) -> Decimal | None:
    usable = [e for e in executions if e.arrival_price > 0]
    total = sum((e.quantity for e in usable), ZERO)
    if not total:
        return None
    return sum((slippage_bps(e) * e.quantity for e in usable), ZERO) / total
