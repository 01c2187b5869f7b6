"""Cash from the venue (L5, "starting capital and cash ... from venue balances via the
reconciler"). The reconciler's ReconReport carries `account` and `balances` (currency ->
total at the venue). With [ledger] cash_source = "venue", the first balance of
`cash_currency` seen for an (account, venue) fixes the starting cash so that the ledger's
cash equalled the venue's at that moment:

    starting cash = sum over the account's venues of (first balance - ledger cash change then)
    ledger cash change = realized P&L - signed cost basis of the open positions (that venue)

Later reports only update the latest balance (shown next to the ledger's cash by `pnl`): the
starting capital, and so the return, stays put."""

from __future__ import annotations

from decimal import Decimal

import asyncpg

from tradebus_common.events import ReconReport

_OBSERVE = """
INSERT INTO venue_balances (account, venue, currency, first_balance, first_offset, balance,
    report_id, observed_at)
VALUES ($1, $2, $3, $4,
    (SELECT coalesce(sum(realized_pnl - CASE WHEN quantity > 0 THEN cost_basis
        WHEN quantity < 0 THEN -cost_basis ELSE 0 END), 0)
     FROM positions WHERE account = $1 AND venue = $2),
    $4, $5, $6)
ON CONFLICT (account, venue, currency) DO UPDATE SET balance = EXCLUDED.balance,
    report_id = EXCLUDED.report_id, observed_at = EXCLUDED.observed_at
WHERE venue_balances.observed_at <= EXCLUDED.observed_at"""


async def observe(conn: asyncpg.Connection, report: ReconReport, currency: str) -> bool:
    """Record the report's balance of `currency`; False if it has none."""
    balance = report.balances.get(currency)
    if balance is None:
        return False
    await conn.execute(
        _OBSERVE, report.account, report.venue, currency, balance, report.id, report.ts
    )
    return True


async def venue_cash(conn: asyncpg.Connection, currency: str) -> dict[str, dict[str, Decimal]]:
    """Per account: `starting_cash` (from the first observations) and `balance` (latest)."""
    rows = await conn.fetch(
        "SELECT account, sum(first_balance - first_offset) AS starting_cash, "
        "sum(balance) AS balance FROM venue_balances WHERE currency = $1 GROUP BY account",
        currency,
    )
    return {
        r["account"]: {"starting_cash": r["starting_cash"], "balance": r["balance"]} for r in rows
    }
