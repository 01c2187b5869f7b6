"""`tradebus status` prints the risk-gate's locks section."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tradebus_common.cli.status import print_locks


def test_locks_section_prints_each_lock_with_time_left(capsys: pytest.CaptureFixture[str]) -> None:
    now = datetime.now(UTC).timestamp()
    print_locks(
        {
            "active": [
                {"kind": "cooldown", "target": "BTC/USDT", "reason": "loss", "until_s": now + 60},
                {"kind": "state:HALTED", "target": "venue:paper", "reason": "x", "until_s": None},
            ]
        }
    )
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "locks: 2"
    assert "cooldown" in out[1] and "BTC/USDT" in out[1] and "s left" in out[1]
    assert "state:HALTED" in out[2] and "latched" in out[2]
