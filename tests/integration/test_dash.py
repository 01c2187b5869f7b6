"""`tradebus dash`, headless: frames rendered against a running stack, read as text."""

from __future__ import annotations

import asyncio
import sys
import time
from argparse import Namespace
from datetime import timedelta

import nats

from tradebus_common import events as ev
from tradebus_common.cli.dash import RecentFeed, cmd_dash, frame_text, read_frame

from ..support.bus import collect, publish_event, publish_raw, set_price

ALL = ("alerting", "signal", "risk-gate", "execution-gateway", "position-ledger")


def signal(sid: str, qty: str, **extra) -> dict:
    return {"id": sid, "strategy": "demo", "venue": "paper", "symbol": "BTC/USDT",
            "side": "buy", "quantity": qty, **extra}  # fmt: skip


async def frame_until(
    nc, feed: RecentFeed, *rows: tuple[str, ...], absent: tuple[str, ...] = (), timeout=10.0
) -> str:
    """Render frames until one has, for each of `rows`, a line with all its texts, and none
    of `absent` (each service catches up on its own time: alerting books an alert, the gate
    closes a canceled order, a moment after the event that a test can wait on)."""
    deadline = time.monotonic() + timeout
    while True:
        text = frame_text(await read_frame(nc, feed, stale_after_s=15.0), width=160)
        lines = text.splitlines()
        shown = all(any(all(t in x for t in row) for x in lines) for row in rows)
        if (shown and not any(a in text for a in absent)) or time.monotonic() > deadline:
            return text
        await asyncio.sleep(0.1)


async def test_frames_show_positions_orders_fills_then_the_halt_denial_and_alert(stack, nc):
    await stack.start(*ALL)
    await set_price(nc, "paper", "BTC/USDT", "20000")
    positions = await collect(nc, "trading.position.>")
    orders = await collect(nc, "trading.order.>")
    states = await collect(nc, "trading.risk.state")

    await publish_raw(nc, "trading.signal.demo", signal("dash-fill", "0.25"))
    await positions.wait_for(lambda e: isinstance(e, ev.PositionChanged))
    rest = signal("dash-rest", "0.1", order_type="limit", limit_price="19000")
    await publish_raw(nc, "trading.signal.demo", rest)
    [accepted] = await orders.wait_for(
        lambda e: isinstance(e, ev.OrderAccepted) and e.correlation_id == "dash-rest"
    )

    feed = RecentFeed(nc, keep=10, lookback=timedelta(hours=1))
    try:
        before = await frame_until(
            nc,
            feed,
            (accepted.client_order_id, "19000"),  # the working order
            ("BTC/USDT", "demo", "0.25", "20000"),  # the position, or the fill
            ("paper", "BTC/USDT", "buy", "0.25", "20000", "demo"),  # the fill
        )
        assert "ACTIVE" in before and "HALTED" not in before
        for name in ALL:
            assert f"{name} " in before
        row = next(x for x in before.splitlines() if "BTC/USDT" in x and "demo" in x)
        assert "0.25" in row and "20000" in row  # quantity and mark of the position
        assert accepted.client_order_id in before  # the resting limit order is working
        assert "19000" in before
        fills = [x for x in before.splitlines() if "buy" in x and "20000" in x]
        assert fills, "the fill is listed"

        await publish_event(
            nc,
            ev.ControlCommand(action=ev.ControlAction.HALT, reason="dash drill", operator="ops"),
        )
        await states.wait_for(lambda e: e.state is ev.TradingState.HALTED)
        denied = await collect(nc, "trading.order.denied.>")
        await publish_raw(nc, "trading.signal.demo", signal("dash-denied", "0.1"))
        await denied.wait_for(lambda e: e.reason is ev.DenyReason.HALTED)

        after = await frame_until(
            nc,
            feed,
            ("HALTED", "dash drill (by ops)"),
            ("BTC/USDT", "demo", "HALTED"),  # the denial
            ("CRITICAL", "TRADING_HALTED"),  # the unacked alert
            absent=(accepted.client_order_id,),  # the halt canceled the working order
        )
        assert "HALTED" in after and "dash drill" in after and "by ops" in after
        denial = next(x for x in after.splitlines() if "HALTED" in x and "demo" in x)
        assert "BTC/USDT" in denial
        assert "TRADING_HALTED" in after  # the unacked alert
        assert accepted.client_order_id not in after  # the halt canceled the working order
    finally:
        await feed.close()


