"""The service life cycle, written once: config, logging, tracing, connect, topology,
consume loops, heartbeat, then drain and a clean exit on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from . import __version__, metrics, subjects
from .bus import (
    Bus,
    ConsumeLoop,
    Subscription,
    connect,
    ensure_topology,
    raise_if_cancelling,
    wait_for_topology,
)
from .codec import encode
from .config import Config
from .errors import ConfigError
from .events import Heartbeat
from .telemetry import bind_service, flush_traces, setup_logging, setup_tracing

log = logging.getLogger("tradebus.runtime")

Cleanup = Callable[[], Awaitable[None]]


@dataclass
class ServiceContext:
    """What a service's `build` gets: config and bus, plus hooks for tasks and cleanup."""

    name: str
    instance: str
    config: Config
    bus: Bus
    subscriptions: list[Subscription] = field(default_factory=list)
    tasks: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    cleanups: list[Cleanup] = field(default_factory=list)
    detail: dict[str, object] = field(default_factory=dict)


Build = Callable[[ServiceContext], Awaitable[None]]


@dataclass
class ServiceSpec:
    name: str
    build: Build


def instance_id() -> str:
    return os.environ.get("TRADEBUS_INSTANCE") or f"{socket.gethostname()}-{os.getpid()}"


class ServiceRunner:
    def __init__(self, spec: ServiceSpec, config: Config, instance: str | None = None) -> None:
        self.spec = spec
        self.config = config
        self.instance = instance or instance_id()
        self.started_at = datetime.now(UTC)
        self._t0 = time.monotonic()
        self._stop = asyncio.Event()
        self.ready = asyncio.Event()
        self.ctx: ServiceContext | None = None
        self.loops: list[ConsumeLoop] = []
        self._metrics_port = 0

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        cfg = self.config
        tel = cfg.telemetry
        bind_service(self.spec.name, self.instance)
        tracer = setup_tracing(
            self.spec.name, tel.traces_exporter, tel.otlp_endpoint, tel.traces_file
        )
        metrics.setup(self.spec.name)
        nc = await connect(cfg.bus, f"{self.spec.name}:{self.instance}")
        bus = Bus(nc, cfg.bus, self.spec.name)
        ctx = self.ctx = ServiceContext(self.spec.name, self.instance, cfg, bus)
        tasks: list[asyncio.Task[None]] = []
        try:
            if cfg.bus.manage_topology:
                await ensure_topology(bus.js, cfg.bus, cfg.runtime.heartbeat_ttl_s)
            else:
                await wait_for_topology(bus.js)
            await self.spec.build(ctx)
            self.loops = [ConsumeLoop(bus, s, tracer) for s in ctx.subscriptions]
            for loop in self.loops:
                await loop.ensure_consumer()
            tasks = [asyncio.create_task(loop.run()) for loop in self.loops]
            tasks += [asyncio.create_task(t()) for t in ctx.tasks]
            tasks.append(asyncio.create_task(self._heartbeat_forever()))
            tasks.append(asyncio.create_task(self._sample_lag()))
            self._serve_metrics()
            log.info(
                "service started", extra={"service": self.spec.name, "instance": self.instance}
            )
            self.ready.set()
            await self._wait_for_stop(tasks)
        finally:
            await self._shutdown(tasks, ctx)

    def _serve_metrics(self) -> None:
        tel = self.config.telemetry
        if tel.prometheus_port > 0:
            metrics.serve(tel.prometheus_port, tel.prometheus_host)
            self._metrics_port = tel.prometheus_port

    async def _sample_lag(self) -> None:
        assert self.ctx is not None
        consumers = [(lp.sub.stream, lp.sub.durable) for lp in self.loops]
        interval_s = self.config.telemetry.metrics_sample_interval_s
        await metrics.sample_consumers(self.ctx.bus.js, consumers, interval_s)

    async def _wait_for_stop(self, tasks: list[asyncio.Task[None]]) -> None:
        stopper = asyncio.create_task(self._stop.wait())
        done, _ = await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
        for t in done:
            if t is not stopper and t.exception() is not None:
                log.error("service task failed", exc_info=t.exception())
                raise t.exception()  # type: ignore[misc]
        stopper.cancel()

    async def _shutdown(self, tasks: list[asyncio.Task[None]], ctx: ServiceContext) -> None:
        """Drain, then cancel, then close in reverse order."""
        for loop in self.loops:
            loop.stop()
        drain = self.config.runtime.drain_timeout_s
        loop_tasks = tasks[: len(self.loops)]
        if loop_tasks:
            await asyncio.wait(loop_tasks, timeout=drain)
        for t in tasks:
            t.cancel()
        await self._await_cancelled(tasks, drain)
        for cleanup in reversed(ctx.cleanups):
            try:
                await cleanup()
            except Exception:
                log.exception("cleanup failed")
        try:
            await asyncio.wait_for(ctx.bus.nc.drain(), timeout=drain)
        except Exception as e:
            log.warning("nats drain incomplete", extra={"error": repr(e)})
        if self._metrics_port:  # shutting the HTTP server down waits for its poll: a thread
            await asyncio.to_thread(metrics.release, self._metrics_port)
            self._metrics_port = 0
        flush_traces()
        log.info("service stopped", extra={"service": self.spec.name})

    @staticmethod
    async def _await_cancelled(tasks: list[asyncio.Task[None]], timeout_s: float) -> None:
        """Wait for cancelled tasks, but never forever: a library that swallows a
        cancellation must not keep a stopping service alive. Name the culprit instead."""
        if not tasks:
            return
        _, stuck = await asyncio.wait(tasks, timeout=timeout_s)
        for t in stuck:
            log.error(
                "task ignored cancellation; abandoning it",
                extra={"task": t.get_coro().__qualname__},
            )  # type: ignore[union-attr]

    async def heartbeat(self) -> None:
        assert self.ctx is not None
        hb = Heartbeat(
            service=self.spec.name,
            instance=self.instance,
            version=__version__,
            started_at=self.started_at,
            uptime_s=round(time.monotonic() - self._t0, 3),
            detail={"processed": sum(lp.processed for lp in self.loops), **self.ctx.detail},
        )
        kv = await self.ctx.bus.kv(subjects.BUCKET_HEALTH)
        await kv.put(subjects.health_key(self.spec.name, self.instance), encode(hb))

    async def _heartbeat_forever(self) -> None:
        while True:
            try:
                await self.heartbeat()
            except Exception as e:
                raise_if_cancelling()
                log.warning("heartbeat failed", extra={"error": repr(e)})
            await asyncio.sleep(self.config.runtime.heartbeat_interval_s)


def run_service(spec: ServiceSpec, config: Config) -> int:
    """Blocking entry point for `tradebus run <service>`. Returns the exit code."""
    setup_logging(config.telemetry.log_level, config.telemetry.log_format)
    runner = ServiceRunner(spec, config)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, runner.stop)
        await runner.run()

    try:
        asyncio.run(main())
    except ConfigError as e:  # fatal and not worth a restart loop: say what to fix
        log.error("invalid configuration", extra={"service": spec.name, "error": str(e)})
        return 2
    except Exception:
        log.exception("service crashed", extra={"service": spec.name})
        return 1
    return 0
