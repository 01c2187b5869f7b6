"""Run services in-process (same event loop as the test) against the real servers."""

from __future__ import annotations

import asyncio

from tradebus_common.cli.services import load_spec
from tradebus_common.config import Config
from tradebus_common.runtime import ServiceRunner


class InProcessStack:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.running: dict[str, tuple[ServiceRunner, asyncio.Task[None]]] = {}

    async def start(self, *names: str, config: Config | None = None) -> None:
        for name in names:
            runner = ServiceRunner(load_spec(name), config or self.config, instance=f"test-{name}")
            task = asyncio.create_task(runner.run())
            ready = asyncio.create_task(runner.ready.wait())
            done, _ = await asyncio.wait(
                [task, ready], timeout=20, return_when=asyncio.FIRST_COMPLETED
            )
            if task in done:
                ready.cancel()
                task.result()  # raises the start-up error
            if ready not in done:
                raise AssertionError(f"{name} did not start within 20s")
            self.running[name] = (runner, task)

    async def stop(self, *names: str) -> None:
        for name in names or list(self.running):
            runner, task = self.running.pop(name)
            runner.stop()
            await asyncio.wait_for(task, 20)

    def runner(self, name: str) -> ServiceRunner:
        return self.running[name][0]
