"""Operator commands: `tradebus reconcile --accept`, `tradebus audit verify|export|trace`."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
import msgspec

from tradebus_common import subjects
from tradebus_common.bus import MSG_ID
from tradebus_common.cli import client
from tradebus_common.cli.client import ClientError, connected
from tradebus_common.config import load_config
from tradebus_common.events import (
    ControlAction,
    ControlCommand,
    MessageDeadLettered,
    ReconGateChanged,
    ReconReport,
)

from . import export
from .audit import CheckpointStore, verify


def register(subparsers: Any, client_opts: Any) -> None:
    _extend_reconcile(subparsers, client_opts)
    audit = subparsers.add_parser(
        "audit", help="tamper-evident audit trail (verify, export, trace)"
    )
    sub = audit.add_subparsers(dest="audit_command", required=True)

    p = sub.add_parser("verify", help="recompute the hash chain and compare it with checkpoints")
    client_opts(p)
    _dsn_opt(p)
    p.add_argument("--from", dest="from_seq", type=int, default=1, help="start at this sequence")
    p.add_argument("--stream", default=subjects.STREAM_TRADING)
    p.add_argument("--checkpoints-of", default="", help="verify a copy against this stream's")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_verify)

    p = sub.add_parser("export", help="write the audit trail as JSON lines or CSV")
    client_opts(p)
    p.add_argument("--since", type=_when, help="ISO time (UTC if no offset)")
    p.add_argument("--until", type=_when, help="ISO time (UTC if no offset)")
    p.add_argument("--subject", default=subjects.TRADING_ALL, help="NATS subject pattern")
    p.add_argument("--format", choices=["json", "csv"], default="json")
    p.add_argument("--out", default="-", help="file (default: stdout)")
    p.add_argument("--stream", default=subjects.STREAM_TRADING)
    p.set_defaults(handler=cmd_export)

    p = sub.add_parser("trace", help="the causal chain of one signal, in stream order")
    client_opts(p)
    p.add_argument("signal_id")
    p.add_argument("--json", action="store_true")
    p.add_argument("--since", type=_when, help="scan from this time (default: the whole stream)")
    p.set_defaults(handler=cmd_trace)


def _extend_reconcile(subparsers: Any, client_opts: Any) -> None:
    """`tradebus reconcile [--json] [--venue V] [--accept --operator NAME]`."""
    p = subparsers.add_parser("reconcile", help="reconcile ledger and venue now")
    client_opts(p)
    p.add_argument("--json", action="store_true")
    p.add_argument("--venue")
    p.add_argument("--operator", default="")
    p.add_argument("--timeout", type=float, default=15.0)
    p.add_argument(
        "--accept", action="store_true", help="accept the last report: open the startup gate"
    )
    p.add_argument("--reason", default="", help="with --accept: why")
    p.set_defaults(handler=cmd_reconcile)


def _dsn_opt(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dsn", help="PostgreSQL DSN (default: [database] dsn / $TRADEBUS_DATABASE_DSN)"
    )


def _when(text: str) -> datetime:
    try:
        ts = datetime.fromisoformat(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"not an ISO time: {text!r}") from e
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


# --- reconcile -------------------------------------------------------------------------


def render_report(r: ReconReport) -> str:
    """One report for an operator: the verdict, the counts, then each discrepancy."""
    verdict = "clean" if r.clean else ("resolved" if r.resolved else "UNRESOLVED")
    lines = [
        f"RECON     {r.venue}: {verdict} ({r.trigger or 'on_demand'}, {r.duration_ms} ms) "
        f"orders {r.orders_compared}, trades {r.trades_compared}, positions "
        f"{r.positions_compared}, balances {r.balances_compared}"
    ]
    for d in r.discrepancies:
        sides = f" ours {d.ours} venue {d.theirs}" if d.ours is not None or d.theirs else ""
        done = f" -> {d.resolution}" if d.resolution else " -> UNRESOLVED"
        lines.append(f"          {d.kind.value} {d.key}{sides}{done} {d.detail}".rstrip())
    return "\n".join(lines)


def _answers_reconcile(cmd_id: str) -> Callable[[Any], bool]:
    def match(e: Any) -> bool:
        if isinstance(e, ReconReport):
            return e.causation_id == cmd_id
        return isinstance(e, MessageDeadLettered) and e.headers.get(MSG_ID) == cmd_id

    return match


def _all_reports_in(found: list[Any]) -> bool:
    """Done when the reconciler refused, or every venue's report (of_total) is in."""
    reports = [e for e in found if isinstance(e, ReconReport)]
    refused = any(isinstance(e, MessageDeadLettered) for e in found)
    return refused or (bool(reports) and len(reports) >= reports[0].of_total)


