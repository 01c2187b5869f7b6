"""API credentials for a ccxt venue: only from environment variables or secret files named in
the config (O4). Values are never logged, and errors name the variable or file, never the value.
"""

from __future__ import annotations

import os
from pathlib import Path

from tradebus_common.config import VenueConfig
from tradebus_common.errors import ConfigError

# ccxt constructor key -> (env var field, secret file field) of VenueConfig
_FIELDS = {
    "apiKey": ("api_key_env", "api_key_file"),
    "secret": ("secret_env", "secret_file"),
    "password": ("password_env", "password_file"),
}


def _read(config: VenueConfig, env_field: str, file_field: str) -> str:
    env_name, file_name = getattr(config, env_field), getattr(config, file_field)
    if file_name:
        try:
            return Path(file_name).read_text().strip()
        except OSError as e:
            raise ConfigError(f"venue secret file {file_field}={file_name!r} unreadable") from e
    if env_name:
        value = os.environ.get(env_name, "")
        if not value:
            raise ConfigError(f"venue secret: environment variable {env_name} is not set")
        return value
    return ""


def credentials(config: VenueConfig) -> dict[str, str]:
    """The ccxt credential keys that are configured (absent ones are left out)."""
    found = {key: _read(config, *fields) for key, fields in _FIELDS.items()}
    return {k: v for k, v in found.items() if v}
