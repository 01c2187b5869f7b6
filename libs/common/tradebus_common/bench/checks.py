"""The risk check's own cost, in process: every pre-trade check over a realistic view."""

from __future__ import annotations

import time
from decimal import Decimal

from ..config import RiskConfig
from ..events import (
    LedgerSnapshot,
    OrderIntent,
    OrderType,
    PositionView,
    Side,
    TradingState,
    TradingStateChanged,
)
from .figures import Figure, percentile


def risk_check_cost(n: int) -> Figure:
    """p99 of `first_denial` over n intents that pass every check (the most work)."""
    from tradebus_risk_gate.checks import first_denial
    from tradebus_risk_gate.view import RiskView

    limits = RiskConfig(
        max_position_qty=Decimal(1000),
        max_gross_exposure=Decimal(10**9),
        max_concentration_pct=Decimal(100),
        max_leverage=Decimal(10),
        price_collar_pct=Decimal(5),
        max_open_positions=100,
        daily_loss_limit=Decimal(10**6),
        max_drawdown_pct=Decimal(50),
    )
    snapshot = LedgerSnapshot(
        equity=Decimal(1_000_000),
        cash=Decimal(900_000),
        positions=[
            PositionView(
                venue="paper", symbol="BTC/USDT", quantity=Decimal(1), mark_price=Decimal(50000)
            )
        ],
    )
    view = RiskView(
        limits=limits,
        states=(TradingStateChanged(state=TradingState.ACTIVE),),
        last_price=Decimal(50000),
        tick_age_s=0.5,
        snapshot=snapshot,
        now_s=1.0,
    )
    intents = [
        OrderIntent(
            strategy="bench",
            venue="paper",
            symbol="BTC/USDT",
            side=Side.BUY,
            quantity=Decimal("0.01"),
            order_type=OrderType.MARKET,
        )
        for _ in range(min(n, 1000))
    ]
    samples = []
    for i in range(n):
        t0 = time.perf_counter()
        denial = first_denial(intents[i % len(intents)], view)
        samples.append((time.perf_counter() - t0) * 1e6)
        if denial is not None:
            raise RuntimeError(f"bench intent denied: {denial}")
    return Figure("risk check (in process) p99", percentile(samples, 99), "us", target=200)
