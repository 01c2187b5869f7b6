"""Monitors: they watch the system and publish Alerts on the bus like any other service."""
