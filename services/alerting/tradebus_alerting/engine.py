"""The alert engine: throttle, record, dispatch; summaries and escalations on each tick."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from tradebus_common.config import AlertingConfig
from tradebus_common.events import Alert, AlertAcknowledged, Event, utcnow
from tradebus_common.ids import derive_id

from .delivery import Dispatcher
from .model import AlertRecord, DedupState, Notice, NoticeKind
from .routing import escalation_due, in_window, route, summary_due
from .store import AlertStore

log = logging.getLogger("tradebus.alerting")

Publish = Callable[[Event], Awaitable[Any]]


class AlertEngine:
    def __init__(
        self,
        cfg: AlertingConfig,
        store: AlertStore,
        dispatcher: Dispatcher,
        publish: Publish,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.cfg = cfg
        self.store = store
        self.dispatcher = dispatcher
        self.publish = publish
        self.clock = clock
        self.records: dict[str, AlertRecord] = {}
        self.dedup: dict[str, DedupState] = {}
        dispatcher.on_done = self._delivery_done

    async def load(self) -> None:
        """Rebuild memory from KV and resume notices whose deliveries had not finished."""
        for rec in await self.store.all("alert", AlertRecord):
            self.records[rec.alert.id] = rec
        for state in await self.store.all("dedup", DedupState):
            self.dedup[state.key] = state
        for notice in await self.store.all("notice", Notice):
            self.dispatcher.dispatch(notice)

    # --- incoming alerts ---------------------------------------------------------------

    async def handle(self, alert: Alert) -> None:
        if alert.id in self.records:  # redelivered after it was recorded: deliveries resume
            return
        if alert.resolved:
            await self._resolve(alert)
            return
        key = alert.dedup_key or alert.id
        state = self.dedup.get(key)
        now = self.clock()
        if state is not None and in_window(state, now, self.cfg.dedup_window_s):
            await self._suppress(key, state, alert)
            return
        repeats = state.suppressed if state else 0  # a window that closed before any tick
        await self._send(alert, NoticeKind.ALERT, route(self.cfg, alert.severity), repeats)
        new = DedupState(key=key, window_start=now, alert_id=alert.id, last_alert_id=alert.id)
        await self._put_dedup(new)

    async def _suppress(self, key: str, state: DedupState, alert: Alert) -> None:
        if state.last_alert_id == alert.id:  # the same suppressed alert redelivered
            return
        state.suppressed += 1
        state.last_alert_id = alert.id
        state.last = alert
        await self.store.put_dedup(key, state)

    async def _resolve(self, alert: Alert) -> None:
        key = alert.dedup_key or alert.id
        state = self.dedup.pop(key, None)
        sinks = route(self.cfg, alert.severity)
        opened = self.records.get(state.alert_id) if state else None
        if opened is not None:  # tell everyone who heard the trigger (PagerDuty resolves)
            sinks += [s for s in opened.deliveries if s not in sinks]
            opened.resolved = True
            await self.store.put_record(opened)
        await self._send(alert, NoticeKind.RESOLVE, sinks, state.suppressed if state else 0)
        if state is not None:
            await self.store.delete_dedup(key)

    async def _send(self, alert: Alert, kind: NoticeKind, sinks: list[str], repeats: int) -> None:
        notice = Notice(id=alert.id, kind=kind, alert=alert, repeat_count=repeats, sinks=sinks)
        record = AlertRecord(
            alert=alert,
            sent_at=self.clock(),
            resolved=alert.resolved,
            deliveries={s: "pending" for s in sinks},
        )
        # Durable before the consumer acks: a crash after this resumes the deliveries.
        await self.store.put_notice(notice)
        await self.store.put_record(record)
        self.records[alert.id] = record
        self.dispatcher.dispatch(notice)

    async def _put_dedup(self, state: DedupState) -> None:
        self.dedup[state.key] = state
        await self.store.put_dedup(state.key, state)

    async def _delivery_done(self, notice: Notice, sink: str, outcome: str) -> None:
        record = self.records.get(notice.id)
        if record is not None and notice.kind in (NoticeKind.ALERT, NoticeKind.RESOLVE):
            record.deliveries[sink] = outcome
            await self.store.put_record(record)

    # --- time-driven: summaries and escalations ---------------------------------------

    async def tick(self) -> None:
        now = self.clock()
        for state in list(self.dedup.values()):
            if summary_due(state, now, self.cfg.dedup_window_s):
                await self._summarise(state, now)
        horizon = now - timedelta(days=self.cfg.state_ttl_days)
        for record in list(self.records.values()):
            if record.sent_at < horizon:  # KV has expired it too (the bucket's TTL)
                del self.records[record.alert.id]
            elif escalation_due(record, now, self.cfg):
                await self._escalate(record)

    async def _summarise(self, state: DedupState, now: datetime) -> None:
        alert = state.last or self.records[state.alert_id].alert
        notice = Notice(
            id=derive_id(state.alert_id, "repeat", state.window_start.isoformat()),
            kind=NoticeKind.REPEAT,
            alert=alert,
            repeat_count=state.suppressed,
            sinks=route(self.cfg, alert.severity),
        )
        await self.store.put_notice(notice)
        # The summary opens the next window, so a storm that goes on sends one per window.
        state.window_start, state.suppressed, state.last = now, 0, None
        await self.store.put_dedup(state.key, state)
        self.dispatcher.dispatch(notice)

    async def _escalate(self, record: AlertRecord) -> None:
        record.escalations += 1
        notice = Notice(
            id=derive_id(record.alert.id, "escalation", record.escalations),
            kind=NoticeKind.ESCALATION,
            alert=record.alert,
            escalation=record.escalations,
            sinks=route_escalation(self.cfg),
        )
        await self.store.put_notice(notice)
        await self.store.put_record(record)
        log.warning(
            "unacknowledged alert escalated",
            extra={"alert_id": record.alert.id, "escalation": record.escalations},
        )
        self.dispatcher.dispatch(notice)

    # --- operators ---------------------------------------------------------------------

    async def ack(self, alert_id: str, operator: str) -> AlertRecord | None:
        record = self.records.get(alert_id)
        if record is None:
            return None
        if not record.acked_by:
            record.acked_by, record.acked_at = operator, self.clock()
            await self.store.put_record(record)
            await self.publish(
                AlertAcknowledged(
                    id=derive_id(alert_id, "ack"),
                    alert_id=alert_id,
                    operator=operator,
                    dedup_key=record.alert.dedup_key,
                    correlation_id=record.alert.correlation_id,
                    causation_id=alert_id,
                )
            )
        return record

    def list(self, unacked_only: bool = False, limit: int = 50) -> list[AlertRecord]:
        recs = [
            r
            for r in self.records.values()
            if not unacked_only or (not r.acked_by and not r.alert.resolved and not r.resolved)
        ]
        recs.sort(key=lambda r: r.sent_at, reverse=True)
        return recs[:limit]


def route_escalation(cfg: AlertingConfig) -> list[str]:
    return ["log", *[s for s in cfg.escalation_sinks if s != "log"]]
