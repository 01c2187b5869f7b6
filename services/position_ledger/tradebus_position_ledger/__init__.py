"""position-ledger: fills into positions and P&L in PostgreSQL, exactly once."""
