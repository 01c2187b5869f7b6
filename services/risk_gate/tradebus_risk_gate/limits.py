"""Effective limits for one intent: [risk], then [risk.strategies.<name>], then
[risk.symbols.<symbol>] (the most specific wins), plus the venue's symbol rules."""

from __future__ import annotations

import msgspec

from tradebus_common.config import RiskConfig, VenueSymbolRules

NO_RULES = VenueSymbolRules()


class LimitResolver:
    """Merges overrides once per (strategy, symbol); the config is frozen, so caching is safe."""

    def __init__(self, risk: RiskConfig) -> None:
        self.risk = risk
        self._cache: dict[tuple[str, str], RiskConfig] = {}

    def for_intent(self, strategy: str, symbol: str) -> RiskConfig:
        key = (strategy, symbol)
        if key not in self._cache:
            self._cache[key] = resolve(self.risk, strategy, symbol)
        return self._cache[key]


def resolve(risk: RiskConfig, strategy: str, symbol: str) -> RiskConfig:
    limits = risk
    for override in (risk.strategies.get(strategy), risk.symbols.get(symbol)):
        if override is None:
            continue
        changes = {
            name: value
            for name, value in msgspec.structs.asdict(override).items()
            if value is not None
        }
        limits = msgspec.structs.replace(limits, **changes)
    return limits


def venue_rules(risk: RiskConfig, venue: str, symbol: str) -> VenueSymbolRules:
    return risk.venue_rules.get(venue, {}).get(symbol, NO_RULES)
