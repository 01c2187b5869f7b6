"""Execution algorithms (E7): TWAP, iceberg and limit-then-market work one approved parent
order as real child orders, each with its own deterministic client order id."""
