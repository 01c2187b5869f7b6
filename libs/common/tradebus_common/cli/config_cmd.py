"""`tradebus config show`: the effective configuration (defaults < file < environment),
with every secret redacted. Secrets live in the environment or in files the config names
(`*_env`, `*_file`, `creds_file`): those names are shown, never what they point to."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

import msgspec

from ..config import load_config
from ..telemetry import redact_url

REDACTED = "***"
# Key names whose values are secrets themselves (not the name of where a secret is).
SECRET_WORDS = ("password", "passwd", "secret", "token", "api_key", "apikey", "private_key", "seed")
SECRET_KEYS = {"routing_key", "alerting.webhook.url"}  # a Slack webhook URL embeds its token
URL_KEYS = ("url", "dsn", "endpoint")


def register(sub: Any, client_opts: Callable[[argparse.ArgumentParser], None]) -> None:
    p = sub.add_parser("config", help="inspect the configuration")
    cmds = p.add_subparsers(dest="config_command", required=True)
    p = cmds.add_parser("show", help="the effective config, secrets redacted")
    p.add_argument("--config", help="tradebus.toml (default: $TRADEBUS_CONFIG)")
    p.set_defaults(handler=cmd_show)


def _is_reference(key: str) -> bool:
    """`password_env`, `routing_key_file`, `creds_file`: where a secret is, not the secret."""
    return key.endswith(("_env", "_file"))


def redact(tree: Any, path: str = "") -> Any:
    if isinstance(tree, dict):
        return {k: redact(v, f"{path}.{k}" if path else k) for k, v in tree.items()}
    if isinstance(tree, list):
        return [redact(v, path) for v in tree]
    if not isinstance(tree, str) or not tree:
        return tree
    key = path.rsplit(".", 1)[-1].lower()
    if _is_reference(key):
        return tree
    if path in SECRET_KEYS or key in SECRET_KEYS or any(w in key for w in SECRET_WORDS):
        return REDACTED
    if any(key.endswith(u) for u in URL_KEYS):
        return redact_url(tree)
    return tree


def show(config_path: str | None) -> dict[str, Any]:
    return redact(msgspec.to_builtins(load_config(config_path)))


async def cmd_show(args: Any) -> int:
    print(json.dumps(show(args.config), indent=2, default=str))
    return 0
