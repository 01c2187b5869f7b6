"""Operator commands: tradebus positions | pnl | stats | report | replay."""

from __future__ import annotations

import csv
import io
import json
import sys
import time
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import msgspec
import nats.errors

from tradebus_common import subjects
from tradebus_common.cli.client import ClientError, connected
from tradebus_common.config import load_config

RPC_TIMEOUT_S = 10.0


def register(sub: Any, client_opts: Any) -> None:
    p = sub.add_parser("positions", help="open positions with marks and unrealized P&L")
    client_opts(p)
    p.add_argument("--strategy")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_positions)

    p = sub.add_parser("pnl", help="equity, cash, P&L, drawdown, exposure and run metrics")
    client_opts(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_pnl)

    p = sub.add_parser(
        "stats", help="run metrics, and statistics per strategy and exit reason (closed trades)"
    )
    client_opts(p)
    p.add_argument("--strategy")
    p.add_argument("--since", type=datetime.fromisoformat)
    p.add_argument("--until", type=datetime.fromisoformat)
    p.add_argument("--session", help="a session id, or 'current': only trades it closed")
    p.add_argument("--json", action="store_true", help="the per-strategy statistics as JSON")
    p.set_defaults(handler=cmd_stats)

    p = sub.add_parser("sessions", help="each run of the ledger, with its statistics")
    client_opts(p)
    p.add_argument("--strategy")
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_sessions)

    p = sub.add_parser("report", help="fills and statistics for a period, as JSON or CSV")
    client_opts(p)
    p.add_argument("--since", type=datetime.fromisoformat)
    p.add_argument("--until", type=datetime.fromisoformat)
    p.add_argument("--format", choices=["json", "csv"], default="json")
    p.add_argument("--out", help="file to write (default: stdout)")
    p.set_defaults(handler=cmd_report)

    p = sub.add_parser(
        "replay", help="rebuild the ledger from the stream and diff it with the live one"
    )
    client_opts(p)
    p.add_argument("--dsn", help="PostgreSQL DSN (default: from config)")
    p.add_argument("--keep", action="store_true", help="keep the rebuilt schema")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_replay)


async def query(args: Any, endpoint: str, **params: Any) -> Any:
    body = msgspec.json.encode({k: v for k, v in params.items() if v is not None})
    async with connected(args) as nc:
        try:
            msg = await nc.request(subjects.ledger_rpc(endpoint), body, timeout=RPC_TIMEOUT_S)
        except (nats.errors.NoRespondersError, nats.errors.TimeoutError) as e:
            raise ClientError(f"the position-ledger did not answer ({type(e).__name__})") from e
    reply = json.loads(msg.data)
    if not reply.get("ok"):
        raise ClientError(f"the position-ledger refused the query: {reply.get('error')}")
    return reply.get("data")


def _short(value: Any) -> str:
    """A long decimal shown to 4 places (the JSON keeps every digit)."""
    if value is None:
        return ""
    text = str(value)
    try:
        d = Decimal(text)
    except (InvalidOperation, ValueError):
        return text
    if d.is_finite() and "." in text and len(text.split(".")[1]) > 4:
        return str(d.quantize(Decimal("0.0001")))
    return text


