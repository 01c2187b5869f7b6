"""A local Binance-spot REST emulator for the ccxt venue tests."""

from .server import BinanceEmulator, Held

__all__ = ["BinanceEmulator", "Held"]


def venue_config(emulator: BinanceEmulator, **overrides: object):  # noqa: ANN201
    """A [venues.<name>] for kind = "ccxt" pointed at the emulator (real ccxt, real HTTP)."""
    from tradebus_common.config import VenueConfig

    params: dict[str, object] = {
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
    return VenueConfig(**params)  # type: ignore[arg-type]


CREDENTIALS_ENV = {"TB_EMU_KEY": "emu-key", "TB_EMU_SECRET": "emu-secret"}
