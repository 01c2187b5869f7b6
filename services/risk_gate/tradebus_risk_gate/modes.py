"""Modes (R8) and progressive risk stages (R9), latched in KV `control` (keys `mode`, `stage`)
next to the trading state.

* paper -> live-minimal needs the record since the last mode change to pass validation, and an
  operator; a refusal lists the failed criteria. Any mode -> emergency-stop is always allowed
  and halts globally with flatten. Other moves need an operator; some are never allowed.
* Stages step up only with an operator after N profitable trading days at the current stage;
  a tripped breaker steps down by one automatically.
"""

from __future__ import annotations

import statistics
from decimal import Decimal

import msgspec
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from tradebus_common.bus import get_struct
from tradebus_common.codec import encode
from tradebus_common.config import ModeConfig, StageConfig
from tradebus_common.errors import ErrorCode, PermanentError
from tradebus_common.events import (
    Alert,
    AlertCode,
    ControlCommand,
    Event,
    LedgerSnapshot,
    ModeChanged,
    ModeChangeRefused,
    RiskStageChanged,
    Severity,
    TradingMode,
)
from tradebus_common.ids import derive_id

M = TradingMode
# (from, to) -> needs validation of the record
ALLOWED: dict[tuple[TradingMode, TradingMode], bool] = {
    (M.PAPER, M.LIVE_MINIMAL): True,
    (M.LIVE_MINIMAL, M.LIVE_SCALED): False,
    (M.LIVE_SCALED, M.LIVE_MINIMAL): False,
    (M.LIVE_MINIMAL, M.PAPER): False,
    (M.LIVE_SCALED, M.PAPER): False,
    (M.EMERGENCY_STOP, M.PAPER): False,
}
MAX_DAYS = 60
MAX_PNLS = 1000


class Record(msgspec.Struct, kw_only=True):
    """The trading record since the last mode change (what paper -> live is judged on)."""

    trades: int = 0
    wins: int = 0
    pnls: list[Decimal] = []
    max_drawdown_pct: Decimal = Decimal(0)
    last_exit_ids: list[str] = []  # a redelivered exit is counted once
    days: dict[str, Decimal] = {}  # trading day -> daily P&L (the latest snapshot's)


# --- pure rules -------------------------------------------------------------------------


def sharpe(pnls: list[Decimal]) -> Decimal:
    """Per-trade Sharpe: mean / standard deviation of trade P&L (0 with fewer than 2 trades)."""
    if len(pnls) < 2:
        return Decimal(0)
    sd = statistics.stdev(pnls)
    mean = statistics.mean(pnls)
    if sd == 0:
        return Decimal("999") if mean > 0 else Decimal(0)
    return (mean / sd).quantize(Decimal("0.0001"))


def validate(record: Record, cfg: ModeConfig) -> tuple[list[str], dict[str, str]]:
    """The failed criteria (empty: passed) and the figures, for the event and the operator."""
    win_rate = (
        Decimal(record.wins * 100) / record.trades if record.trades else Decimal(0)
    ).quantize(Decimal("0.01"))
    figures = {
        "trades": str(record.trades),
        "win_rate_pct": str(win_rate),
        "sharpe": str(sharpe(record.pnls)),
        "max_drawdown_pct": str(record.max_drawdown_pct),
    }
    failed = []
    if record.trades < cfg.min_trades:
        failed.append(f"trades {record.trades} < {cfg.min_trades}")
    if win_rate < cfg.min_win_rate_pct:
        failed.append(f"win rate {win_rate}% < {cfg.min_win_rate_pct}%")
    if sharpe(record.pnls) < cfg.min_sharpe:
        failed.append(f"sharpe {sharpe(record.pnls)} < {cfg.min_sharpe}")
    if record.max_drawdown_pct > cfg.max_drawdown_pct:
        failed.append(f"max drawdown {record.max_drawdown_pct}% > {cfg.max_drawdown_pct}%")
    return failed, figures


def profitable_days(days: dict[str, Decimal], since_day: str, today: str) -> int:
    """Completed trading days after the stage was set (not today) that ended in profit."""
    return sum(1 for day, pnl in days.items() if since_day < day < today and pnl > 0)


# --- the store --------------------------------------------------------------------------


class ModeStore:
    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv
        self._record: Record | None = None  # this process is its only writer: read once

    async def _get(self, key: str, type_: type) -> object | None:
        try:
            return await get_struct(self.kv, key, type_)
        except msgspec.DecodeError as e:  # same verdict as codec.decode: unreadable
            raise PermanentError(f"bad {key} record: {e}", ErrorCode.SCHEMA_VIOLATION) from e

    async def mode(self) -> TradingMode:
        found = await self._get("mode", ModeChanged)
        return found.mode if isinstance(found, ModeChanged) else TradingMode.PAPER

    async def stage(self) -> RiskStageChanged | None:
        found = await self._get("stage", RiskStageChanged)
        return found if isinstance(found, RiskStageChanged) else None

    async def record(self) -> Record:
        """A copy (callers change it, and only a successful put may change the cache)."""
        if self._record is None:
            try:
                entry = await self.kv.get("record")
                self._record = msgspec.json.decode(entry.value or b"{}", type=Record)
            except KeyNotFoundError:
                self._record = Record()
        return msgspec.structs.replace(self._record)

    async def put(self, key: str, value: Event | Record) -> None:
        data = msgspec.json.encode(value) if isinstance(value, Record) else encode(value)
        await self.kv.put(key, data)
        if isinstance(value, Record):
            self._record = msgspec.structs.replace(value)

    async def add_exit(self, exit_id: str, pnl: Decimal) -> None:
        record = await self.record()
        if exit_id in record.last_exit_ids:
            return
        record.trades += 1
        record.wins += pnl > 0
        record.pnls = [*record.pnls, pnl][-MAX_PNLS:]
        record.last_exit_ids = [*record.last_exit_ids, exit_id][-100:]
        await self.put("record", record)

    async def observe(self, snapshot: LedgerSnapshot) -> None:
        record = await self.record()
        day = snapshot.trading_day or snapshot.ts.date().isoformat()
        if record.days.get(day) == snapshot.daily_pnl and (
            snapshot.drawdown_pct <= record.max_drawdown_pct
        ):
            return  # nothing new: no write
        record.days = dict(sorted({**record.days, day: snapshot.daily_pnl}.items())[-MAX_DAYS:])
        record.max_drawdown_pct = max(record.max_drawdown_pct, snapshot.drawdown_pct)
        await self.put("record", record)


