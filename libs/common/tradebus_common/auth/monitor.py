"""`tradebus auth monitor`: a refused publish or subscribe becomes an alert.

nats-server refuses a subject outside an identity's permissions: the client gets an async
`-ERR 'Permissions Violation ...'` (which a spoofing client will hardly report) and the
server logs `... jwt:<user key> - Publish Violation - Subject "..."`. This follows that log,
names the identity from the public key (nats/identities.json) and publishes an Alert:
critical for trading-control subjects (a spoofed resume, mode or accept), error otherwise.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from nats.aio.client import Client as NATS

from .. import subjects
from ..bus import MSG_ID, raise_if_cancelling
from ..codec import encode
from ..events import Alert, AlertCode, Severity
from ..ids import derive_id
from .identities import MONITOR_SOURCE

log = logging.getLogger("tradebus.auth.monitor")

_VIOLATION = re.compile(
    r"(?P<kind>Publish|Subscription) Violation.*?Subject \"(?P<subject>[^\"]*)\""
)
_USER = re.compile(r"jwt:(?P<user>U[A-Z2-7]{55})")
POLL_S = 0.2


@dataclass(frozen=True)
class Violation:
    kind: str  # publish | subscribe
    subject: str
    identity: str  # the identity's name, or its public key when unknown
    line: str


def parse_violation(line: str, identities: dict[str, str]) -> Violation | None:
    """One nats-server log line -> a Violation, or None for any other line.
    `identities` maps user public keys to identity names."""
    m = _VIOLATION.search(line)
    if m is None:
        return None
    found = _USER.search(line)
    user = found.group("user") if found else "unknown"
    kind = "publish" if m.group("kind") == "Publish" else "subscribe"
    return Violation(kind, m.group("subject"), identities.get(user, user), line.strip())


def violation_alert(v: Violation) -> Alert:
    control = v.kind == "publish" and v.subject.startswith(subjects.CONTROL_PREFIX)
    severity = Severity.CRITICAL if control else Severity.ERROR
    what = "a trading-control command" if control else "a subject outside its permissions"
    return Alert(
        # The log line carries a timestamp: one alert per refusal, and re-reading the same
        # log after a restart does not alert twice (the stream's duplicate window).
        id=derive_id("auth-violation", v.line),
        severity=severity,
        source=MONITOR_SOURCE,
        code=AlertCode.PERMISSION_VIOLATION,
        message=f"NATS refused {v.identity}: {v.kind} to {v.subject} ({what})",
        context={"identity": v.identity, "subject": v.subject, "kind": v.kind},
        dedup_key=f"{MONITOR_SOURCE}:{v.identity}:{v.kind}:{v.subject}",
    )


async def follow(path: Path, from_start: bool = False) -> AsyncIterator[str]:
    """Lines appended to a log file, like `tail -F` (survives truncation and rotation)."""
    while not path.exists():  # noqa: ASYNC110 - a file has no event to await (no inotify)
        await asyncio.sleep(POLL_S)
    f = path.open("r", errors="replace")
    try:
        if not from_start:
            f.seek(0, 2)
        inode = path.stat().st_ino
        partial = ""
        while True:
            chunk = f.readline()
            if chunk:
                partial += chunk
                if partial.endswith("\n"):
                    yield partial
                    partial = ""
                continue
            if _rotated(path, inode, f.tell()):
                f.close()
                f = path.open("r", errors="replace")
                inode = path.stat().st_ino
                continue
            await asyncio.sleep(POLL_S)
    finally:
        f.close()


def _rotated(path: Path, inode: int, offset: int) -> bool:
    try:
        st = path.stat()
    except FileNotFoundError:
        return False
    return st.st_ino != inode or st.st_size < offset


async def run_monitor(
    nc: NATS, log_path: Path, identities: dict[str, str], from_start: bool
) -> None:
    js = nc.jetstream()
    async for line in follow(log_path, from_start):
        v = parse_violation(line, identities)
        if v is None:
            continue
        alert = violation_alert(v)
        log.warning("permission violation", extra={"identity": v.identity, "subject": v.subject})
        await js.publish(subjects.subject_for(alert), encode(alert), headers={MSG_ID: alert.id})
        raise_if_cancelling()  # nats-py's request can swallow a cancellation that races it
