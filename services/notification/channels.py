"""Where messages go: SMS through a provider adapter, email through SMTP (aiosmtplib)."""

from __future__ import annotations

import asyncio
import json
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol

import aiosmtplib

from shared.db import utcnow
from shared.settings import Settings


class SmsProvider(Protocol):
    async def send(self, *, key: str, mobile: str, text: str) -> None: ...


class OutboxSmsProvider:
    """The embedded SMS provider: appends each text to a JSON-lines file a person can read (and
    the notification API lists). A real adapter calls the carrier's API with the same arguments."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = asyncio.Lock()

    async def send(self, *, key: str, mobile: str, text: str) -> None:
        line = json.dumps(
            {"key": key, "to": mobile, "text": text, "at": utcnow().isoformat()}, ensure_ascii=False
        )
        async with self._lock:
            await asyncio.to_thread(self._append, line)

    def _append(self, line: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as outbox:
            outbox.write(line + "\n")


async def send_email(settings: Settings, *, to: str, subject: str, text: str, message_id_key: str) -> None:
    message = EmailMessage()
    message["From"] = settings.mail_from
    message["To"] = to
    message["Subject"] = subject
    # A stable Message-ID lets mail systems drop a duplicate if an activity retry re-sends it.
    message["Message-ID"] = f"<{message_id_key.replace(':', '.')}@expo-buyers>"
    message.set_content(text)
    await aiosmtplib.send(
        message,
        hostname=settings.smtp_host,
        port=settings.smtp_port,
        username=settings.smtp_username,
        password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
        start_tls=settings.smtp_starttls,
        timeout=30,
    )
