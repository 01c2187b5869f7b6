"""Structured logging with correlation and trace ids, and OpenTelemetry tracing (no-op export
by default; console, OTLP/HTTP or a JSON-lines file by config)."""

from __future__ import annotations

import contextvars
import logging
import sys
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import msgspec
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)

from .errors import ConfigError

correlation_id: contextvars.ContextVar[str] = contextvars.ContextVar("correlation_id", default="")
# Which service (and instance) this task works for. Set by the runner before it starts its
# tasks, so each service of an in-process stack logs under its own name.
service_name: contextvars.ContextVar[str] = contextvars.ContextVar("service_name", default="")
service_instance: contextvars.ContextVar[str] = contextvars.ContextVar(
    "service_instance", default=""
)
TRACES_EXPORTERS = ("none", "console", "otlp", "file")
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
        out.update(context_fields())
        for key, value in record.__dict__.items():
            if key not in self._std and not key.startswith("_"):
                out[key] = _redact(key, value)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return _json.encode(out).decode(errors="replace")


def context_fields() -> dict[str, str]:
    """service, instance, correlation id and the current span's trace/span ids (when set)."""
    out = {
        "service": service_name.get(),
        "instance": service_instance.get(),
        "correlation_id": correlation_id.get(),
    }
    span = trace.get_current_span().get_span_context()
    if span.is_valid:
        out["trace_id"] = trace.format_trace_id(span.trace_id)
        out["span_id"] = trace.format_span_id(span.span_id)
    return {k: v for k, v in out.items() if v}


def bind_service(service: str, instance: str) -> None:
    """Name the service for every log line of this task and the tasks it starts."""
    service_name.set(service)
    service_instance.set(instance)


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


def setup_tracing(
    service: str, exporter: str = "none", endpoint: str = "", path: str = ""
) -> trace.Tracer:
    """Install a TracerProvider once per process. Spans are made (and propagated) even when
    nothing exports them, so trace ids still flow through the headers and the logs."""
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        provider = TracerProvider(resource=Resource.create({"service.name": service}))
        processor = span_processor(exporter, endpoint, path)
        if processor is not None:
            provider.add_span_processor(processor)
        trace.set_tracer_provider(provider)
    return trace.get_tracer(f"tradebus.{service}")


def span_processor(exporter: str, endpoint: str = "", path: str = "") -> SpanProcessor | None:
    if exporter == "none":
        return None
    if exporter == "console":
        return SimpleSpanProcessor(ConsoleSpanExporter())
    if exporter == "file":
        if not path:
            raise ConfigError('telemetry.traces_exporter = "file" needs telemetry.traces_file')
        return SimpleSpanProcessor(JsonLinesSpanExporter(path))
    if exporter == "otlp":
        # Imported here: only a process that exports over OTLP pays for protobuf and requests.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint or None))
    raise ConfigError(
        f"telemetry.traces_exporter must be one of {', '.join(TRACES_EXPORTERS)}, not {exporter!r}"
    )


def flush_traces(timeout_s: float = 5.0) -> None:
    """Export what is buffered (a stopping service must not lose its last spans)."""
    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        provider.force_flush(int(timeout_s * 1000))


class JsonLinesSpanExporter(SpanExporter):
    """One JSON object per finished span, appended to a file: enough to follow a trace
    across processes without a collector (debugging, and the cross-process test)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def export(self, spans: Any) -> SpanExportResult:
        lines = [_json.encode(span_record(s)) + b"\n" for s in spans]
        with open(self.path, "ab") as f:
            f.write(b"".join(lines))
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def span_record(span: ReadableSpan) -> dict[str, Any]:
    ctx = span.get_span_context()
    return {
        "name": span.name,
        "service": span.resource.attributes.get("service.name", ""),
        "trace_id": trace.format_trace_id(ctx.trace_id),
        "span_id": trace.format_span_id(ctx.span_id),
        "parent_span_id": trace.format_span_id(span.parent.span_id) if span.parent else "",
        "start_ns": span.start_time,
        "end_ns": span.end_time,
        "attributes": dict(span.attributes or {}),
    }


def inject_headers(headers: dict[str, str], context: Any = None) -> dict[str, str]:
    """Add the W3C traceparent (and tracestate) of `context`, else of the current span."""
    propagate.inject(headers, context=context)
    return headers


def extract_context(headers: dict[str, str] | None) -> Any:
    return propagate.extract(headers or {})
