"""The registry of runnable services: name -> the module holding its SPEC."""

from __future__ import annotations

import importlib

from ..runtime import ServiceSpec

SERVICE_NAMES = (
    "signal",
    "risk-gate",
    "execution-gateway",
    "position-ledger",
    "reconciler",
    "alerting",
)

# The demo price feed runs through the same runtime but is not one of the six services.
RUNNABLE: dict[str, str] = {
    "signal": "tradebus_signal.service",
    "risk-gate": "tradebus_risk_gate.service",
    "execution-gateway": "tradebus_execution_gateway.service",
    "position-ledger": "tradebus_position_ledger.service",
    "reconciler": "tradebus_reconciler.service",
    "alerting": "tradebus_alerting.service",
    "demo-feed": "tradebus_execution_gateway.feed",
    "example-strategy": "tradebus_signal.example_sma",  # S6, [example_strategy]
}


def load_spec(name: str) -> ServiceSpec:
    return importlib.import_module(RUNNABLE[name]).SPEC
