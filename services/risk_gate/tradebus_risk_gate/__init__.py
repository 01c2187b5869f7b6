"""risk-gate: pre-trade checks and the latched trading state (fail closed)."""
