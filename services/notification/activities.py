"""The notification activity: one message per registration step and channel, however often it runs.

Each channel due is logged before it is sent (``pending``, the attempt counted) and marked ``sent`` once
the SMS provider or the mail server took it (``services/notification/delivery.py``). A failure is
recorded on the row and fails the attempt, so Temporal retries it (without limit, backing off to a
minute) and staff see the delay in the message log. A crash between sending and marking sent repeats
the send on the next attempt: the SMS provider and the mail store drop the repeat by the message's key.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from services.notification.channels import OutboxSmsProvider, SmsProvider, send_email
from services.notification.delivery import (
    LogConflict,
    Outgoing,
    begin,
    describe_failure,
    edition_of,
    finish,
)
from services.notification.templates import SIGNATURE, pickup_params, render
from shared import contracts as c
from shared.metrics import MESSAGES
from shared.records import PersonRecord, fetch_person, is_mainland_mobile
from shared.service import ServiceContext
from shared.types import DeliveryMethod

log = logging.getLogger(__name__)


class NotificationActivities:
    def __init__(self, ctx: ServiceContext, sms: SmsProvider) -> None:
        self.ctx = ctx
        self.sms = sms

    def _messages(self, request: c.Notify, person: PersonRecord) -> list[Outgoing]:
        params = {"registration_id": request.registration_id, **request.params}
        if (
            request.step is c.Step.DISPATCHED
            and params.get("delivery_method") == DeliveryMethod.ONSITE_PICKUP
        ):
            # Where and when come from the edition here, not from the workflow: its inputs stay ids.
            params = pickup_params(edition_of(self.ctx, person.edition)) | params

        def outgoing(channel: str, to: str, subject: str, body: str) -> Outgoing:
            return Outgoing(
                key=request.key,
                channel=channel,
                registration_id=request.registration_id,
                mission=person.mission,
                step=request.step.value,
                recipient=to,
                subject=subject,
                body=body,
            )

        messages: list[Outgoing] = []
        if is_mainland_mobile(person.mobile):  # FAQ IX: SMS reaches Chinese mainland mobiles only
            subject, zh, _ = render(request.step, params, channel="sms")
            messages.append(outgoing("sms", person.mobile, subject, f"【进博会】{zh}"))
        subject, zh, en = render(request.step, params, channel="email")
        body = f"{person.name}：\n\n{zh}\n\n{en}\n\n{SIGNATURE}"
        messages.append(outgoing("email", person.email, subject, body))
        return messages

    async def _send(self, message: Outgoing) -> None:
        if message.channel == "sms":
            await self.sms.send(key=message.key, mobile=message.recipient, text=message.body)
        else:
            await send_email(
                self.ctx.settings,
                to=message.recipient,
                subject=message.subject,
                text=message.body,
                message_id_key=message.key,
            )

    @activity.defn(name=c.NOTIFY.name)
    async def notify(self, request: c.Notify) -> c.Notified:
        """SMS to mainland mobiles, email to everyone (FAQ IX). A channel already sent for this key is
        skipped; a mail or SMS server that is down fails the attempt, and Temporal retries it."""
        person = await fetch_person(self.ctx, request.registration_id)
        messages = self._messages(request, person)
        failures: list[str] = []
        for message in messages:
            try:
                row_id = await begin(self.ctx.db, message)
            except LogConflict:
                failures.append(f"{message.channel}: logged by a concurrent attempt")
                continue
            if row_id is None:
                continue
            try:
                await self._send(message)
            except Exception as exc:
                # Every channel is tried on every attempt: a mail server that is down holds up no SMS.
                error = describe_failure(exc, person.mobile, person.email)
                await finish(self.ctx.db, row_id, error)
                log.warning("message %s not sent by %s: %s", request.key, message.channel, error)
                MESSAGES.labels(message.channel, "failed").inc()
                failures.append(f"{message.channel}: {error}")
                continue
            await finish(self.ctx.db, row_id)
            log.info("message %s sent by %s", request.key, message.channel)
            MESSAGES.labels(message.channel, "sent").inc()
        if failures:
            # Raised without its cause: Temporal keeps the cause chain in the workflow's history, and
            # the original exception may name the recipient.
            raise ApplicationError("; ".join(failures), type="channel_unavailable") from None
        return c.Notified(sms_sent=any(m.channel == "sms" for m in messages), email_sent=True)


def activities(ctx: ServiceContext) -> Sequence[Callable[..., Any]]:
    acts = NotificationActivities(ctx, OutboxSmsProvider(ctx.settings.sms_outbox_path))
    return [acts.notify]
