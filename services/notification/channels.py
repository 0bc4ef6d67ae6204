"""Where messages go: SMS through a provider adapter, email through SMTP (aiosmtplib).

Both are idempotent by the message's key, so that a send repeated after a crash (sent, but not yet
marked sent in the log) reaches nobody twice: SMS providers accept a client message id and drop a
repeat of it, and the email's Message-ID is derived from the key, which mail stores deduplicate on.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import threading
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol

import aiosmtplib

from shared.db import utcnow
from shared.settings import Settings

# Below the activities' 30 s start-to-close timeout, so that a mail server that hangs fails the attempt
# here, where the failure is logged, rather than the attempt timing out unrecorded.
SMTP_TIMEOUT_SECONDS = 15


class SmsProvider(Protocol):
    async def send(self, *, key: str, mobile: str, text: str) -> None:
        """Send ``text`` to ``mobile``. ``key`` is the client message id: a second send with the same key
        must not reach the phone again (real providers accept one; the embedded outbox honours it)."""
        ...


class OutboxSmsProvider:
    """The embedded SMS provider: appends each text to a JSON-lines file a person can read (and
    the notification API lists). A real adapter calls the carrier's API with the same arguments.

    A key already in the outbox is not appended again. The API (account messages) and the worker (step
    messages) are separate processes writing the same file, so appends hold an exclusive file lock, and
    the keys are re-read from where this instance last read to: what the other process wrote is seen.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()  # the appends run in worker threads
        self._keys: set[str] = set()
        self._read_to = 0  # the outbox's bytes up to here are in _keys

    async def send(self, *, key: str, mobile: str, text: str) -> None:
        line = json.dumps(
            {"key": key, "to": mobile, "text": text, "at": utcnow().isoformat()}, ensure_ascii=False
        )
        await asyncio.to_thread(self._append_once, key, line)

    def _append_once(self, key: str, line: str) -> bool:
        """Append ``line`` unless ``key`` is in the outbox already; whether it was appended."""
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a+b") as outbox:
                fcntl.flock(outbox, fcntl.LOCK_EX)  # released when the file is closed
                end = outbox.seek(0, 2)
                if end < self._read_to:  # emptied or replaced behind our back: read it all again
                    self._keys.clear()
                    self._read_to = 0
                outbox.seek(self._read_to)
                for raw in outbox.read(end - self._read_to).splitlines():
                    try:
                        self._keys.add(str(json.loads(raw)["key"]))
                    except (ValueError, KeyError, TypeError):
                        continue  # a line someone edited by hand: not ours to judge
                self._read_to = end
                if key in self._keys:
                    return False
                outbox.write((line + "\n").encode("utf-8"))
                outbox.flush()
                self._keys.add(key)
                self._read_to = outbox.tell()
                return True


def message_id(key: str) -> str:
    """The email's Message-ID for a message key: the same key, the same id."""
    return f"<{key.replace(':', '.')}@expo-buyers>"


async def send_email(settings: Settings, *, to: str, subject: str, text: str, message_id_key: str) -> None:
    message = EmailMessage()
    message["From"] = settings.mail_from
    message["To"] = to
    message["Subject"] = subject
    # A stable Message-ID lets mail stores drop a duplicate if an activity retry re-sends it.
    message["Message-ID"] = message_id(message_id_key)
    message.set_content(text)
    await aiosmtplib.send(
        message,
        hostname=settings.smtp_host,
        port=settings.smtp_port,
        username=settings.smtp_username,
        password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
        start_tls=settings.smtp_starttls,
        timeout=SMTP_TIMEOUT_SECONDS,
    )
