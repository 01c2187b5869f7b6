"""StreamMirror against a real nats-server: complete before served, current after writes from
anywhere, deletes honoured, rebuilt after a server restart."""

from __future__ import annotations

import asyncio

import nats
import pytest
from nats.js import api

from tradebus_common.errors import TransientError
from tradebus_common.mirror import StreamMirror


async def _bucket(nc: nats.NATS, name: str = "mirrored"):
    return await nc.jetstream().create_key_value(bucket=name, history=1)


def _reconnects(nc: nats.NATS):
    return lambda: int(nc.stats["reconnects"])


async def _eventually(mirror: StreamMirror, key: str, want: bytes | None) -> None:
    """Wait on the mirror itself (its watch delivers asynchronously), bounded."""

    async def seen() -> None:
        while True:
            found = await mirror.get_key(key)
            if (found.data if found else None) == want:
                return
            await asyncio.sleep(
                0.005
            )  # ok-sleep: polling an in-memory copy (deletes notify nothing)

    await asyncio.wait_for(seen(), 5)


async def test_initial_copy_is_complete_before_the_first_read(nc):
    kv = await _bucket(nc)
    for i in range(200):
        await kv.put(f"k{i}", f"v{i}".encode())
    await kv.delete("k7")
    mirror = StreamMirror.of_bucket(nc.jetstream(), "mirrored", _reconnects(nc))
    await mirror.start()
    assert (await mirror.get_key("k199")).data == b"v199"
    assert await mirror.get_key("k7") is None  # deleted stays deleted
    assert len(mirror.values()) == 199
    await mirror.stop()


async def test_a_write_by_another_client_reaches_the_mirror(nc, nats_server):
    kv = await _bucket(nc)
    mirror = StreamMirror.of_bucket(nc.jetstream(), "mirrored", _reconnects(nc))
    await mirror.start()
    assert await mirror.get_key("state") is None
    other = await nats.connect(nats_server.url)
    try:
        await (await other.jetstream().key_value("mirrored")).put("state", b"garbage{")
        await _eventually(mirror, "state", b"garbage{")
        await (await other.jetstream().key_value("mirrored")).delete("state")
        await _eventually(mirror, "state", None)
    finally:
        await other.close()
    await mirror.stop()
    assert kv is not None


async def test_an_own_write_is_visible_at_once_and_never_overwritten_by_an_older_one(nc):
    kv = await _bucket(nc)
    mirror = StreamMirror.of_bucket(nc.jetstream(), "mirrored", _reconnects(nc))
    await mirror.start()
    first = await kv.put("halt", b"ACTIVE")
    second = await kv.put("halt", b"HALTED")
    mirror.note_key("halt", b"HALTED", second)
    assert (await mirror.get_key("halt")).data == b"HALTED"  # no wait: noted
    mirror.note_key("halt", b"ACTIVE", first)  # a late, older update
    assert (await mirror.get_key("halt")).data == b"HALTED"
    await mirror.stop()


async def test_newest_message_per_subject_of_a_plain_stream(nc):
    js = nc.jetstream()
    await js.add_stream(api.StreamConfig(name="TICKS", subjects=["md.>"]))
    for price in (b"1", b"2", b"3"):
        await js.publish("md.paper.BTC-USDT", price)
    await js.publish("md.paper.ETH-USDT", b"9")
    mirror = StreamMirror(js, "TICKS", "md.>", _reconnects(nc))
    await mirror.start()
    assert (await mirror.get("md.paper.BTC-USDT")).data == b"3"
    assert (await mirror.get("md.paper.ETH-USDT")).data == b"9"
    assert await mirror.get("md.paper.SOL-USDT") is None
    await mirror.stop()


async def test_rebuilt_after_a_server_restart(nats_server):
    reconnected = asyncio.Event()

    async def on_reconnect() -> None:
        reconnected.set()

    client = await nats.connect(
        nats_server.url,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.1,
        reconnected_cb=on_reconnect,
    )
    try:
        kv = await _bucket(client)
        await kv.put("state", b"before")
        mirror = StreamMirror.of_bucket(client.jetstream(), "mirrored", _reconnects(client))
        await mirror.start()
        assert (await mirror.get_key("state")).data == b"before"
        nats_server.stop()
        nats_server.start()  # same store: the bucket survives, the mirror's consumer does not
        await asyncio.wait_for(reconnected.wait(), 15)
        await kv.put("state", b"after")
        await _eventually(mirror, "state", b"after")
        await mirror.stop()
    finally:
        await client.close()


async def test_a_mirror_that_cannot_start_is_a_transient_error(nc):
    mirror = StreamMirror.of_bucket(nc.jetstream(), "no-such-bucket", _reconnects(nc))
    with pytest.raises(TransientError):
        await mirror.start()


async def test_bucket_entries_is_every_live_key_with_its_newest_value_and_time(nc):
    from tradebus_common.mirror import bucket_entries

    kv = await _bucket(nc, "entries")
    for i in range(500):
        await kv.put(f"order.{i}", f"v{i}".encode())
    await kv.put("order.7", b"newer")
    await kv.delete("order.8")
    found = await bucket_entries(kv)
    assert len(found) == 499 and found["order.7"].data == b"newer"
    assert "order.8" not in found and found["order.499"].ts is not None
    assert await bucket_entries(await _bucket(nc, "empty")) == {}
