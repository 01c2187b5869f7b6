"""A local Binance-spot REST emulator for the ccxt venue tests."""

import json

from .server import BinanceEmulator, Held

__all__ = ["BinanceEmulator", "Held"]


def venue_config(emulator: BinanceEmulator, **overrides: object):  # noqa: ANN201
    """A [venues.<name>] for kind = "ccxt" pointed at the emulator (real ccxt, real HTTP)."""
    from tradebus_common.config import VenueConfig

    return VenueConfig(**_params(emulator, **overrides))  # type: ignore[arg-type]


def venue_toml(emulator: BinanceEmulator, name: str, **overrides: object) -> str:
    """The same venue as a TOML table, for services run as processes."""
    rows = [f"{key} = {_toml(value)}" for key, value in _params(emulator, **overrides).items()]
    return "\n".join([f"[venues.{name}]", *rows]) + "\n"


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, str | list):
        return json.dumps(value)
    return str(value)


def _params(emulator: BinanceEmulator, **overrides: object) -> dict[str, object]:
    return {
        "kind": "ccxt",
        "exchange": "binance",
        "sandbox": False,
        "symbols": ["BTC/USDT", "ETH/USDT"],
        "api_key_env": "TB_EMU_KEY",
        "secret_env": "TB_EMU_SECRET",
        "api_urls": {"public": emulator.url, "private": emulator.url},
        "timeout_ms": 500,
        "retry_base_ms": 20,
        "retry_max_ms": 200,
        "unknown_grace_s": 0.5,
        "order_poll_interval_ms": 100,
        "breaker_open_s": 0.5,
        **overrides,
    }


CREDENTIALS_ENV = {"TB_EMU_KEY": "emu-key", "TB_EMU_SECRET": "emu-secret"}
