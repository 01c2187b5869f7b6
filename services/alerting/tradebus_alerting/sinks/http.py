"""Webhook (Slack-compatible or generic JSON) and PagerDuty Events API v2, over aiohttp."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import aiohttp

from tradebus_common.config import PagerDutySinkConfig, WebhookSinkConfig

from ..model import Notice
from .base import SinkError, secret
from .payloads import generic_body, pagerduty_body, slack_body


def where(url: str) -> str:
    """Scheme, host and port only: the path of a Slack webhook URL is its token."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}:{parts.port or ''}"


class _HttpSink:
    name = "http"

    def __init__(self, timeout_s: float) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def _post(self, url: str, body: dict[str, Any]) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        try:
            async with self._session.post(url, json=body) as resp:
                if resp.status >= 300:
                    text = (await resp.text())[:200]
                    raise SinkError(f"{self.name}: HTTP {resp.status}: {text}")
        except (aiohttp.ClientError, TimeoutError) as e:
            # Never the URL itself: a Slack webhook URL is a credential.
            raise SinkError(f"{self.name}: {type(e).__name__} posting to {where(url)}") from e

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


class WebhookSink(_HttpSink):
    name = "webhook"

    def __init__(self, cfg: WebhookSinkConfig) -> None:
        super().__init__(cfg.timeout_s)
        self.url = cfg.url or secret(cfg.url_env, "")
        self.format = cfg.format

    @property
    def configured(self) -> bool:
        return bool(self.url)

    async def send(self, notice: Notice) -> None:
        body = slack_body(notice) if self.format == "slack" else generic_body(notice)
        await self._post(self.url, body)


class PagerDutySink(_HttpSink):
    name = "pagerduty"

    def __init__(self, cfg: PagerDutySinkConfig) -> None:
        super().__init__(cfg.timeout_s)
        self.url = cfg.events_url
        self._routing_key = secret(cfg.routing_key_env, cfg.routing_key_file)

    @property
    def configured(self) -> bool:
        return bool(self._routing_key and self.url)

    async def send(self, notice: Notice) -> None:
        await self._post(self.url, pagerduty_body(notice, self._routing_key))
