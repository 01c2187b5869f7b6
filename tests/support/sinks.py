"""Loopback sink receivers: an aiohttp server (webhook, PagerDuty) and aiosmtpd (SMTP)."""

from __future__ import annotations

import asyncio
import json
from email import message_from_bytes
from email.message import Message
from typing import Any

from aiohttp import web
from aiosmtpd.controller import Controller

from tradebus_common.stack.servers import free_port


class HttpReceiver:
    """Records every JSON body posted to /webhook and /pagerduty, with its arrival time."""

    def __init__(self) -> None:
        self.bodies: dict[str, list[dict[str, Any]]] = {"webhook": [], "pagerduty": []}
        self.arrived: dict[str, list[float]] = {"webhook": [], "pagerduty": []}
        self._changed = asyncio.Condition()
        self.port = free_port()
        self._runner: web.AppRunner | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    async def _on_post(self, request: web.Request) -> web.Response:
        path = request.path.strip("/")
        self.bodies[path].append(await request.json())
        self.arrived[path].append(asyncio.get_running_loop().time())
        async with self._changed:
            self._changed.notify_all()
        return web.json_response({"status": "success"}, status=202)

    async def start(self) -> HttpReceiver:
        app = web.Application()
        app.router.add_post("/webhook", self._on_post)
        app.router.add_post("/pagerduty", self._on_post)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()

    async def wait_for(self, path: str, count: int = 1, timeout: float = 10.0) -> list[dict]:
        async def _wait() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: len(self.bodies[path]) >= count)

        try:
            await asyncio.wait_for(_wait(), timeout)
        except TimeoutError as e:
            raise AssertionError(
                f"{path}: {len(self.bodies[path])} of {count} request(s) after {timeout}s"
            ) from e
        return self.bodies[path]


class _Handler:
    def __init__(self, box: SmtpReceiver) -> None:
        self.box = box

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.box.messages.append((envelope, message_from_bytes(envelope.content)))
        self.box.login.append(getattr(session, "login_data", None))
        self.box.loop.call_soon_threadsafe(self.box.arrived.set)
        return "250 OK"


class SmtpReceiver:
    """A real SMTP server (aiosmtpd in its own thread) that keeps every message."""

    def __init__(self, loop: asyncio.AbstractEventLoop, auth: dict[str, str] | None = None) -> None:
        self.loop = loop
        self.messages: list[tuple[Any, Message]] = []
        self.login: list[Any] = []
        self.arrived = asyncio.Event()
        self.port = free_port()
        kwargs: dict[str, Any] = {}
        if auth:
            kwargs = {
                "authenticator": lambda server, session, envelope, mechanism, data: _check(
                    auth, data
                ),
                "auth_require_tls": False,
            }
        self.controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port, **kwargs)

    def start(self) -> SmtpReceiver:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    async def wait_for(self, count: int = 1, timeout: float = 10.0) -> list[tuple[Any, Message]]:
        async def _wait() -> None:
            while len(self.messages) < count:
                self.arrived.clear()
                await self.arrived.wait()

        await asyncio.wait_for(_wait(), timeout)
        return self.messages


def _check(auth: dict[str, str], data: Any) -> Any:
    from aiosmtpd.smtp import AuthResult, LoginPassword

    ok = isinstance(data, LoginPassword) and auth.get(data.login.decode()) == data.password.decode()
    return AuthResult(success=ok, handled=False)


def dumps(body: Any) -> str:
    return json.dumps(body, sort_keys=True)
