"""The message log as delivery goes: a row is written ``pending`` before a message is sent on a channel,
each attempt counted, a failure recorded (its type and a short reason, never the contact), and the row
marked ``sent`` once the SMS provider or the mail server took it. A channel already ``sent`` for a key
is not sent again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import aiosmtplib
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from services.notification.models import SentMessage
from shared.catalogue import Edition, load_edition
from shared.db import Database, utcnow
from shared.service import ServiceContext

SUBJECT_LENGTH = 200  # SentMessage.subject
ERROR_LENGTH = 200  # SentMessage.last_error


def mask(contact: str) -> str:
    if "@" in contact:
        name, domain = contact.split("@", 1)
        return f"{name[:2]}***@{domain}"
    return f"{contact[:5]}****{contact[-2:]}"


# Anything in an error text that could be a contact: email addresses and long digit runs (phones).
_CONTACTS = re.compile(r"[^\s<>()\[\],;:\"']+@[^\s<>()\[\],;:\"']+|\+?\d[\d -]{6,}\d")


def describe_failure(exc: BaseException, *contacts: str) -> str:
    """The exception's type and a short reason, for the log staff read and for Temporal's failure: an
    SMTP reply code and text, an OS error's text, or the message, with anything like a contact taken out."""
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        reason = f"{exc.code} {exc.message}"
    elif isinstance(exc, OSError) and exc.strerror:
        reason = exc.strerror
    else:
        reason = str(exc)
    for contact in contacts:
        if contact:
            reason = reason.replace(contact, "…")
    reason = " ".join(_CONTACTS.sub("…", reason).split())
    text = f"{type(exc).__name__}: {reason}" if reason else type(exc).__name__
    return text if len(text) <= ERROR_LENGTH else text[: ERROR_LENGTH - 1] + "…"


def edition_of(ctx: ServiceContext, code: str) -> Edition:
    """A person's edition, with the deployment's rehearsal shift if it is the edition served."""
    return ctx.edition if code == ctx.settings.edition else load_edition(code)


@dataclass(frozen=True)
class Outgoing:
    """One message on one channel: what is logged (the recipient masked) and sent."""

    key: str
    channel: str  # sms | email
    registration_id: str
    mission: str | None
    step: str  # a Step value, or an account message's template (certificate_reissued)
    recipient: str
    subject: str
    body: str


class LogConflict(Exception):
    """Another attempt kept inserting the same row: let the caller try again later."""


async def begin(db: Database, message: Outgoing) -> int | None:
    """Log an attempt (``pending``, attempts + 1) before anything is sent: the row's id, or None if the
    channel was sent for the key already."""
    for _ in range(2):  # a concurrent first attempt may insert the row between our read and insert
        try:
            async with db.transaction() as session:
                row = await session.scalar(
                    select(SentMessage)
                    .where(SentMessage.key == message.key, SentMessage.channel == message.channel)
                    .with_for_update()
                )
                if row is None:
                    row = SentMessage(
                        key=message.key,
                        channel=message.channel,
                        registration_id=message.registration_id,
                        step=message.step,
                        status="pending",
                        attempts=0,
                        created_at=utcnow(),
                    )
                    session.add(row)
                elif row.status == "sent":
                    return None
                # The log shows what goes out on this attempt (a contact may have changed meanwhile).
                row.mission = message.mission
                row.recipient = mask(message.recipient)
                row.subject = message.subject[:SUBJECT_LENGTH]
                row.body = message.body
                row.attempts += 1
                await session.flush()
                return row.id
        except IntegrityError:
            continue
    raise LogConflict(f"message {message.key} ({message.channel}) is being logged by another attempt")


async def finish(db: Database, row_id: int, error: str | None = None) -> None:
    """Mark the row ``sent``, or record why this attempt failed (it stays ``pending``)."""
    async with db.transaction() as session:
        row = await session.get(SentMessage, row_id, with_for_update=True)
        if row is None:  # deleted by hand meanwhile: nothing to mark
            return
        if error is None:
            row.status, row.sent_at = "sent", utcnow()
        elif row.status != "sent":  # a concurrent attempt may have got it through meanwhile
            row.last_error = error
