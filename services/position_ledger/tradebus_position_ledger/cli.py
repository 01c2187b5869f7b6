"""Operator commands: tradebus positions | pnl | stats | report | replay."""

from __future__ import annotations

import csv
import io
import json
import sys
from datetime import datetime
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

    p = sub.add_parser("stats", help="performance statistics per strategy (closed trades)")
    client_opts(p)
    p.add_argument("--strategy")
    p.add_argument("--since", type=datetime.fromisoformat)
    p.add_argument("--until", type=datetime.fromisoformat)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_stats)

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


def _table(rows: list[dict[str, Any]], cols: list[str]) -> str:
    cells = [[str("" if r.get(c) is None else r.get(c)) for c in cols] for r in rows]
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
    "avg_holding_s", "realized_pnl", "unrealized_pnl",
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
            f"({s['drawdown_pct']}%)\n  exposure gross {s['gross_exposure']} net "
            f"{s['net_exposure']}  return {m['return_pct']}%  fills {m['total_trades']}  "
            f"uptime {m['uptime_s']}s"
        )
    return 0


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


async def cmd_stats(args: Any) -> int:
    data = await query(
        args, "stats", strategy=args.strategy, since=_iso(args.since), until=_iso(args.until)
    )
    print(json.dumps(data, indent=2) if args.json else _table(data, STATS_COLS))
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
        result = await replay(nc, dsn, set(config.strategies), progress, keep=args.keep)
    if args.json:
        print(json.dumps(_result_json(result), indent=2, default=str))
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
