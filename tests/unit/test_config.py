"""load_config: TOML file, strict keys, environment overrides, DSN fallback."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from tradebus_common.config import Config, DatabaseConfig, load_config
from tradebus_common.errors import ConfigError, ErrorCode


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tradebus.toml"
    path.write_text(text)
    return path


def test_values_from_the_toml_file_are_loaded(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[bus]
url = "nats://file:4222"
max_deliver = 3

[risk]
max_notional_per_order = "1234.50"

[venues.paper]
symbols = ["BTC/USDT"]

[strategies.mm]
quantity = "0.5"
""",
    )
    cfg = load_config(path, environ={})
    assert cfg.bus.url == "nats://file:4222"
    assert cfg.bus.max_deliver == 3
    assert cfg.risk.max_notional_per_order == Decimal("1234.50")
    assert cfg.venues["paper"].symbols == ["BTC/USDT"]
    assert cfg.strategies["mm"].quantity == Decimal("0.5")
    assert cfg.strategies["mm"].enabled is True
    assert cfg.bus.ack_wait_s == 30  # untouched keys keep their defaults


def test_no_file_and_no_env_gives_the_defaults() -> None:
    assert load_config(None, environ={}) == Config()


def test_a_typo_key_is_an_error_naming_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, '[bus]\nurll = "nats://x:4222"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert "urll" in str(info.value)
    assert info.value.code is ErrorCode.CONFIG_INVALID


def test_a_typo_section_is_an_error_naming_it(tmp_path: Path) -> None:
    path = write(tmp_path, '[buss]\nurl = "nats://x:4222"\n')
    with pytest.raises(ConfigError, match="buss"):
        load_config(path, environ={})


def test_a_wrong_type_is_an_error_naming_the_path(tmp_path: Path) -> None:
    path = write(tmp_path, '[bus]\nmax_deliver = "ten"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert "bus.max_deliver" in str(info.value)
    assert str(path) in str(info.value)


def test_invalid_toml_is_a_config_error(tmp_path: Path) -> None:
    path = write(tmp_path, "[bus\nurl = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path, environ={})


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[bus]\nurl = "nats://file:4222"\nmax_deliver = 3\n')
    cfg = load_config(path, environ={"TRADEBUS__BUS__URL": "nats://env:4222"})
    assert cfg.bus.url == "nats://env:4222"
    assert cfg.bus.max_deliver == 3  # the rest of the section survives the merge


def test_environment_values_are_parsed_as_toml_scalars() -> None:
    cfg = load_config(
        None,
        environ={
            "TRADEBUS__BUS__MAX_DELIVER": "4",
            "TRADEBUS__FEED__ENABLED": "false",
            "TRADEBUS__RISK__MAX_NOTIONAL_PER_ORDER": "0.1",
        },
    )
    assert cfg.bus.max_deliver == 4
    assert cfg.feed.enabled is False
    assert cfg.risk.max_notional_per_order == Decimal("0.1")


def test_unrelated_environment_variables_are_ignored() -> None:
    cfg = load_config(None, environ={"TRADEBUS_BUS_URL": "nats://nope", "PATH": "/bin"})
    assert cfg.bus.url == Config().bus.url


def test_a_missing_file_is_a_clear_config_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as info:
        load_config(missing, environ={})
    assert "not found" in str(info.value)
    assert str(missing) in str(info.value)


def test_tradebus_config_env_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[bus]\nurl = "nats://named:4222"\n')
    cfg = load_config(None, environ={"TRADEBUS_CONFIG": str(path)})
    assert cfg.bus.url == "nats://named:4222"


def test_an_explicit_path_wins_over_tradebus_config(tmp_path: Path) -> None:
    path = write(tmp_path, '[bus]\nurl = "nats://explicit:4222"\n')
    cfg = load_config(path, environ={"TRADEBUS_CONFIG": str(tmp_path / "missing.toml")})
    assert cfg.bus.url == "nats://explicit:4222"


def test_database_dsn_falls_back_to_the_env_var_named_by_dsn_env(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MY_TEST_DSN", "postgresql://u@h/db")
    cfg = Config(database=DatabaseConfig(dsn_env="MY_TEST_DSN"))
    assert cfg.database_dsn() == "postgresql://u@h/db"


def test_database_dsn_prefers_the_configured_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_TEST_DSN", "postgresql://env/db")
    cfg = Config(database=DatabaseConfig(dsn="postgresql://cfg/db", dsn_env="MY_TEST_DSN"))
    assert cfg.database_dsn() == "postgresql://cfg/db"


def test_database_dsn_is_empty_when_neither_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MY_TEST_DSN", raising=False)
    assert Config(database=DatabaseConfig(dsn_env="MY_TEST_DSN")).database_dsn() == ""
