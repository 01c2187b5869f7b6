"""Shared building blocks of tradebus services: events, subjects, bus, config, runtime."""

__version__ = "0.1.0"