async def test_once_prints_one_frame_and_exits(stack, nc, nats_server, capsys):
    await stack.start("risk-gate", "alerting")
    states = await collect(nc, "trading.risk.state")
    await publish_event(nc, ev.ControlCommand(action=ev.ControlAction.HALT, reason="once"))
    await states.wait_for(lambda e: e.state is ev.TradingState.HALTED)
    args = Namespace(
        nats=nats_server.url, config=None, creds=None, once=True, interval=1.0, recent=5,
        lookback_h=1.0, width=120, stale_after=15.0,
    )  # fmt: skip
    assert await cmd_dash(args) == 0
    out = capsys.readouterr().out
    assert "HALTED" in out and "once" in out
    assert "ledger not answering" in out  # no ledger running: said, not hidden
    assert "position-ledger" in out and "DOWN" in out


def fill(trade_id: str) -> ev.Fill:
    return ev.Fill(venue="paper", symbol="ETH/USDT", strategy="demo", client_order_id="c",
                   trade_id=trade_id, side=ev.Side.SELL, quantity=1, price=3000)  # fmt: skip


async def test_the_recent_feed_waits_for_its_backlog_then_follows_live(nc, config):
    from tradebus_common.bus import ensure_topology

    await ensure_topology(nc.jetstream(), config.bus, 30)
    for i in range(3):
        await publish_event(nc, fill(f"t{i}"))
    feed = RecentFeed(nc, keep=2, lookback=timedelta(minutes=5))
    try:
        await feed.refresh()  # returns once the three that were there have arrived
        assert [f.trade_id for f in feed.fills] == ["t1", "t2"]  # the newest, capped
        await publish_event(nc, fill("t3"))
        deadline = time.monotonic() + 5
        while [f.trade_id for f in feed.fills] != ["t2", "t3"]:  # pushed, no refresh needed
            assert time.monotonic() < deadline, list(feed.fills)
            await asyncio.sleep(0.02)
    finally:
        await feed.close()


async def test_the_command_line_prints_the_halt(stack, nc, nats_server):
    """What the README's newcomer runs: `tradebus dash --once` as its own process."""
    await stack.start("risk-gate")
    states = await collect(nc, "trading.risk.state")
    await publish_event(
        nc, ev.ControlCommand(action=ev.ControlAction.HALT, reason="from the cli", operator="bob")
    )
    await states.wait_for(lambda e: e.state is ev.TradingState.HALTED)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tradebus_common.cli.main", "dash", "--once",
        "--nats", nats_server.url, "--width", "120",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    text = out.decode()
    assert "HALTED" in text and "from the cli (by bob)" in text


async def test_the_read_only_observer_identity_can_run_the_dash(tmp_path, capsys):
    """With auth on, `tradebus dash --creds observer.creds`: every read it makes is granted
    (KV, consumer info, its unnamed push consumer, the queries) and it publishes nothing."""
    from tradebus_common.auth.generate import init_auth
    from tradebus_common.auth.topology import bootstrap_topology
    from tradebus_common.config import Config
    from tradebus_common.stack.servers import NatsServer, free_port

    auth = init_auth(tmp_path / "auth", ["demo"])
    server = NatsServer(tmp_path / "nats", free_port(), config_file=auth.server_conf).start()
    try:
        admin = await nats.connect(server.url, user_credentials=str(auth.creds("admin")))
        try:
            await bootstrap_topology(admin.jetstream(), Config())
            await publish_event(admin, fill("observed-1"))
        finally:
            await admin.close()
        args = Namespace(
            nats=server.url, config=None, creds=str(auth.creds("observer")), once=True,
            interval=1.0, recent=5, lookback_h=1.0, width=140, stale_after=15.0,
        )  # fmt: skip
        assert await cmd_dash(args) == 0
    finally:
        server.stop()
    captured = capsys.readouterr()
    assert "refused" not in captured.err.lower(), captured.err
    fills = [x for x in captured.out.splitlines() if "ETH/USDT" in x and "sell" in x]
    assert fills and "3000" in fills[0]
    assert "UNKNOWN" in captured.out  # no risk-gate has written a state yet


async def test_a_server_with_no_stack_yet_still_gets_a_frame(nats_server, capsys):
    """No streams, no buckets: the frame says what it cannot read instead of crashing."""
    args = Namespace(
        nats=nats_server.url, config=None, creds=None, once=True, interval=1.0, recent=5,
        lookback_h=1.0, width=140, stale_after=15.0,
    )  # fmt: skip
    assert await cmd_dash(args) == 0
    out = capsys.readouterr().out
    assert "UNKNOWN" in out
    assert "cannot read health: BucketNotFoundError" in out
    assert "cannot read recent fills and denials" in out
