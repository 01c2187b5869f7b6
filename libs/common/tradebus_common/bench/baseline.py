"""Raw JetStream on this machine, with nats-py and nothing of ours in the way."""

from __future__ import annotations

import asyncio
import time

import nats
from nats.js import api

from .figures import Figure, percentile

STREAM = "BENCH_BASELINE"


async def measure_baseline(url: str, n: int) -> dict[str, Figure]:
    nc = await nats.connect(url)
    js = nc.jetstream()
    try:
        await js.add_stream(name=STREAM, subjects=["bench.>"], storage=api.StorageType.FILE)
        figures = {
            **await _sync_publish(js, n),
            "async_publish": await _async_publish(js, n * 4),
            "consume_ack": await _consume_ack(js, n * 4),
            **await _request_reply(nc, n),
        }
        await js.delete_stream(STREAM)
        return figures
    finally:
        await nc.close()


async def _sync_publish(js, n: int) -> dict[str, Figure]:
    lat = []
    for i in range(n):
        t0 = time.perf_counter()
        await js.publish("bench.sync", b'{"i":%d}' % i)
        lat.append((time.perf_counter() - t0) * 1000)
    return {
        "publish_p50": Figure("raw publish+ack p50", percentile(lat, 50), "ms"),
        "publish_p99": Figure("raw publish+ack p99", percentile(lat, 99), "ms"),
    }


async def _async_publish(js, n: int) -> Figure:
    t0 = time.perf_counter()
    for i in range(n):
        await js.publish_async("bench.async", b'{"i":%d}' % i)
    await js.publish_async_completed()
    return Figure(
        "raw async publish", n / (time.perf_counter() - t0), "msg/s", higher_is_better=True
    )


async def _consume_ack(js, n: int) -> Figure:
    sub = await js.pull_subscribe("bench.async", durable="bench-consumer", stream=STREAM)
    done = 0
    t0 = time.perf_counter()
    while done < n:
        for msg in await sub.fetch(256, timeout=5):
            await msg.ack()
            done += 1
    rate = n / (time.perf_counter() - t0)
    await sub.unsubscribe()
    return Figure("raw pull consume+ack", rate, "msg/s", higher_is_better=True)


async def _request_reply(nc, n: int) -> dict[str, Figure]:
    async def echo(msg) -> None:
        await msg.respond(msg.data)

    sub = await nc.subscribe("bench.rpc", cb=echo)
    lat = []
    for _ in range(n):
        t0 = time.perf_counter()
        await nc.request("bench.rpc", b"ping", timeout=5)
        lat.append((time.perf_counter() - t0) * 1000)
    await sub.unsubscribe()
    await asyncio.sleep(0)
    return {
        "rpc_p50": Figure("raw request/reply p50", percentile(lat, 50), "ms"),
        "rpc_p99": Figure("raw request/reply p99", percentile(lat, 99), "ms"),
    }
