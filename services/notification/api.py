"""The notification service's HTTP API: the message log for staff, the embedded SMS outbox, and the
internal route by which other services send a buyer an account message (a password reset code)."""

from __future__ import annotations

import json
import logging
import re
import uuid
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal

import aiosmtplib
from email_validator import EmailNotValidError, validate_email
from fastapi import Depends, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from services.notification.channels import OutboxSmsProvider, send_email
from services.notification.models import SentMessage
from services.notification.templates import render_account_message
from shared.http import ApiError, ErrorBody, require_internal
from shared.records import is_mainland_mobile
from shared.service import ServiceContext, context, create_service_app

app = create_service_app(
    "notification",
    title="Notifications",
    description="Every buyer-facing message (SMS and email), logged once per registration step.",
)
Ctx = Annotated[ServiceContext, Depends(context)]


class MessageOut(BaseModel):
    key: str
    channel: str
    registration_id: str
    step: str
    recipient: str
    subject: str
    body: str
    sent_at: datetime


@app.get("/v1/messages", response_model=list[MessageOut], tags=["messages"])
async def messages(
    ctx: Ctx,
    registration_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[SentMessage]:
    """The message log, newest first (recipients masked)."""
    query = select(SentMessage)
    if registration_id:
        query = query.where(SentMessage.registration_id == registration_id)
    async with ctx.db.sessions() as session:
        return list(await session.scalars(query.order_by(SentMessage.id.desc()).limit(limit)))


@app.get("/v1/sms-outbox", tags=["messages"])
async def sms_outbox(ctx: Ctx, limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> list[dict[str, Any]]:
    """The embedded SMS provider's outbox, newest first: what would have reached the phones."""
    path = ctx.settings.sms_outbox_path
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in reversed(lines[-limit:])]


# ------------------------------------------------------------------------------------------ internal

log = logging.getLogger(__name__)
E164 = re.compile(r"^\+[1-9]\d{6,14}$")


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PasswordResetParams(_Body):
    code: str = Field(pattern=r"^\d{4,8}$")
    minutes: int = Field(ge=1, le=1440)


class MessageIn(_Body):
    channel: Literal["sms", "email"]
    to: str = Field(max_length=254, description="an E.164 mobile (sms) or an email address (email)")
    template: Literal["password_reset"]
    params: PasswordResetParams
    key: str | None = Field(
        default=None,
        max_length=120,
        pattern=r"^[A-Za-z0-9:._-]+$",
        description="the caller's id of the message (SMS outbox key, email Message-ID)",
    )


class MessageAccepted(BaseModel):
    key: str
    channel: str


@cache
def _sms_provider(path: Path) -> OutboxSmsProvider:
    """One provider per outbox file, so that its lock orders this process's appends."""
    return OutboxSmsProvider(path)


def _recipient(channel: str, to: str) -> str:
    if channel == "sms":
        if not E164.match(to):
            raise ApiError(
                422, "invalid_recipient", "not an E.164 mobile number", "手机号码格式有误", field="to"
            )
        if not is_mainland_mobile(to):
            raise ApiError(
                422,
                "sms_unreachable",
                "SMS reaches Chinese mainland mobiles only",
                "短信仅能发送至中国大陆手机号码",
                field="to",
            )
        return to
    try:
        return validate_email(to, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ApiError(
            422, "invalid_recipient", "not an email address", "邮箱地址格式有误", field="to"
        ) from exc


@app.post(
    "/internal/messages",
    status_code=202,
    response_model=MessageAccepted,
    responses={code: {"model": ErrorBody} for code in (401, 422, 502)},
    dependencies=[Depends(require_internal)],
    tags=["internal"],
)
async def send_message(body: MessageIn, ctx: Ctx) -> MessageAccepted:
    """Send one account message (Chinese and English) by SMS or email, now. Nothing of it is logged or
    kept here but its key: the text carries a secret code."""
    to = _recipient(body.channel, body.to)
    key = body.key or f"message:{uuid.uuid4().hex}"
    subject, zh, en = render_account_message(body.template, body.params.model_dump(mode="json"))
    try:
        if body.channel == "sms":
            await _sms_provider(ctx.settings.sms_outbox_path).send(
                key=key, mobile=to, text=f"【进博会】{zh} {en}"
            )
        else:
            text = f"{zh}\n\n{en}\n\n— 中国国际进口博览局 CIIE Bureau"
            await send_email(ctx.settings, to=to, subject=subject, text=text, message_id_key=key)
    except (aiosmtplib.SMTPException, OSError) as exc:
        log.warning("%s message %s not sent by %s: %s", body.template, key, body.channel, type(exc).__name__)
        raise ApiError(
            502, "channel_unavailable", f"the {body.channel} channel is unavailable", "消息通道暂不可用"
        ) from exc
    log.info("%s message %s sent by %s", body.template, key, body.channel)
    return MessageAccepted(key=key, channel=body.channel)
