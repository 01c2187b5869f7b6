"""`tradebus tail`: any subject pattern, readable lines or (--json) one JSON object a line."""

from __future__ import annotations

import json
from argparse import Namespace
from decimal import Decimal

import pytest

from tradebus_common import events as ev
from tradebus_common import subjects
from tradebus_common.bus import ensure_topology
from tradebus_common.cli.client import ClientError, cmd_tail

from ..support.bus import publish_event, publish_raw


def tail_args(url: str, what: str, count: int, as_json: bool = False) -> Namespace:
    return Namespace(
        nats=url, config=None, creds=None, what=what, from_start=True, count=count, json=as_json
    )


@pytest.fixture
async def topology(nc, config):
    await ensure_topology(nc.jetstream(), config.bus, 30)


async def test_a_market_pattern_is_pretty_printed(nc, nats_server, topology, capsys):
    await publish_event(
        nc, ev.MarketTick(venue="paper", symbol="ETH/USDT", price=Decimal("3001.5"))
    )
    await publish_event(nc, ev.MarketTick(venue="other", symbol="ETH/USDT", price=Decimal("1")))
    await publish_event(nc, ev.MarketTick(venue="paper", symbol="BTC/USDT", price=Decimal("42000")))
    assert await cmd_tail(tail_args(nats_server.url, "md.paper.>", count=2)) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert "TICK      paper ETH/USDT 3001.5" in lines[0]
    assert "TICK      paper BTC/USDT 42000" in lines[1]


async def test_json_gives_subject_sequence_and_the_event_as_sent(nc, nats_server, topology, capsys):
    fill = ev.Fill(
        venue="paper", symbol="BTC/USDT", strategy="demo", client_order_id="c1", trade_id="t1",
        side=ev.Side.BUY, quantity=Decimal("0.5"), price=Decimal("20000"),
    )  # fmt: skip
    await publish_event(nc, fill)
    await publish_raw(nc, "trading.signal.demo", b"not json at all")
    assert await cmd_tail(tail_args(nats_server.url, "trading.*.>", 2, as_json=True)) == 0
    first, second = (json.loads(x) for x in capsys.readouterr().out.splitlines())
    assert first["subject"] == subjects.fill("paper", "BTC/USDT")
    assert first["seq"] == 1
    assert first["event"]["type"] == "order.filled" and first["event"]["quantity"] == "0.5"
    assert second == {
        "subject": "trading.signal.demo",
        "seq": 2,
        "event": {"raw": "not json at all"},
    }


async def test_a_named_stream_still_works(nc, nats_server, topology, capsys):
    await publish_event(
        nc,
        ev.Alert(severity=ev.Severity.WARNING, source="t", code=ev.AlertCode.DEAD_LETTER,
                 message="look"),
    )  # fmt: skip
    assert await cmd_tail(tail_args(nats_server.url, "alerts", count=1)) == 0
    assert "ALERT     WARNING t DEAD_LETTER: look" in capsys.readouterr().out


@pytest.mark.parametrize("bad", ["", "trading..fill", "trading.>.fill", "has space"])
async def test_a_bad_pattern_is_refused_before_connecting(bad):
    with pytest.raises(ClientError, match="subject pattern"):
        await cmd_tail(tail_args("nats://127.0.0.1:1", bad, count=1))


def test_the_command_line_takes_a_pattern_and_json():
    from tradebus_common.cli.main import build_parser

    args = build_parser().parse_args(["tail", "md.paper.>", "--json", "--count", "3"])
    assert (args.what, args.json, args.count, args.from_start) == ("md.paper.>", True, 3, False)
    assert build_parser().parse_args(["tail", "fills"]).json is False
