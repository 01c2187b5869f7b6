"""The sink interface and its error."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

from ..model import Notice


class SinkError(Exception):
    """A delivery attempt failed; the dispatcher retries it with backoff."""


class Sink(Protocol):
    name: str

    @property
    def configured(self) -> bool: ...

    async def send(self, notice: Notice) -> None: ...

    async def close(self) -> None: ...


def secret(env_name: str, file_path: str) -> str:
    """A secret from a file (preferred: no env dump leaks it) or an environment variable."""
    if file_path:
        return Path(file_path).read_text().strip()
    return os.environ.get(env_name, "").strip() if env_name else ""
