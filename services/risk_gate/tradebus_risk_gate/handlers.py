"""risk-gate handlers: intents become approvals or denials; halt/resume latch the state."""

from __future__ import annotations

import logging

from tradebus_common.bus import Bus
from tradebus_common.config import Config
from tradebus_common.errors import ErrorCode, PermanentError
from tradebus_common.events import (
    Alert,
    AlertCode,
    ControlAction,
    ControlCommand,
    Event,
    OrderApproved,
    OrderDenied,
    OrderIntent,
    Severity,
    TradingState,
    TradingStateChanged,
)
from tradebus_common.ids import client_order_id, derive_id

from .checks import RiskView, first_denial
from .state import TradingStateStore

log = logging.getLogger("tradebus.risk_gate")


class IntentHandler:
    def __init__(self, config: Config, bus: Bus, store: TradingStateStore) -> None:
        self.config = config
        self.bus = bus
        self.store = store

    async def __call__(self, intent: OrderIntent) -> list[Event]:
        view = await self._view(intent)
        denial = first_denial(intent, view)
        if denial is not None:
            log.info("intent denied", extra={"intent_id": intent.id, "reason": denial.reason})
            return [
                OrderDenied(
                    id=derive_id(intent.id, "denied"),
                    intent_id=intent.id,
                    strategy=intent.strategy,
                    venue=intent.venue,
                    symbol=intent.symbol,
                    reason=denial.reason,
                    detail=denial.detail,
                    limit=denial.limit,
                    current=denial.current,
                )
            ]
        return [
            OrderApproved(
                id=derive_id(intent.id, "approved"),
                intent_id=intent.id,
                strategy=intent.strategy,
                venue=intent.venue,
                symbol=intent.symbol,
                side=intent.side,
                quantity=intent.quantity,
                order_type=intent.order_type,
                limit_price=intent.limit_price,
                client_order_id=client_order_id(intent.id, 0),
            )
        ]

    async def _view(self, intent: OrderIntent) -> RiskView:
        # Read the latched state per intent: never trade on a stale cached ACTIVE.
        state = await self.store.current()
        tick = await self.bus.last_tick(intent.venue, intent.symbol)
        return RiskView(
            state=state, last_price=tick.price if tick else None, limits=self.config.risk
        )


class ControlHandler:
    def __init__(self, bus: Bus, store: TradingStateStore) -> None:
        self.bus = bus
        self.store = store

    async def __call__(self, cmd: ControlCommand) -> list[Event]:
        if cmd.action is ControlAction.HALT:
            return await self._transition(
                cmd, TradingState.HALTED, Severity.CRITICAL, AlertCode.TRADING_HALTED
            )
        if cmd.action is ControlAction.RESUME:
            if not cmd.operator.strip():
                raise PermanentError("resume needs an operator", ErrorCode.OPERATOR_REQUIRED)
            return await self._transition(
                cmd, TradingState.ACTIVE, Severity.WARNING, AlertCode.TRADING_RESUMED
            )
        raise PermanentError(f"risk-gate does not handle {cmd.action}", ErrorCode.INVALID_COMMAND)

    async def _transition(
        self, cmd: ControlCommand, to: TradingState, severity: Severity, code: AlertCode
    ) -> list[Event]:
        previous = await self.store.current()
        change = TradingStateChanged(
            id=derive_id(cmd.id, "state"),
            state=to,
            previous=previous.state if previous else None,
            scope=cmd.scope,
            reason=cmd.reason or f"{cmd.action.value} (no reason given)",
            operator=cmd.operator or "unknown",
        )
        await self.store.latch(change)  # durable before the ack and before anyone is told
        log.warning(
            "trading state changed",
            extra={"state": to, "reason": change.reason, "operator": change.operator},
        )
        alert = Alert(
            id=derive_id(cmd.id, "alert"),
            severity=severity,
            source="risk-gate",
            code=code,
            message=f"trading {to.value}: {change.reason} (by {change.operator})",
            context={"scope": cmd.scope},
            dedup_key=f"risk-gate:state:{to.value}",
        )
        return [change, alert]
