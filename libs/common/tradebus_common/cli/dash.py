"""`tradebus dash`: a live terminal dashboard of a running stack.

It reads what `tradebus status` reads (the health and control buckets, consumer info, the
alerting and risk-gate sections) plus the ledger's query API (positions with marks, equity and
P&L), the risk-gate's open-order book (working orders) and the stream itself (recent fills and
denials, read by one ephemeral consumer that it keeps). It only reads: nothing is published.

`--once` prints one frame and exits (scripts, and the tests)."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections import deque
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import msgspec
import nats
from nats.aio.client import Client as NATS
from nats.js import api
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from .. import subjects
from ..codec import decode
from ..errors import PermanentError
from ..events import Fill, OrderDenied
from . import client
from .services import SERVICE_NAMES
from .status import build_status

RPC_TIMEOUT_S = 1.0
STATE_STYLE = {"ACTIVE": "bold green", "REDUCING": "bold yellow", "HALTED": "bold white on red"}


def register(sub: Any, client_opts: Any) -> None:
    p = sub.add_parser("dash", help="live terminal dashboard (state, health, positions, ...)")
    client_opts(p)
    p.add_argument("--once", action="store_true", help="print one frame and exit")
    p.add_argument("--interval", type=float, default=2.0, help="refresh period in seconds")
    p.add_argument("--recent", type=int, default=10, help="how many fills and denials to show")
    p.add_argument(
        "--lookback-h", type=float, default=24.0, help="fills and denials of the last N hours"
    )
    p.add_argument("--width", type=int, help="frame width (default: the terminal's)")
    p.add_argument("--stale-after", type=float, default=15.0, help="heartbeat age = DOWN")
    p.set_defaults(handler=cmd_dash)


# --- reading -----------------------------------------------------------------------------


class RecentFeed:
    """The newest fills and denials, pushed live by one unnamed ephemeral consumer that starts
    `lookback` ago (unnamed and push: what the read-only `observer` identity may create).
    `refresh` waits until the backlog that was there at the start has arrived."""

    FILTERS = [subjects.FILL_ALL, subjects.DENIED_ALL]
    CATCH_UP_S = 5.0

    def __init__(self, nc: NATS, keep: int, lookback: timedelta) -> None:
        self.nc = nc
        self.fills: deque[Fill] = deque(maxlen=keep)
        self.denials: deque[OrderDenied] = deque(maxlen=keep)
        self.lookback = lookback
        self._sub: Any = None
        self._backlog = 0
        self._received = 0
        self._caught_up = asyncio.Event()

    async def _subscribe(self) -> None:
        inbox = self.nc.new_inbox()
        self._sub = await self.nc.subscribe(inbox, cb=self._on_msg)
        start = datetime.now(UTC) - self.lookback
        config = api.ConsumerConfig(
            deliver_subject=inbox,
            filter_subjects=self.FILTERS,
            deliver_policy=api.DeliverPolicy.BY_START_TIME,
            opt_start_time=start.isoformat().replace("+00:00", "Z"),
            ack_policy=api.AckPolicy.NONE,
            # Not deleted on exit (an observer may not): the server drops it this long after
            # the dash stops listening.
            inactive_threshold=10.0,
        )
        info = await self.nc.jetstream().add_consumer(subjects.STREAM_TRADING, config)
        self._backlog = info.num_pending or 0
        self._check_caught_up()

    async def _on_msg(self, msg: Any) -> None:
        self._received += 1
        self._keep(msg.data)
        self._check_caught_up()

    def _check_caught_up(self) -> None:
        if self._received >= self._backlog:
            self._caught_up.set()

    async def refresh(self) -> None:
        """First call: subscribe and wait for the backlog. Later calls: nothing to do, new
        fills and denials are pushed as they happen. A failed start is tried again."""
        if self._sub is None:
            try:
                await self._subscribe()
            except Exception:
                await self.close()
                self._sub = None
                raise
        with contextlib.suppress(TimeoutError):  # a partial list beats no frame
            await asyncio.wait_for(self._caught_up.wait(), self.CATCH_UP_S)

    def _keep(self, data: bytes) -> None:
        try:
            event = decode(data)
        except PermanentError:
            return
        if isinstance(event, Fill):
            self.fills.append(event)
        elif isinstance(event, OrderDenied):
            self.denials.append(event)

    async def close(self) -> None:
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()


@dataclass
class Frame:
    """Everything one frame shows, read at `at`."""

    at: datetime
    status: dict[str, Any]
    positions: list[dict[str, Any]] | None  # None: the ledger did not answer
    pnl: list[dict[str, Any]] | None
    orders: list[dict[str, Any]]
    fills: list[Fill] = field(default_factory=list)
    denials: list[OrderDenied] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # parts that could not be read


async def ledger(nc: NATS, endpoint: str) -> list[dict[str, Any]] | None:
    """A ledger query's data, or None when it does not answer (the frame says so)."""
    try:
        msg = await nc.request(subjects.ledger_rpc(endpoint), b"{}", timeout=RPC_TIMEOUT_S)
    except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
        return None
    reply = msgspec.json.decode(msg.data)
    return reply.get("data") if reply.get("ok") else None


