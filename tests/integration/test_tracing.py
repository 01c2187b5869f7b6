"""One trace from signal to ledger: a span per service handler, each the child of the span that
published its input, carried in W3C `traceparent` NATS headers. In-process services still each
have their own NATS connection, so the context crosses the server exactly as between processes
(tests/e2e/test_tracing_processes.py proves it with real processes)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tradebus_common import events as ev
from tradebus_common.telemetry import inject_headers, setup_tracing

from ..support.bus import collect, publish_raw, set_price

ALL = ("signal", "risk-gate", "execution-gateway", "position-ledger")
HOPS = ["signal", "risk-gate", "execution-gateway", "position-ledger"]


@pytest.fixture
def spans() -> Any:
    """Every span this process finishes during the test (the provider is per process)."""
    setup_tracing("tests")
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    exporter = SignalingExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter
    exporter.shutdown()  # later tests' spans are dropped, not kept in memory


class SignalingExporter(InMemorySpanExporter):
    """Keeps the finished spans and announces each one: tests wait on that, not on time."""

    def __init__(self) -> None:
        super().__init__()
        self.ended = asyncio.Event()

    def export(self, spans: Any) -> Any:
        result = super().export(spans)
        self.ended.set()  # spans end on the event loop's thread (SimpleSpanProcessor)
        return result


async def wait_until(
    spans: SignalingExporter, pred: Callable[[], Any], timeout: float = 10.0
) -> Any:
    """Wait for a condition on the finished spans, re-checked as each span ends."""

    async def met() -> Any:
        while True:
            spans.ended.clear()
            if found := pred():
                return found
            await spans.ended.wait()

    try:
        return await asyncio.wait_for(met(), timeout)
    except TimeoutError as e:
        raise AssertionError(f"condition not met within {timeout}s") from e


def chain(finished: list[Any], leaf: Any) -> list[Any]:
    """The leaf span and its ancestors, root first."""
    by_id = {s.context.span_id: s for s in finished}
    out = [leaf]
    while out[-1].parent is not None and out[-1].parent.span_id in by_id:
        out.append(by_id[out[-1].parent.span_id])
    return out[::-1]


def ledger_fill_span(exporter: InMemorySpanExporter, trace_id: int | None = None) -> Any:
    for s in exporter.get_finished_spans():
        attrs = s.attributes or {}
        if (
            attrs.get("tradebus.service") == "position-ledger"
            and attrs.get("tradebus.event_type") == "Fill"
            and (trace_id is None or s.context.trace_id == trace_id)
        ):
            return s
    return None


async def test_one_trace_covers_signal_to_ledger_with_a_span_per_hop(stack, nc, spans):
    await stack.start(*ALL)
    await set_price(nc, "paper", "BTC/USDT", "20000")
    positions = await collect(nc, "trading.position.>")
    await publish_raw(
        nc,
        "trading.signal.demo",
        {"id": "trace-1", "strategy": "demo", "venue": "paper", "symbol": "BTC/USDT",
         "side": "buy", "quantity": "0.1"},
    )  # fmt: skip
    await positions.wait_for(lambda e: isinstance(e, ev.PositionChanged))
    leaf = await wait_until(spans, lambda: ledger_fill_span(spans))

    hops = chain(list(spans.get_finished_spans()), leaf)
    assert [s.attributes["tradebus.service"] for s in hops] == HOPS
    assert [s.attributes["tradebus.event_type"] for s in hops] == [
        "Signal",
        "OrderIntent",
        "OrderApproved",
        "Fill",
    ]
    assert len({s.context.trace_id for s in hops}) == 1
    assert hops[0].parent is None  # the strategy sent no context: the signal service starts it
    for parent, child in zip(hops, hops[1:], strict=False):
        assert child.parent.span_id == parent.context.span_id
        assert child.parent.is_remote  # it came through a NATS header, not the task's context
        assert child.kind is trace.SpanKind.CONSUMER
    assert hops[0].attributes["tradebus.event_id"] == "trace-1"
    assert {s.attributes["tradebus.correlation_id"] for s in hops[1:]} == {"trace-1"}


async def test_a_strategy_that_traces_is_the_root_of_the_trace(stack, nc, spans):
    """A strategy that sends its own traceparent sees the whole pipeline under its span."""
    await stack.start(*ALL)
    await set_price(nc, "paper", "BTC/USDT", "20000")
    positions = await collect(nc, "trading.position.>")
    tracer = trace.get_tracer("a-strategy")
    with tracer.start_as_current_span("decide") as root:
        headers = inject_headers({"Nats-Msg-Id": "trace-2"})
    assert headers["traceparent"].startswith("00-")
    await publish_raw(
        nc,
        "trading.signal.demo",
        {"id": "trace-2", "strategy": "demo", "venue": "paper", "symbol": "BTC/USDT",
         "side": "buy", "quantity": "0.1"},
        headers=headers,
    )  # fmt: skip
    await positions.wait_for(lambda e: isinstance(e, ev.PositionChanged))
    trace_id = root.get_span_context().trace_id
    leaf = await wait_until(spans, lambda: ledger_fill_span(spans, trace_id))

    hops = chain(list(spans.get_finished_spans()), leaf)
    assert hops[0].name == "decide"
    assert [s.attributes.get("tradebus.service") for s in hops[1:]] == HOPS


async def test_published_events_carry_the_handler_span_in_their_headers(stack, nc, spans):
    """What another tool (or a strategy in another language) reads off the wire."""
    await stack.start("signal")
    intents = await collect(nc, "trading.intent.>")
    await publish_raw(
        nc,
        "trading.signal.demo",
        {"id": "trace-3", "strategy": "demo", "venue": "paper", "symbol": "BTC/USDT",
         "side": "buy", "quantity": "0.1"},
    )  # fmt: skip
    await intents.wait_for(lambda e: isinstance(e, ev.OrderIntent))
    traceparent = intents.headers[0]["traceparent"]
    _, trace_hex, span_hex, _ = traceparent.split("-")
    handler = await wait_until(
        spans,
        lambda: [
            s
            for s in spans.get_finished_spans()
            if trace.format_span_id(s.context.span_id) == span_hex
        ],
    )
    assert handler[0].attributes["tradebus.service"] == "signal"
    assert trace.format_trace_id(handler[0].context.trace_id) == trace_hex


async def test_a_batch_keeps_each_message_in_its_own_trace(stack, nc, spans):
    """The ledger books a backlog of fills as one batch: each fill's span and each position
    it publishes still continue that fill's own trace."""
    await stack.start("signal", "risk-gate", "execution-gateway")
    await set_price(nc, "paper", "BTC/USDT", "20000")
    fills = await collect(nc, "trading.fill.>")
    positions = await collect(nc, "trading.position.>")
    for i in range(3):  # one at a time: only the ledger sees a batch
        await publish_raw(
            nc,
            "trading.signal.demo",
            {"id": f"batch-{i}", "strategy": "demo", "venue": "paper", "symbol": "BTC/USDT",
             "side": "buy", "quantity": "0.1"},
        )  # fmt: skip
        await fills.wait_for(lambda e: isinstance(e, ev.Fill), count=i + 1)
    await stack.start("position-ledger")  # the three fills are waiting: one fetch, one batch
    await positions.wait_for(lambda e: isinstance(e, ev.PositionChanged), count=3)

    fill_trace = {
        e.correlation_id: trace_hex(h["traceparent"])
        for e, h in zip(fills.events, fills.headers, strict=True)
        if isinstance(e, ev.Fill)
    }
    assert len(set(fill_trace.values())) == 3  # one trace per signal
    for e, h in zip(positions.events, positions.headers, strict=True):
        assert trace_hex(h["traceparent"]) == fill_trace[e.correlation_id]

    def chains() -> list[list[Any]] | None:
        finished = list(spans.get_finished_spans())
        leaves = [
            s
            for s in finished
            if s.attributes.get("tradebus.service") == "position-ledger"
            and s.attributes.get("tradebus.event_type") == "Fill"
        ]
        found = [chain(finished, leaf) for leaf in leaves]
        return found if len(found) == 3 and all(len(c) == 4 for c in found) else None

    found = await wait_until(spans, chains)
    assert max(c[-1].attributes.get("tradebus.batch_size", 1) for c in found) > 1
    for hops in found:
        assert [s.attributes["tradebus.service"] for s in hops] == HOPS
        corr = hops[-1].attributes["tradebus.correlation_id"]
        assert trace.format_trace_id(hops[-1].context.trace_id) == fill_trace[corr]


