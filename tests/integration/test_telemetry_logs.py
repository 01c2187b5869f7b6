"""A running service's JSON log lines name the service, its instance, the correlation id of the
message being handled and the trace of that handling."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
from collections.abc import Iterator

import pytest
from aiohttp import web
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from tradebus_common import events as ev
from tradebus_common.stack.servers import free_port
from tradebus_common.telemetry import JsonFormatter, inject_headers, span_processor

from ..support.bus import collect, publish_raw


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """What the services log in this process, formatted as `tradebus run` does."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield out
    root.removeHandler(handler)
    root.setLevel(level)


async def lines_with(out: io.StringIO, msg: str, timeout: float = 10.0) -> list[dict]:
    """Log lines are written just after the effect a test can wait on: poll for them."""
    deadline = time.monotonic() + timeout
    while True:
        found = [json.loads(x) for x in out.getvalue().splitlines() if f'"msg":"{msg}"' in x]
        if found or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.02)


def signal(sid: str) -> dict:
    return {"id": sid, "strategy": "demo", "venue": "paper", "symbol": "BTC/USDT",
            "side": "buy", "quantity": "0.1"}  # fmt: skip


async def test_a_handler_log_line_has_service_instance_correlation_and_trace(stack, nc, json_log):
    await stack.start("signal")
    intents = await collect(nc, "trading.intent.>")
    # No Nats-Msg-Id: the stream keeps both copies and the signal service logs the duplicate.
    await publish_raw(nc, "trading.signal.demo", signal("log-1"))
    await intents.wait_for(lambda e: isinstance(e, ev.OrderIntent))
    await publish_raw(nc, "trading.signal.demo", signal("log-1"))

    [dup] = await lines_with(json_log, "duplicate signal ignored")
    assert dup["service"] == "signal" and dup["instance"] == "test-signal"
    assert dup["correlation_id"] == "log-1"
    assert len(dup["trace_id"]) == 32 and len(dup["span_id"]) == 16
    # The first copy's trace is the one its intent carries on the wire; the duplicate's is
    # its own handling (a new root: the raw copy had no traceparent).
    first_trace = intents.headers[0]["traceparent"].split("-")[1]
    assert dup["trace_id"] != first_trace


async def test_a_dead_letter_is_logged_in_the_trace_that_handled_it(stack, nc, json_log):
    await stack.start("signal")
    dead = await collect(nc, "trading.deadletter.>")
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("a strategy") as span:
        headers = inject_headers({})
    await publish_raw(nc, "trading.signal.demo", b"{broken", headers=headers)
    await dead.wait_for(lambda e: isinstance(e, ev.MessageDeadLettered))

    [line] = await lines_with(json_log, "message dead-lettered")
    assert line["service"] == "signal"
    assert line["trace_id"] == f"{span.get_span_context().trace_id:032x}"
    assert line["level"] == "ERROR" and line["reason"] == "MALFORMED_JSON"


async def test_the_otlp_exporter_posts_spans_to_the_configured_endpoint():
    """traces_exporter = "otlp": spans reach a collector over OTLP/HTTP (here a loopback
    receiver that decodes the protobuf as a collector would)."""
    received: list[ExportTraceServiceRequest] = []

    async def collector(request: web.Request) -> web.Response:
        body = ExportTraceServiceRequest()
        body.ParseFromString(await request.read())
        received.append(body)
        return web.Response(content_type="application/x-protobuf", body=b"")

    app = web.Application()
    app.router.add_post("/v1/traces", collector)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        provider = TracerProvider(resource=Resource.create({"service.name": "risk-gate"}))
        provider.add_span_processor(
            span_processor("otlp", endpoint=f"http://127.0.0.1:{port}/v1/traces")
        )
        with provider.get_tracer("t").start_as_current_span("consume risk-gate"):
            pass
        # The exporter posts from its own thread; the receiver runs on this loop meanwhile.
        assert await asyncio.to_thread(provider.force_flush, 10_000)
        await asyncio.to_thread(provider.shutdown)
    finally:
        await runner.cleanup()
    [request] = received
    [resource_spans] = request.resource_spans
    names = [s.name for ss in resource_spans.scope_spans for s in ss.spans]
    assert names == ["consume risk-gate"]
    service = [a.value.string_value for a in resource_spans.resource.attributes
               if a.key == "service.name"]  # fmt: skip
    assert service == ["risk-gate"]