def _table(rows: list[dict[str, Any]], cols: list[str]) -> str:
    cells = [[_short(r.get(c)) for c in cols] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


POSITION_COLS = [
    "account", "venue", "symbol", "strategy", "quantity", "avg_price", "mark_price",
    "unrealized_pnl", "realized_pnl",
]  # fmt: skip
STATS_COLS = [
    "strategy", "trades", "win_rate", "profit_factor", "sharpe", "sortino", "max_drawdown",
    "avg_holding_s", "realized_pnl", "unrealized_pnl", "avg_mae_pct", "avg_mfe_pct",
    "avg_slippage_bps", "fill_rate",
]  # fmt: skip
EXIT_COLS = ["strategy", "exit_reason", "trades", "win_rate", "realized_pnl", "avg_pnl"]
SESSION_COLS = [
    "session_id", "instance", "started_at", "ended_at", "trades", "win_rate", "realized_pnl",
    "profit_factor", "max_drawdown",
]  # fmt: skip
METRIC_COLS = [
    "account", "initial_capital", "current_value", "return_pct", "total_trades",
    "current_drawdown", "current_drawdown_pct", "uptime_s", "session_return_pct",
    "session_trades",
]  # fmt: skip


async def cmd_positions(args: Any) -> int:
    data = await query(args, "positions", strategy=args.strategy)
    print(
        json.dumps(data, indent=2)
        if args.json
        else _table(data, POSITION_COLS)
        if data
        else "no open positions"
    )
    return 0


async def cmd_pnl(args: Any) -> int:
    data = await query(args, "pnl")
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    for item in data:
        s, m = item["snapshot"], item["metrics"]
        print(
            f"{s['account']}: equity {s['equity']}  cash {s['cash']}  daily P&L {s['daily_pnl']} "
            f"({s['trading_day']})\n  realized {s['realized_pnl']}  unrealized "
            f"{s['unrealized_pnl']}  high-water {s['high_water_mark']}  drawdown {s['drawdown']} "
            f"({_short(s['drawdown_pct'])}%)\n  exposure gross {s['gross_exposure']} net "
            f"{s['net_exposure']}  return {_short(m['return_pct'])}%  fills {m['total_trades']}  "
            f"uptime {m['uptime_s']}s"
        )
        if m.get("session"):
            ses = m["session"]
            print(
                f"  session {ses['session_id']} since {ses['started_at']}: start equity "
                f"{ses['start_equity']}  return {_short(ses['return_pct'])}%  closed trades "
                f"{ses['closed_trades']}"
            )
        if "venue_cash" in m:
            print(f"  venue cash {m['venue_cash']}  ledger - venue {m['cash_minus_venue']}")
    return 0


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


async def cmd_stats(args: Any) -> int:
    data = await query(
        args,
        "stats",
        strategy=args.strategy,
        since=_iso(args.since),
        until=_iso(args.until),
        session=args.session,
    )
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    pnl = await query(args, "pnl")
    print("run metrics\n" + _table([_metrics_row(p) for p in pnl], METRIC_COLS))
    print("\nper strategy\n" + _table(data, STATS_COLS))
    exits = [
        {"strategy": st["strategy"], "exit_reason": reason, **e}
        for st in data
        for reason, e in st.get("by_exit_reason", {}).items()
    ]
    if exits:
        print("\nper exit reason\n" + _table(exits, EXIT_COLS))
    return 0


def _metrics_row(item: dict[str, Any]) -> dict[str, Any]:
    m = item["metrics"]
    session = m.get("session") or {}
    return {
        "account": item["snapshot"]["account"],
        **m,
        "session_return_pct": session.get("return_pct"),
        "session_trades": session.get("closed_trades"),
    }


async def cmd_sessions(args: Any) -> int:
    data = await query(args, "sessions", strategy=args.strategy, limit=args.limit)
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    rows = [
        {**s["stats"], **s, "session_id": s["session_id"] + (" *" if s["current"] else "")}
        for s in data
    ]
    print(_table(rows, SESSION_COLS) + "\n(* this run)")
    return 0


async def cmd_report(args: Any) -> int:
    window = {"since": _iso(args.since), "until": _iso(args.until)}
    fills = await query(args, "fills", limit=10_000, **window)
    stats = await query(args, "stats", **window)
    text = (
        _csv(fills)
        if args.format == "csv"
        else json.dumps({"window": window, "stats": stats, "fills": fills}, indent=2)
    )
    if args.out:
        with open(args.out, "w", newline="") as f:
            f.write(text)
        print(f"report: {len(fills)} fills, {len(stats)} strategies -> {args.out}")
    else:
        sys.stdout.write(text)
    return 0


def _csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return buf.getvalue()


async def cmd_replay(args: Any) -> int:
    from .replay import replay

    config = load_config(getattr(args, "config", None))
    dsn = args.dsn or config.database_dsn()
    if not dsn:
        raise ClientError("replay needs the database: pass --dsn or set [database] dsn")

    def progress(seq: int, total: int) -> None:
        print(f"replayed up to stream seq {seq}/{total}", file=sys.stderr, flush=True)

    async with connected(args) as nc:
        started = time.perf_counter()
        result = await replay(nc, dsn, set(config.strategies), progress, keep=args.keep)
        elapsed = time.perf_counter() - started
    if args.json:
        out = {**_result_json(result), "elapsed_s": round(elapsed, 3)}
        # the stream messages read (every event up to the live ledger's sequence), per second
        out["events_per_s"] = round(result.up_to_seq / elapsed) if elapsed > 0 else 0
        print(json.dumps(out, indent=2, default=str))
    elif result.identical:
        print(f"identical: {result.replayed} fills replayed up to stream seq {result.up_to_seq}")
    else:
        print(f"DIFFERENT: {len(result.differences)} row(s) differ")
        for d in result.differences:
            print(f"  {d['table']} {d['side']}: {json.dumps(d['row'], default=str)}")
    return 0 if result.identical else 1


def _result_json(r: Any) -> dict[str, Any]:
    return {
        "identical": r.identical,
        "replayed": r.replayed,
        "up_to_seq": r.up_to_seq,
        "unreadable": r.unreadable,
        "refused": r.refused,
        "schema": r.schema,
        "differences": r.differences,
    }
