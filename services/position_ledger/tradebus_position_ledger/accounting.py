"""Mark-to-market, pure and exact: unrealized P&L, cash, equity, exposure, drawdown and the
trading day. Inputs are the booked positions and the last market prices; nothing here does I/O.

cash   = starting cash + realized P&L (net of fees) - signed cost basis of what is open
equity = cash + sum(quantity x mark)       (= starting cash + realized + unrealized)
A position without a mark yet is valued at its average price (unrealized 0), never at zero.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from tradebus_common.events import PositionView

from .projection import ZERO, Position

HUNDRED = Decimal(100)


@dataclass(frozen=True)
class Holding:
    account: str
    venue: str
    symbol: str
    strategy: str
    position: Position


@dataclass(frozen=True)
class Valuation:
    account: str
    starting_cash: Decimal
    cash: Decimal
    equity: Decimal
    realized_pnl: Decimal
    unrealized_pnl: Decimal
    gross_exposure: Decimal
    net_exposure: Decimal
    positions: list[PositionView]


def signed_cost(pos: Position) -> Decimal:
    return pos.cost_basis if pos.quantity > 0 else -pos.cost_basis


def unrealized(pos: Position, mark: Decimal | None) -> Decimal:
    if mark is None or pos.quantity == 0:
        return ZERO
    return pos.quantity * mark - signed_cost(pos)


def value_account(
    account: str,
    starting_cash: Decimal,
    holdings: Iterable[Holding],
    marks: Mapping[tuple[str, str], Decimal],
) -> Valuation:
    cash, realized, upnl, gross, net, views = starting_cash, ZERO, ZERO, ZERO, ZERO, []
    for h in holdings:
        pos = h.position
        mark = marks.get((h.venue, h.symbol))
        value = pos.quantity * (mark if mark is not None else pos.avg_price)
        cash += pos.realized_pnl - signed_cost(pos)
        realized += pos.realized_pnl
        upnl += unrealized(pos, mark)
        gross += abs(value)
        net += value
        if pos.quantity != 0:
            views.append(_view(h, mark))
    return Valuation(account, starting_cash, cash, cash + net, realized, upnl, gross, net, views)


def _view(h: Holding, mark: Decimal | None) -> PositionView:
    return PositionView(
        account=h.account,
        venue=h.venue,
        symbol=h.symbol,
        strategy=h.strategy,
        quantity=h.position.quantity,
        avg_price=h.position.avg_price,
        realized_pnl=h.position.realized_pnl,
        mark_price=mark,
        unrealized_pnl=unrealized(h.position, mark),
    )


def drawdown(high_water_mark: Decimal, equity: Decimal) -> tuple[Decimal, Decimal]:
    """(amount, percent of the high-water mark); zero at or above the mark."""
    amount = max(high_water_mark - equity, ZERO)
    pct = amount / high_water_mark * HUNDRED if high_water_mark > 0 else ZERO
    return amount, pct


def trading_day(ts: datetime, timezone: str, start_hour: int) -> date:
    """The trading day `ts` belongs to: days start at `start_hour` local time in `timezone`
    (e.g. 17 in America/New_York for an FX-style day)."""
    local = ts.astimezone(ZoneInfo(timezone))
    return (local - timedelta(hours=start_hour)).date()