def trace_hex(traceparent: str) -> str:
    return traceparent.split("-")[1]


async def test_a_signal_backlog_keeps_each_signal_in_its_own_trace(stack, nc, spans):
    """The signal service handles a backlog as one priority-ordered batch and publishes by
    itself: each intent must still continue its own signal's trace."""
    await stack.start("risk-gate")  # creates the streams; the signal service comes later
    intents = await collect(nc, "trading.intent.>")
    for i in range(3):  # waiting before the service starts: one fetch, one batch
        await publish_raw(
            nc,
            "trading.signal.demo",
            {"id": f"backlog-{i}", "strategy": "demo", "venue": "paper", "symbol": "BTC/USDT",
             "side": "buy", "quantity": "0.1", "priority": i},
        )  # fmt: skip
    await set_price(nc, "paper", "BTC/USDT", "20000")
    await stack.start("signal")
    await intents.wait_for(lambda e: isinstance(e, ev.OrderIntent), count=3)
    intent_trace = {
        e.correlation_id: trace_hex(h["traceparent"])
        for e, h in zip(intents.events, intents.headers, strict=True)
    }
    assert len(set(intent_trace.values())) == 3

    def signal_spans() -> dict[str, str] | None:
        found = {
            s.attributes["tradebus.event_id"]: trace.format_trace_id(s.context.trace_id)
            for s in spans.get_finished_spans()
            if s.attributes.get("tradebus.service") == "signal"
            and s.attributes.get("tradebus.event_type") == "Signal"
        }
        return found if len(found) >= 3 else None

    by_signal = await wait_until(spans, signal_spans)
    for sid, trace_id in intent_trace.items():
        assert by_signal[sid] == trace_id
