"""Structured logging with correlation ids, and OpenTelemetry tracing (no-op export by default)."""

from __future__ import annotations

import contextvars
import logging
import sys
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import msgspec
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

correlation_id: contextvars.ContextVar[str] = contextvars.ContextVar("correlation_id", default="")
_json = msgspec.json.Encoder()
_SECRET_MARKERS = (
    "password",
    "passwd",
    "secret",
    "token",
    "creds",
    "dsn",
    "api_key",
    "apikey",
    "private_key",
)


def _redact(key: str, value: Any) -> Any:
    if any(m in key.lower() for m in _SECRET_MARKERS) and isinstance(value, str) and value:
        return "***"
    return value


def redact_url(url: str) -> str:
    """Hide the password in a URL or DSN (`postgresql://u:secret@h/db` -> `u:***@h`)."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, correlation_id and the `extra` fields."""

    _std = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        cid = correlation_id.get()
        if cid:
            out["correlation_id"] = cid
        for key, value in record.__dict__.items():
            if key not in self._std and not key.startswith("_"):
                out[key] = _redact(key, value)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return _json.encode(out).decode(errors="replace")


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")


def setup_logging(level: str = "INFO", fmt: str = "json") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.formatter.converter = __import__("time").gmtime  # type: ignore[union-attr]
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("nats").setLevel(logging.WARNING)


def setup_tracing(service: str, exporter: str = "none") -> trace.Tracer:
    """Install a TracerProvider once per process. Spans are made (and propagated) even when
    nothing exports them, so trace ids still flow through the headers."""
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        provider = TracerProvider(resource=Resource.create({"service.name": service}))
        if exporter == "console":
            provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
        trace.set_tracer_provider(provider)
    return trace.get_tracer(f"tradebus.{service}")


def inject_headers(headers: dict[str, str]) -> dict[str, str]:
    propagate.inject(headers)
    return headers


def extract_context(headers: dict[str, str] | None) -> Any:
    return propagate.extract(headers or {})
