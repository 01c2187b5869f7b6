"""One readable line per event, for `tradebus tail` and friends."""

from __future__ import annotations

from typing import Any

from .. import events as ev


def _ts(event: ev.Event) -> str:
    return event.ts.strftime("%H:%M:%S.%f")[:-3]


def _describe(e: Any) -> str:
    match e:
        case ev.Fill():
            return (
                f"FILL      {e.venue} {e.symbol} {e.side.value} {e.quantity} @ {e.price} "
                f"fee {e.fee} {e.fee_currency} cid={e.client_order_id}"
            )
        case ev.PositionChanged():
            return (
                f"POSITION  {e.venue} {e.symbol} {e.strategy} qty {e.quantity} "
                f"avg {e.avg_price} realized {e.realized_pnl}"
            )
        case ev.OrderApproved():
            return (
                f"APPROVED  {e.venue} {e.symbol} {e.side.value} {e.quantity} "
                f"cid={e.client_order_id}"
            )
        case ev.OrderDenied():
            return f"DENIED    {e.venue} {e.symbol} {e.reason.value}: {e.detail}"
        case ev.OrderEvent():
            kind = type(e).__name__.removeprefix("Order").upper()
            return f"{kind:<9} {e.venue} {e.symbol} cid={e.client_order_id}"
        case ev.ControlCommand():
            by = f", by {e.operator}" if e.operator else ""
            return f"CONTROL   {e.action.value} {e.scope}: {e.reason}{by}"
        case ev.Alert():
            return f"ALERT     {e.severity.value.upper()} {e.source} {e.code.value}: {e.message}"
        case ev.TradingStateChanged():
            return f"STATE     {e.state.value} ({e.reason}, by {e.operator})"
        case ev.ReconReport():
            verdict = "clean" if e.clean else f"{len(e.mismatches)} mismatch(es)"
            lines = [f"RECON     {e.venue}: {verdict}, {e.positions_compared} symbol(s)"]
            lines += [
                f"          {m.symbol}: ledger {m.ledger_quantity} venue {m.venue_quantity}"
                for m in e.mismatches
            ]
            return "\n".join(lines)
        case ev.MessageDeadLettered():
            return f"DEAD      {e.service} {e.reason.value} on {e.subject}: {e.error[:120]}"
        case ev.MarketTick():
            return f"TICK      {e.venue} {e.symbol} {e.price}"
        case ev.Signal() | ev.OrderIntent():
            kind = "SIGNAL" if isinstance(e, ev.Signal) else "INTENT"
            return (
                f"{kind:<9} {e.strategy} {e.venue} {e.symbol} {e.side.value} "
                f"{e.quantity} {e.order_type.value}"
            )
    return type(e).__name__


def render(event: ev.Event) -> str:
    corr = f" corr={event.correlation_id}" if event.correlation_id else ""
    return f"{_ts(event)} {_describe(event)}{corr}"
