"""Trading-state scopes: `global`, `strategy:<name>`, `symbol:<symbol>`, `venue:<venue>`.
One KV key per scope in bucket `control` (`state.global` is the historic key)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from tradebus_common import subjects
from tradebus_common.config import Config
from tradebus_common.errors import ErrorCode, PermanentError

KINDS = ("strategy", "symbol", "venue")
_NAME = re.compile(r"^[A-Za-z0-9_\-/.]{1,64}$")
GLOBAL_ALIASES = ("", "global", "all")


@dataclass(frozen=True)
class Scope:
    kind: str  # "global" or one of KINDS
    name: str = ""

    def __str__(self) -> str:
        return "global" if self.kind == "global" else f"{self.kind}:{self.name}"

    @property
    def key(self) -> str:
        if self.kind == "global":
            return subjects.CONTROL_STATE_KEY
        return f"state.{self.kind}.{subjects.token(self.name)}"


GLOBAL = Scope("global")


def parse_scope(raw: str, config: Config) -> Scope:
    """A scope an operator typed, checked against the config: a typo never changes state."""
    text = raw.strip()
    if text.lower() in GLOBAL_ALIASES:
        return GLOBAL
    kind, sep, name = text.partition(":")
    if not sep or kind not in KINDS or not _NAME.match(name):
        raise PermanentError(f"unknown scope {text[:80]!r}", ErrorCode.INVALID_COMMAND)
    if name not in known_names(kind, config):
        raise PermanentError(f"unknown {kind} {name!r} in scope", ErrorCode.INVALID_COMMAND)
    return Scope(kind, name)


def known_names(kind: str, config: Config) -> set[str]:
    if kind == "strategy":
        return set(config.strategies)
    if kind == "venue":
        return set(config.venues)
    return {s for venue in config.venues.values() for s in venue.symbols}


def scopes_for(strategy: str, venue: str, symbol: str) -> tuple[Scope, ...]:
    """Every scope an intent falls under; the most severe state among them applies."""
    return (GLOBAL, Scope("strategy", strategy), Scope("symbol", symbol), Scope("venue", venue))