async def read_frame(nc: NATS, feed: RecentFeed, stale_after_s: float) -> Frame:
    """Everything a frame shows. A part that cannot be read now (no stack yet, a server
    restarting) is listed as a problem on the frame: a dashboard keeps drawing."""
    problems: list[str] = []

    async def part(what: str, read: Awaitable[Any], default: Any) -> Any:
        try:
            return await read
        except nats.errors.ConnectionClosedError as e:
            raise client.ClientError("the connection to NATS was lost") from e
        except (nats.errors.Error, TimeoutError) as e:
            problems.append(f"{what}: {type(e).__name__}")
            return default

    sections = {
        name: await part(name, read(nc), {}) for name, read in client.STATUS_SECTIONS.items()
    }
    status = build_status(
        SERVICE_NAMES,
        await part("health", client._health(nc), []),
        await part("trading state", client._state(nc), None),
        await part("consumers", client._consumers(nc), {}),
        stale_after_s,
        sections,
    )
    await part("recent fills and denials", feed.refresh(), None)
    return Frame(
        at=datetime.now(UTC),
        status=status,
        positions=await part("positions", ledger(nc, "positions"), None),
        pnl=await part("pnl", ledger(nc, "pnl"), None),
        orders=await part("orders", client._kv_rows(nc, subjects.BUCKET_RISK_ORDERS, ""), []),
        fills=list(feed.fills),
        denials=list(feed.denials),
        problems=problems,
    )


# --- drawing -----------------------------------------------------------------------------


def num(value: Any) -> str:
    """A decimal as people write it: 0.25 not 0.25000000, 0 not 0E-8, 20000 not 2E+4."""
    if value is None or value == "":
        return "-"
    try:
        d = Decimal(str(value))
    except ArithmeticError:
        return str(value)
    return f"{d.normalize():f}" if d else "0"


def _table(title: str, *columns: str) -> Table:
    t = Table(title=title, title_justify="left", expand=True, show_edge=False, pad_edge=False)
    for c in columns:
        t.add_column(c, no_wrap=True, overflow="ellipsis")
    return t


def _state_panel(f: Frame) -> Panel:
    s = f.status
    state = s["trading_state"]
    head = Text(f" {state} ", style=STATE_STYLE.get(state, "bold"))
    if s.get("state_reason"):
        head.append(f"  {s['state_reason']} (by {s['state_operator'] or '?'})")
    locks = s.get("locks", {}).get("active", [])
    lines: list[Any] = [head]
    for r in locks:
        until = r["until_s"]
        left = f"{max(until - f.at.timestamp(), 0):.0f}s left" if until else "latched"
        lines.append(Text(f"lock {r['kind']} {r['target']} {left}: {r['reason']}"))
    if not locks:
        lines.append(Text("no locks", style="dim"))
    for problem in f.problems:
        lines.append(Text(f"cannot read {problem}", style="bold red"))
    for row in f.pnl or []:
        snap = row["snapshot"]
        lines.append(
            Text(
                f"{snap['account']}: equity {num(snap['equity'])}  "
                f"realized {num(snap['realized_pnl'])}  unrealized {num(snap['unrealized_pnl'])}  "
                f"daily {num(snap['daily_pnl'])}  drawdown {num(snap['drawdown'])}"
            )
        )
    title = f"trading state   {f.at:%Y-%m-%d %H:%M:%S} UTC"
    return Panel(Group(*lines), title=title, title_align="left")


