"""The `tradebus` command's promises to operators: clear errors and exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tradebus_common.stack.servers import free_port

CLI = [sys.executable, "-m", "tradebus_common.cli.main"]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=60, env=env)


def test_config_typo_is_named_and_exits_2(tmp_path: Path):
    cfg = tmp_path / "tradebus.toml"
    cfg.write_text("[risk]\nmax_notional_per_ordr = 5\n")
    result = run("run", "signal", "--config", str(cfg))
    assert result.returncode == 2
    assert "max_notional_per_ordr" in result.stderr and "$.risk" in result.stderr


def test_ledger_without_database_exits_2_and_says_how_to_fix(nats_server, tmp_path: Path):
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEBUS")}
    result = run("run", "position-ledger", "--nats", nats_server.url, env=env)
    assert result.returncode == 2
    assert "TRADEBUS__DATABASE__DSN" in result.stderr


def test_client_command_without_a_stack_fails_fast_with_a_hint():
    result = run("status", "--nats", f"nats://127.0.0.1:{free_port()}")
    assert result.returncode == 2
    assert "cannot reach NATS" in result.stderr and "make run" in result.stderr


@pytest.mark.parametrize("qty", ["abc", "1e"])
def test_signal_with_bad_quantity_is_refused_before_publishing(qty: str):
    result = run(
        "signal",
        "--nats",
        "nats://127.0.0.1:1",
        "--symbol",
        "BTC/USDT",
        "--side",
        "buy",
        "--qty",
        qty,
    )
    assert result.returncode == 2
    assert "--qty must be a decimal number" in result.stderr