async def _run_now(args: Any) -> int:
    cmd = ControlCommand(
        action=ControlAction.RECONCILE,
        operator=args.operator,
        scope=args.venue or "global",
        reason="on demand",
    )
    async with connected(args) as nc:
        found = await client._publish_and_collect(
            nc,
            cmd,
            [subjects.RECON_REPORT, subjects.deadletter("reconciler")],
            _answers_reconcile(cmd.id),
            _all_reports_in,
            args.timeout,
        )
    refused = [e for e in found if isinstance(e, MessageDeadLettered)]
    if refused:
        raise ClientError(f"reconciler refused the request: {refused[0].error}")
    if not found:
        raise ClientError(
            f"no reconciliation report within {args.timeout}s (is the reconciler running?)"
        )
    for report in found:
        print(json.dumps(msgspec.to_builtins(report)) if args.json else render_report(report))
    return 0 if all(r.clean for r in found) else 3


async def cmd_reconcile(args: Any) -> int:
    if not getattr(args, "accept", False):
        return await _run_now(args)
    operator = (args.operator or "").strip()
    if not operator:
        raise ClientError("reconcile --accept needs --operator NAME")
    cmd = ControlCommand(
        action=ControlAction.RECONCILE,
        target="accept",
        operator=operator,
        reason=args.reason or f"accepted by {operator}",
    )
    async with connected(args) as nc:
        found = await client._publish_and_collect(
            nc,
            cmd,
            [subjects.RECON_GATE, subjects.deadletter("reconciler")],
            lambda e: (
                (isinstance(e, ReconGateChanged) and e.causation_id == cmd.id)
                or (isinstance(e, MessageDeadLettered) and e.headers.get(MSG_ID) == cmd.id)
            ),
            bool,
            args.timeout,
        )
    if not found:
        raise ClientError(f"no answer within {args.timeout}s (is the reconciler running?)")
    if isinstance(found[0], MessageDeadLettered):
        raise ClientError(f"reconciler refused the accept: {found[0].error}")
    gate: ReconGateChanged = found[0]
    if args.json:
        print(json.dumps(msgspec.to_builtins(gate)))
    else:
        print(f"startup gate {gate.state.value} (by {gate.operator}): {gate.reason}")
    return 0


# --- audit -----------------------------------------------------------------------------


def _dsn(args: Any) -> str:
    dsn = args.dsn or load_config(getattr(args, "config", None)).database_dsn()
    if not dsn:
        raise ClientError("audit verify needs the database: --dsn or [database] dsn")
    return dsn


async def cmd_verify(args: Any) -> int:
    pool = await asyncpg.create_pool(_dsn(args), min_size=1, max_size=2)
    try:
        async with connected(args) as nc:
            result = await verify(
                nc.jetstream(),
                CheckpointStore(pool),
                args.stream,
                args.from_seq,
                args.checkpoints_of or None,
            )
    finally:
        await pool.close()
    if args.json:
        print(json.dumps(result.__dict__))
    elif result.ok:
        print(
            f"audit chain OK: {result.checked} messages hashed, {result.checkpoints} "
            f"checkpoint(s) match (last at sequence {result.last_good_seq}) {result.detail}"
        )
    else:
        print(
            f"audit chain BROKEN at sequence {result.first_bad_seq} (last good checkpoint: "
            f"{result.last_good_seq}): {result.detail}",
            file=sys.stderr,
        )
    return 0 if result.ok else 3


async def cmd_export(args: Any) -> int:
    out = sys.stdout if args.out == "-" else open(args.out, "w", newline="")  # noqa: SIM115
    try:
        async with connected(args) as nc:
            n = await export.export(
                nc.jetstream(),
                out,
                args.format,
                args.stream,
                args.subject,
                args.since,
                args.until,
                export.progress_printer(sys.stderr),
            )
    finally:
        if out is not sys.stdout:
            out.close()
    print(f"exported {n} message(s) to {args.out}", file=sys.stderr)
    return 0


async def cmd_trace(args: Any) -> int:
    async with connected(args) as nc:
        chain = await export.trace(nc.jetstream(), args.signal_id, args.since)
    if not chain:
        raise ClientError(f"nothing in the stream for signal {args.signal_id}")
    for row in chain:
        print(json.dumps(row) if args.json else export.trace_line(row))
    return 0