def _health_table(f: Frame) -> Table:
    t = _table("services", "service", "health", "last beat", "pending", "unacked", "instance")
    for name, s in f.status["services"].items():
        age = s["last_heartbeat_age_s"]
        c = s["consumer"] or {}
        t.add_row(
            name,
            Text("ok", style="green") if s["healthy"] else Text("DOWN", style="bold red"),
            f"{age}s ago" if age is not None else "never",
            str(c.get("pending", "-")),
            str(c.get("ack_pending", "-")),
            s.get("instance") or "-",
        )
    return t


def _positions_table(f: Frame) -> Table:
    t = _table("positions", "venue", "symbol", "strategy", "qty", "avg", "mark", "uPnL", "rPnL")
    if f.positions is None:
        t.add_row("ledger not answering", *[""] * 7)
    for p in f.positions or []:
        if Decimal(str(p["quantity"])) == 0:  # flat: its realized P&L is in the totals
            continue
        t.add_row(
            p["venue"],
            p["symbol"],
            p.get("strategy", ""),
            num(p["quantity"]),
            num(p.get("avg_price")),
            num(p.get("mark_price")),
            _signed(p.get("unrealized_pnl", "0")),
            _signed(p.get("realized_pnl", "0")),
        )
    return t


def _signed(value: Any) -> Text:
    text = num(value)
    return Text(text, style="red" if text.startswith("-") else "green" if text != "0" else "")


def _orders_table(f: Frame) -> Table:
    t = _table("working orders", "venue", "symbol", "side", "qty", "filled", "price", "cid")
    for o in sorted(f.orders, key=lambda o: o.get("client_order_id", "")):
        t.add_row(
            o.get("venue", ""),
            o.get("symbol", ""),
            o.get("side", ""),
            num(o.get("quantity")),
            num(o.get("filled", "0")),
            num(o.get("price")),
            o.get("client_order_id", ""),
        )
    return t


def _fills_table(f: Frame) -> Table:
    t = _table("recent fills", "time", "venue", "symbol", "side", "qty", "price", "strategy")
    for e in reversed(f.fills):
        t.add_row(
            f"{e.ts:%H:%M:%S}",
            e.venue,
            e.symbol,
            e.side.value,
            num(e.quantity),
            num(e.price),
            e.strategy,
        )
    return t


def _denials_table(f: Frame) -> Table:
    t = _table("recent denials", "time", "symbol", "strategy", "reason", "detail")
    for e in reversed(f.denials):
        t.add_row(f"{e.ts:%H:%M:%S}", e.symbol, e.strategy, e.reason.value, e.detail)
    return t


def _alerts_table(f: Frame) -> Table:
    section = f.status.get("alerts", {})
    unacked = section.get("unacked", [])
    t = _table(f"unacked alerts ({len(unacked)})", "time", "severity", "code", "message")
    if "error" in section:
        t.add_row("", "", "", section["error"])
    for a in unacked:
        style = "bold red" if a["severity"] in ("error", "critical") else ""
        t.add_row(a["ts"][11:19], Text(a["severity"].upper(), style=style), a["code"], a["message"])
    return t


def render_frame(f: Frame) -> Group:
    return Group(
        _state_panel(f),
        _health_table(f),
        _positions_table(f),
        _orders_table(f),
        _fills_table(f),
        _denials_table(f),
        _alerts_table(f),
    )


def frame_text(f: Frame, width: int = 140) -> str:
    """The frame as plain text (no colours), e.g. for a test or a log."""
    console = Console(width=width, color_system=None, record=True, file=_Null())
    console.print(render_frame(f))
    return console.export_text()


class _Null:
    def write(self, _: str) -> int:
        return 0

    def flush(self) -> None:
        pass


# --- the command -------------------------------------------------------------------------


async def cmd_dash(args: Any) -> int:
    async with client.connected(args) as nc:
        feed = RecentFeed(nc, args.recent, timedelta(hours=args.lookback_h))
        try:
            if args.once:
                console = Console(width=args.width) if args.width else Console()
                console.print(render_frame(await read_frame(nc, feed, args.stale_after)))
                return 0
            await _live(nc, feed, args)
        finally:
            await feed.close()
    return 0


async def _live(nc: NATS, feed: RecentFeed, args: Any) -> None:
    console = Console(width=args.width) if args.width else Console()
    frame = await read_frame(nc, feed, args.stale_after)
    with Live(render_frame(frame), console=console, screen=sys.stdout.isatty()) as live:
        while True:
            await asyncio.sleep(args.interval)  # the refresh period, not a synchronization
            live.update(render_frame(await read_frame(nc, feed, args.stale_after)))
