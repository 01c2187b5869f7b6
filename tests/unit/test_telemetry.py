"""JSON log lines carry service, instance, correlation and trace ids; the trace exporters
are chosen by config and refuse a config they cannot serve."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

from tradebus_common.errors import ConfigError
from tradebus_common.telemetry import (
    JsonFormatter,
    JsonLinesSpanExporter,
    bind_service,
    correlation_id,
    span_processor,
)


def line(msg: str = "hello", **extra) -> dict:
    record = logging.makeLogRecord({"name": "t", "levelname": "INFO", "msg": msg, **extra})
    return json.loads(JsonFormatter().format(record))


def test_a_line_outside_any_span_or_service_has_no_empty_fields():
    out = line()
    assert out["msg"] == "hello" and out["level"] == "INFO"
    assert not {"service", "instance", "correlation_id", "trace_id", "span_id"} & out.keys()


def test_a_line_inside_a_handler_span_names_service_instance_correlation_and_trace():
    provider = TracerProvider()
    tracer = provider.get_tracer("t")

    async def handler() -> tuple[dict, object]:
        bind_service("risk-gate", "host-1")
        correlation_id.set("sig-42")
        with tracer.start_as_current_span("consume risk-gate") as span:
            return line("denied"), span.get_span_context()

    # A task of its own, as the runner gives each service: the binding stays in it.
    out, ctx = asyncio.run(handler())
    assert out["service"] == "risk-gate" and out["instance"] == "host-1"
    assert out["correlation_id"] == "sig-42"
    assert out["trace_id"] == f"{ctx.trace_id:032x}"
    assert out["span_id"] == f"{ctx.span_id:016x}"
    assert "service" not in line()  # nothing leaked out of that task


def test_secret_fields_are_still_redacted():
    out = line(extra_field="x", api_key="k-123", password="hunter2")
    assert out["api_key"] == "***" and out["password"] == "***"


def test_exporters_by_config():
    assert span_processor("none") is None
    assert isinstance(span_processor("console"), SimpleSpanProcessor)
    otlp = span_processor("otlp", endpoint="http://127.0.0.1:4318/v1/traces")
    assert isinstance(otlp, BatchSpanProcessor)
    otlp.shutdown()  # nothing was recorded: nothing is sent
    with pytest.raises(ConfigError, match="traces_file"):
        span_processor("file")
    with pytest.raises(ConfigError, match="one of none, console, otlp, file"):
        span_processor("jaeger")


def test_the_file_exporter_writes_one_json_line_per_span_with_its_parent(tmp_path):
    path = tmp_path / "spans.jsonl"
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(JsonLinesSpanExporter(str(path))))
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("parent") as parent:
        with tracer.start_as_current_span("child", attributes={"tradebus.service": "signal"}):
            pass
    child, outer = [json.loads(x) for x in path.read_text().splitlines()]
    assert child["name"] == "child" and outer["name"] == "parent"
    assert (
        child["parent_span_id"] == outer["span_id"] == f"{parent.get_span_context().span_id:016x}"
    )
    assert child["trace_id"] == outer["trace_id"]
    assert outer["parent_span_id"] == ""
    assert child["attributes"] == {"tradebus.service": "signal"}
