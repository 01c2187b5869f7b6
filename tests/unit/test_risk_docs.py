"""docs/risk.md names every reason code and every risk config key (R7: documented limits)."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from tradebus_common.config import (
    BreakerConfig,
    ModeConfig,
    ProtectionConfig,
    RiskConfig,
    StageConfig,
    VenueSymbolRules,
)
from tradebus_common.events import DenyReason

DOC = (Path(__file__).parents[2] / "docs" / "risk.md").read_text()


@pytest.mark.parametrize("reason", list(DenyReason), ids=str)
def test_every_deny_reason_is_documented(reason: DenyReason) -> None:
    assert f"`{reason.value}`" in DOC


@pytest.mark.parametrize(
    "section",
    [RiskConfig, BreakerConfig, ProtectionConfig, ModeConfig, StageConfig, VenueSymbolRules],
    ids=lambda t: t.__name__,
)
def test_every_risk_config_key_is_documented(section: type[msgspec.Struct]) -> None:
    missing = [f.name for f in msgspec.structs.fields(section) if f.name not in DOC]
    assert missing == []
