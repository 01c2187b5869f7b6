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
    return stats


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
