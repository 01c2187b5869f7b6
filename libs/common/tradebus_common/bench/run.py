"""Runs every measurement on one throwaway stack and prints (or writes) the report."""

from __future__ import annotations

import json
import platform
import sys
import time
from dataclasses import dataclass
from typing import Any

from . import alerts, baseline, checks, halt, pipeline, stages
from .figures import Figure
from .stack import BenchStack, peak_rss_mb


@dataclass(frozen=True)
class Plan:
    baseline_n: int
    e2e_rate: float
    e2e_seconds: float
    load_rates: list[float]
    load_seconds: float
    halt_rounds: int
    ingest_fills: int
    alerts: int
    risk_checks: int
    book_orders: int = 1000  # open paper orders when the halt lands (R4's figure)
    book_rounds: int = 2
    gateway_burst: int = 2000
    gateway_paced: int = 300


QUICK = Plan(500, 200, 5, [250, 500, 1000, 2000, 3000], 3, 20, 2000, 50, 20_000)
FULL = Plan(
    3000,
    200,
    30,
    [250, 500, 1000, 2000, 3000, 4000],
    30,
    100,
    10000,
    200,
    100_000,
    1000,
    5,
    10_000,
    1000,
)


def progress(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


async def run(plan: Plan) -> dict[str, Figure]:
    stack = BenchStack.temporary()
    receiver = alerts.WebhookReceiver()
    await receiver.start()
    stack.webhook_url = receiver.url
    progress(f"starting a stack in {stack.root}")
    await stack.start()
    try:
        return await measure(stack, plan, receiver)
    finally:
        progress("stopping the stack")
        await stack.stop()
        await receiver.stop()


async def measure(
    stack: BenchStack, plan: Plan, receiver: alerts.WebhookReceiver
) -> dict[str, Figure]:
    progress("raw JetStream baseline")
    base = await baseline.measure_baseline(stack.url, plan.baseline_n)
    figs: dict[str, Figure] = {}
    # The quiet measurements first: a later load step can leave the stack a backlog.
    progress(f"risk check cost over {plan.risk_checks} intents, in process")
    figs["risk_check_p99"] = checks.risk_check_cost(plan.risk_checks)
    progress("alert to webhook")
    figs["alert_p99"] = await alerts.alert_to_sink(stack.url, receiver, plan.alerts, 20)
    progress("halt propagation")
    figs["halt_p99"] = await pipeline.halt_propagation(stack.url, plan.halt_rounds)
    progress(f"ledger ingest of {plan.ingest_fills} fills")
    figs["ledger_ingest"] = await pipeline.ledger_ingest(stack.url, plan.ingest_fills)
    progress(f"end-to-end latency at {plan.e2e_rate:.0f} signals/s for {plan.e2e_seconds}s")
    figs.update(await pipeline.end_to_end(stack.url, plan.e2e_rate, plan.e2e_seconds))
    progress("sustained throughput")
    figs["sustained"] = await pipeline.sustained(stack.url, plan.load_rates, plan.load_seconds)
    progress(f"halt propagation with {plan.book_orders} open orders")
    figs.update(await halt.halt_with_open_orders(stack.url, plan.book_orders, plan.book_rounds))
    progress(f"execution-gateway alone: a burst of {plan.gateway_burst} approvals")
    figs.update(await stages.gateway(stack.url, plan.gateway_burst, plan.gateway_paced, 100))
    progress("ledger replay of the whole stream")
    assert stack.postgres is not None
    config = str(stack.root / "tradebus.toml")
    figs["ledger_replay"] = await stages.replay_rate(stack.url, stack.postgres.dsn, config)
    for name, pid in stack.pids().items():
        rss = peak_rss_mb(pid)
        if rss is not None:
            figs[f"rss_{name}"] = Figure(f"peak RSS {name}", rss, "MB", target=150)
    attach_baselines(figs, base)
    return {**{f"baseline_{k}": v for k, v in base.items()}, **figs}


def attach_baselines(figs: dict[str, Figure], base: dict[str, Figure]) -> None:
    """Each pipeline figure next to the raw operation it is built from."""
    pairs = {
        "e2e_p50": "publish_p50",
        "e2e_p99": "publish_p99",
        "e2e_p999": "publish_p99",
        "sustained": "consume_ack",
        "halt_p99": "publish_p99",
        "halt_book_state_p99": "publish_p99",
        "halt_book_cancel_p99": "publish_p99",
        "halt_book_canceled_p99": "publish_p99",
        "ledger_ingest": "consume_ack",
        "ledger_replay": "consume_ack",
        "gateway_orders": "consume_ack",
        "gateway_p99": "publish_p99",
        "alert_p99": "publish_p99",
    }
    pairs.update({k: "rpc_p50" for k in figs if k.startswith("hop_")})
    for key, base_key in pairs.items():
        if key in figs and base_key in base:
            figs[key].baseline = base[base_key].value
            figs[key].baseline_name = base[base_key].name


def render(figs: dict[str, Figure]) -> str:
    rows = [
        f"{'figure':<40}{'value':>12} {'unit':<10}{'baseline':>10}  {'ratio':>7}  "
        f"{'target':>8}  result"
    ]
    for f in figs.values():
        base = f"{f.baseline:.3f}" if f.baseline is not None else "-"
        ratio = f"{f.ratio:.1f}x" if f.ratio is not None else "-"
        target = f"{f.target:g}" if f.target is not None else "-"
        met = {True: "met", False: "MISSED", None: ""}[f.met]
        rows.append(
            f"{f.name:<40}{f.value:>12.3f} {f.unit:<10}{base:>10}  {ratio:>7}  "
            f"{target:>8}  {met} {f.note}".rstrip()
        )
    return "\n".join(rows)


def report(figs: dict[str, Figure], as_json: bool, elapsed_s: float) -> str:
    meta: dict[str, Any] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "elapsed_s": round(elapsed_s, 1),
    }
    if as_json:
        return json.dumps(
            {"meta": meta, "figures": {k: f.as_dict() for k, f in figs.items()}}, indent=2
        )
    return render(figs) + f"\n(baselines: raw nats-py on the same server; {meta})"


async def main(args: Any) -> int:
    t0 = time.perf_counter()
    figs = await run(QUICK if args.quick else FULL)
    print(report(figs, args.json, time.perf_counter() - t0))
    return 0
