"""The raw-JetStream baseline of `tradebus bench` measures real numbers on a real server."""

from __future__ import annotations

from tradebus_common.bench.baseline import measure_baseline


async def test_baseline_measures_every_raw_operation(nats_server):
    figs = await measure_baseline(nats_server.url, 50)
    assert set(figs) == {
        "publish_p50",
        "publish_p99",
        "async_publish",
        "consume_ack",
        "rpc_p50",
        "rpc_p99",
    }
    assert 0 < figs["publish_p50"].value <= figs["publish_p99"].value
    assert figs["async_publish"].value > 0 and figs["consume_ack"].value > 0
