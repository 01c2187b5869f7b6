"""C3: when runs happen besides start and on demand. Open orders every
`open_orders_interval_s`, a full run (trades, positions, balances) every
`positions_interval_s`, and an end-of-day report at `end_of_day_utc`, written as JSON and CSV."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import msgspec

from tradebus_common.bus import raise_if_cancelling
from tradebus_common.config import ReconcilerConfig
from tradebus_common.events import ReconReport
from tradebus_common.ids import derive_id

from .engine import FULL, ORDERS, Reconciler
from .store import ReconStore

log = logging.getLogger("tradebus.reconciler.schedule")


async def every(interval_s: float, step: Callable[[], Awaitable[object]], name: str) -> None:
    """Call `step` every interval (first after one interval: start-up has its own run)."""
    if interval_s <= 0:
        return
    while True:
        await asyncio.sleep(interval_s)
        try:
            await step()
        except Exception as e:
            raise_if_cancelling()
            log.warning("scheduled run failed", extra={"run": name, "error": repr(e)})


def periodic_tasks(engine: Reconciler, cfg: ReconcilerConfig, venues: list[str]) -> list:
    def runner(scope: str) -> Callable[[], Awaitable[object]]:
        async def step() -> object:
            run_id = derive_id("periodic", scope, datetime.now(UTC).isoformat())
            return await engine.run(run_id, "periodic", venues, scope)

        return step

    # A service task must never return (the runtime stops the service when one does): a
    # disabled schedule is no task at all.
    tasks = []
    if cfg.open_orders_interval_s > 0:
        tasks.append(lambda: every(cfg.open_orders_interval_s, runner(ORDERS), "open_orders"))
    if cfg.positions_interval_s > 0:
        tasks.append(lambda: every(cfg.positions_interval_s, runner(FULL), "full"))
    return tasks


def parse_hhmm(text: str) -> time | None:
    if not text.strip():
        return None
    hours, _, minutes = text.strip().partition(":")
    return time(int(hours), int(minutes or 0), tzinfo=UTC)


def next_at(now: datetime, at: time) -> datetime:
    today = datetime.combine(now.date(), at.replace(tzinfo=None), tzinfo=UTC)
    return today if today > now else today + timedelta(days=1)


class EndOfDay:
    """At the configured time: a full run, then every report of the last 24 h to
    <report_dir>/recon-<date>.json and .csv."""

    def __init__(self, engine: Reconciler, cfg: ReconcilerConfig, venues: list[str]) -> None:
        self.engine = engine
        self.cfg = cfg
        self.venues = venues
        self.store: ReconStore = engine.store

    async def run_forever(self) -> None:
        at = parse_hhmm(self.cfg.end_of_day_utc)
        if at is None:
            return
        while True:
            now = datetime.now(UTC)
            await asyncio.sleep((next_at(now, at) - now).total_seconds())
            try:
                await self.report(datetime.now(UTC))
            except Exception as e:
                raise_if_cancelling()
                log.warning("end-of-day report failed", extra={"error": repr(e)})

    async def report(self, now: datetime) -> tuple[Path, Path]:
        run_id = derive_id("end_of_day", now.date().isoformat())
        await self.engine.run(run_id, "end_of_day", self.venues, FULL)
        reports = await self.store.reports_between(
            now - timedelta(days=1), now + timedelta(seconds=1)
        )
        return write_reports(Path(self.cfg.report_dir), now.date().isoformat(), reports)


CSV_COLUMNS = [
    "report_id",
    "ts",
    "venue",
    "trigger",
    "scope",
    "clean",
    "resolved",
    "orders_compared",
    "trades_compared",
    "positions_compared",
    "balances_compared",
    "duration_ms",
    "kind",
    "key",
    "ours",
    "theirs",
    "resolution",
    "detail",
]


def csv_rows(reports: list[ReconReport]) -> list[list[object]]:
    """One row per discrepancy (a clean report gets one row with empty discrepancy columns)."""
    rows = []
    for r in reports:
        head = [
            r.id,
            r.ts.isoformat(),
            r.venue,
            r.trigger,
            r.scope,
            r.clean,
            r.resolved,
            r.orders_compared,
            r.trades_compared,
            r.positions_compared,
            r.balances_compared,
            r.duration_ms,
        ]
        for d in r.discrepancies or [None]:
            tail = (
                [d.kind.value, d.key, d.ours, d.theirs, d.resolution, d.detail] if d else [""] * 6
            )
            rows.append(head + ["" if v is None else v for v in tail])
    return rows


def write_reports(out_dir: Path, day: str, reports: list[ReconReport]) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, csv_path = out_dir / f"recon-{day}.json", out_dir / f"recon-{day}.csv"
    json_path.write_text(json.dumps(msgspec.to_builtins(reports), indent=2) + "\n")
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(CSV_COLUMNS)
    writer.writerows(csv_rows(reports))
    csv_path.write_text(buf.getvalue())
    log.info("end-of-day report written", extra={"json": str(json_path), "reports": len(reports)})
    return json_path, csv_path