# --- commands ---------------------------------------------------------------------------


class ModeHandler:
    def __init__(self, modes: ModeStore, mode_cfg: ModeConfig, stage_cfg: StageConfig) -> None:
        self.modes = modes
        self.mode_cfg = mode_cfg
        self.stage_cfg = stage_cfg

    async def change_mode(self, cmd: ControlCommand) -> tuple[list[Event], bool]:
        """Events to publish, and whether to halt (emergency stop)."""
        try:
            target = TradingMode(cmd.target.strip())
        except ValueError as e:
            raise PermanentError(
                f"unknown mode {cmd.target[:40]!r}", ErrorCode.INVALID_COMMAND
            ) from e
        current = await self.modes.mode()
        if target is TradingMode.EMERGENCY_STOP:
            return [await self._set_mode(cmd, current, target, {})], True
        if (current, target) not in ALLOWED:
            return [
                self._refused(cmd, current, target, [f"{current} -> {target} is not allowed"])
            ], False
        record = await self.modes.record()
        failed, figures = validate(record, self.mode_cfg) if ALLOWED[current, target] else ([], {})
        if failed:
            return [self._refused(cmd, current, target, failed)], False
        return [await self._set_mode(cmd, current, target, figures)], False

    async def _set_mode(
        self,
        cmd: ControlCommand,
        current: TradingMode,
        target: TradingMode,
        figures: dict[str, str],
    ) -> Event:
        change = ModeChanged(
            id=derive_id(cmd.id, "mode"),
            mode=target,
            previous=current,
            reason=cmd.reason or f"mode {target.value}",
            operator=cmd.operator or "unknown",
            criteria=figures,
        )
        await self.modes.put("mode", change)
        await self.modes.put("record", Record())  # the next mode is judged on its own record
        return change

    def _refused(
        self, cmd: ControlCommand, current: TradingMode, target: TradingMode, failed: list[str]
    ) -> Event:
        return ModeChangeRefused(
            id=derive_id(cmd.id, "mode"),
            mode=target,
            current=current,
            operator=cmd.operator,
            failed=failed,
        )

    async def step(self, cmd: ControlCommand) -> list[Event]:
        direction = cmd.target.strip().lower()
        if direction not in ("up", "down"):
            raise PermanentError("stage target must be up or down", ErrorCode.INVALID_COMMAND)
        current = await self.modes.stage()
        level = current.stage if current else 0
        if direction == "down":
            return await self.set_stage(cmd.id, max(level - 1, 0), cmd.reason, cmd.operator)
        if level + 1 >= len(self.stage_cfg.risk_per_trade_pct):
            raise PermanentError(f"already at the top stage {level}", ErrorCode.INVALID_COMMAND)
        record = await self.modes.record()
        since = current.ts.date().isoformat() if current else ""
        today = max(record.days, default="")
        days = profitable_days(record.days, since, today)
        need = self.stage_cfg.profitable_days_to_step_up
        if days < need:
            raise PermanentError(
                f"step up needs {need} profitable days at this stage, has {days}",
                ErrorCode.INVALID_COMMAND,
            )
        return await self.set_stage(cmd.id, level + 1, cmd.reason, cmd.operator)

    async def set_stage(self, cause_id: str, level: int, reason: str, operator: str) -> list[Event]:
        current = await self.modes.stage()
        change = RiskStageChanged(
            id=derive_id(cause_id, "stage"),
            stage=level,
            previous=current.stage if current else 0,
            risk_per_trade_pct=self.stage_cfg.risk_per_trade_pct[level],
            max_exposure_pct=self.stage_cfg.max_exposure_pct[level],
            reason=reason or f"stage {level}",
            operator=operator or "unknown",
        )
        await self.modes.put("stage", change)
        return [change]


def mode_alert(event: Event) -> Alert:
    if isinstance(event, ModeChangeRefused):
        return Alert(
            id=derive_id(event.id, "alert"),
            severity=Severity.WARNING,
            source="risk-gate",
            code=AlertCode.MODE_REFUSED,
            message=f"mode {event.mode.value} refused: {'; '.join(event.failed)}",
            context={"failed": event.failed, "current": event.current.value},
        )
    if isinstance(event, ModeChanged):
        severity = (
            Severity.CRITICAL if event.mode is TradingMode.EMERGENCY_STOP else Severity.WARNING
        )
        message = f"mode {event.mode.value} (was {event.previous}) by {event.operator}"
        code = AlertCode.MODE_CHANGED
    else:
        assert isinstance(event, RiskStageChanged)
        severity, code = Severity.WARNING, AlertCode.STAGE_CHANGED
        message = (
            f"risk stage {event.stage} ({event.risk_per_trade_pct}% per trade, "
            f"exposure {event.max_exposure_pct}%) by {event.operator}: {event.reason}"
        )
    return Alert(
        id=derive_id(event.id, "alert"), severity=severity, source="risk-gate", code=code,
        message=message,
    )  # fmt: skip
