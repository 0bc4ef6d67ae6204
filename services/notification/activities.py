"""The notification activity: one message per registration step and channel, however often it runs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import select
from temporalio import activity

from services.notification.channels import OutboxSmsProvider, SmsProvider, send_email
from services.notification.models import SentMessage
from services.notification.templates import render
from shared import contracts as c
from shared.records import fetch_person, is_mainland_mobile
from shared.service import ServiceContext


def mask(contact: str) -> str:
    if "@" in contact:
        name, domain = contact.split("@", 1)
        return f"{name[:2]}***@{domain}"
    return f"{contact[:5]}****{contact[-2:]}"


class NotificationActivities:
    def __init__(self, ctx: ServiceContext, sms: SmsProvider) -> None:
        self.ctx = ctx
        self.sms = sms

    async def _already_sent(self, key: str) -> set[str]:
        async with self.ctx.db.sessions() as session:
            return set(await session.scalars(select(SentMessage.channel).where(SentMessage.key == key)))

    async def _log(self, request: c.Notify, channel: str, recipient: str, subject: str, body: str) -> None:
        async with self.ctx.db.transaction() as session:
            session.add(
                SentMessage(
                    key=request.key,
                    channel=channel,
                    registration_id=request.registration_id,
                    step=request.step.value,
                    recipient=mask(recipient),
                    subject=subject,
                    body=body,
                )
            )

    @activity.defn(name=c.NOTIFY.name)
    async def notify(self, request: c.Notify) -> c.Notified:
        """SMS to mainland mobiles, email to everyone (FAQ IX). A channel already sent for this key is
        skipped; a mail or SMS server that is down fails the attempt, and Temporal retries it."""
        sent = await self._already_sent(request.key)
        person = await fetch_person(self.ctx, request.registration_id)
        subject, zh, en = render(request.step, {"registration_id": request.registration_id, **request.params})
        sms_due = is_mainland_mobile(person.mobile)
        if sms_due and "sms" not in sent:
            text = f"【进博会】{zh}"
            await self.sms.send(key=request.key, mobile=person.mobile, text=text)
            await self._log(request, "sms", person.mobile, subject, text)
        if "email" not in sent:
            body = f"{person.name}：\n\n{zh}\n\n{en}\n\n— 中国国际进口博览局 CIIE Bureau"
            await send_email(
                self.ctx.settings, to=person.email, subject=subject, text=body, message_id_key=request.key
            )
            await self._log(request, "email", person.email, subject, body)
        return c.Notified(sms_sent=sms_due, email_sent=True)


def activities(ctx: ServiceContext) -> Sequence[Callable[..., Any]]:
    acts = NotificationActivities(ctx, OutboxSmsProvider(ctx.settings.sms_outbox_path))
    return [acts.notify]
