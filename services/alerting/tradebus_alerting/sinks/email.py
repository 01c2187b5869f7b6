"""Email over SMTP with aiosmtplib (async; STARTTLS and login optional)."""

from __future__ import annotations

from email.message import EmailMessage

import aiosmtplib

from tradebus_common.config import EmailSinkConfig

from ..model import Notice
from .base import SinkError, secret
from .payloads import email_subject, email_text


class EmailSink:
    name = "email"

    def __init__(self, cfg: EmailSinkConfig) -> None:
        self.cfg = cfg
        self._password = secret(cfg.password_env, cfg.password_file) if cfg.username else ""

    @property
    def configured(self) -> bool:
        return bool(self.cfg.host and self.cfg.recipients)

    def message(self, notice: Notice) -> EmailMessage:
        msg = EmailMessage()
        msg["From"] = self.cfg.sender
        msg["To"] = ", ".join(self.cfg.recipients)
        msg["Subject"] = email_subject(notice)
        msg["X-Tradebus-Alert-Id"] = notice.alert.id
        msg.set_content(email_text(notice))
        return msg

    async def send(self, notice: Notice) -> None:
        cfg = self.cfg
        try:
            await aiosmtplib.send(
                self.message(notice),
                hostname=cfg.host,
                port=cfg.port,
                start_tls=cfg.starttls,
                username=cfg.username or None,
                password=self._password or None,
                timeout=cfg.timeout_s,
            )
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as e:
            # The exception text may quote the server's reply, never our password.
            raise SinkError(f"email: {type(e).__name__}: {str(e)[:200]}") from e

    async def close(self) -> None:
        return None
