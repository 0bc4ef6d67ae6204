"""The notification service's HTTP API: the message log for staff, the embedded SMS outbox, and the
internal route by which other services send a buyer an account message (a password reset code, a
reissued certificate).

Who may call what: ``/healthz`` and the embedded provider's ``/v1/sms-outbox`` (what would have reached
the phones; a real SMS provider has no such route) are open; ``/internal/...`` needs the service token;
every other route needs a staff login (the review service's ``POST /v1/staff/sessions``).
"""

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
import httpx
from email_validator import EmailNotValidError, validate_email
from fastapi import Depends, Query, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import false, func, select

from services.notification.channels import OutboxSmsProvider, send_email
from services.notification.delivery import (
    LogConflict,
    Outgoing,
    begin,
    describe_failure,
    edition_of,
    finish,
)
from services.notification.models import SentMessage
from services.notification.templates import (
    SIGNATURE,
    AccountTemplate,
    pickup_params,
    render_account_message,
)
from shared.auth import CurrentStaff
from shared.contracts import Step
from shared.http import ApiError, ErrorBody, require_internal
from shared.metrics import MESSAGES
from shared.records import StaffSessionRecord, fetch_person, is_mainland_mobile
from shared.service import ServiceContext, context, create_service_app

app = create_service_app(
    "notification",
    title="Notifications",
    description="Every buyer-facing message (SMS and email), logged once per registration step.",
)
Ctx = Annotated[ServiceContext, Depends(context)]

log = logging.getLogger(__name__)

STAFF_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorBody} for code in (401, 403, 422, 503)}

# ------------------------------------------------------------------------------------------ the message log

# Roles that read every mission's messages; mission staff read their mission's, finance staff theirs
# if they have one (else every mission's), like the payment service's finance views.
READ_ALL_ROLES = ("administrator", "observer", "certificate_office")
MISSION_ROLES = ("mission_staff", "finance")

CERTIFICATE_REISSUED = "certificate_reissued"
# What the log's ``step`` holds: a registration step, or an account message that is logged.
LOGGED_STEPS = (*(step.value for step in Step), CERTIFICATE_REISSUED)


def not_allowed() -> ApiError:
    return ApiError(
        403,
        "messages_not_allowed",
        "this staff role may not read the message log",
        "该工作人员角色无权查看消息记录",
    )


def mission_scope(staff: StaffSessionRecord) -> tuple[bool, str | None]:
    """(scoped, mission): whether the staff member sees one mission only, and which."""
    if staff.role in READ_ALL_ROLES:
        return False, None
    if staff.role == "finance" and staff.mission is None:
        return False, None
    if staff.role in MISSION_ROLES:
        return True, staff.mission  # mission staff without a mission see nothing
    raise not_allowed()


class MessageOut(BaseModel):
    id: int
    key: str
    channel: str
    registration_id: str
    mission: str | None
    step: str
    recipient: str = Field(description="masked: the log is for following delivery, not for contacts")
    subject: str
    body: str
    status: Literal["pending", "sent"] = Field(
        description="pending: logged and not yet taken by the mail server or SMS provider (retried)"
    )
    attempts: int
    last_error: str | None = Field(description="why the last failed attempt failed (type and reason)")
    created_at: datetime
    sent_at: datetime | None


@app.get("/v1/messages", response_model=list[MessageOut], responses=STAFF_ERRORS, tags=["messages"])
async def messages(
    ctx: Ctx,
    staff: CurrentStaff,
    response: Response,
    registration_id: Annotated[str | None, Query(max_length=16)] = None,
    status: Literal["pending", "sent"] | None = None,
    step: Annotated[str | None, Query(max_length=32, description="a step, or certificate_reissued")] = None,
    channel: Literal["sms", "email"] | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[SentMessage]:
    """The message log, newest first, in pages (the total is in the X-Total-Count header); recipients
    masked. Administrators, observers and the certificate office read every mission's messages;
    mission staff their mission's; finance staff their mission's if they have one, else every one's."""
    scoped, mission = mission_scope(staff)
    if step is not None and step not in LOGGED_STEPS:
        raise ApiError(422, "invalid_input", f"no step {step!r}", "消息步骤不存在", field="step")
    query = select(SentMessage)
    if scoped:
        # Mission staff without a mission see nothing (not the messages whose mission is unknown).
        query = query.where(SentMessage.mission == mission if mission is not None else false())
    if registration_id:
        query = query.where(SentMessage.registration_id == registration_id)
    if status:
        query = query.where(SentMessage.status == status)
    if step:
        query = query.where(SentMessage.step == step)
    if channel:
        query = query.where(SentMessage.channel == channel)
    async with ctx.db.sessions() as session:
        total = await session.scalar(select(func.count()).select_from(query.subquery()))
        rows = await session.scalars(
            query.order_by(SentMessage.created_at.desc(), SentMessage.id.desc()).limit(limit).offset(offset)
        )
        response.headers["X-Total-Count"] = str(total or 0)
        return list(rows)


@app.get("/v1/sms-outbox", tags=["messages"])
async def sms_outbox(ctx: Ctx, limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> list[dict[str, Any]]:
    """The embedded SMS provider's outbox, newest first: what would have reached the phones."""
    path = ctx.settings.sms_outbox_path
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in reversed(lines[-limit:])]


# ------------------------------------------------------------------------------------------ internal

E164 = re.compile(r"^\+[1-9]\d{6,14}$")


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PasswordResetParams(_Body):
    code: str = Field(pattern=r"^\d{4,8}$")
    minutes: int = Field(ge=1, le=1440)


class CertificateReissuedParams(_Body):
    registration_id: str = Field(min_length=1, max_length=16, pattern=r"^[A-Z0-9]+$")
    certificate_no: str = Field(min_length=1, max_length=24, pattern=r"^[A-Z0-9-]+$")
    serial: int = Field(ge=2, le=99, description="the new card's serial (the first card is 1)")


class _MessageBase(_Body):
    channel: Literal["sms", "email"]
    to: str = Field(max_length=254, description="an E.164 mobile (sms) or an email address (email)")
    key: str | None = Field(
        default=None,
        max_length=120,
        pattern=r"^[A-Za-z0-9:._-]+$",
        description="the caller's id of the message (SMS outbox key, email Message-ID); a message sent "
        "with a key is not sent again with it (certificate_reissued; default: the card and serial)",
    )


class PasswordResetMessage(_MessageBase):
    """A password reset code: sent at once, never logged (the text carries a secret)."""

    template: Literal["password_reset"]
    params: PasswordResetParams


class CertificateReissuedMessage(_MessageBase):
    """A lost card reissued (the certificate service): the old card's QR no longer admits, the new card
    is collected at the certificate centre. Logged like a step's message, once per key and channel."""

    template: Literal["certificate_reissued"]
    params: CertificateReissuedParams


MessageIn = Annotated[PasswordResetMessage | CertificateReissuedMessage, Field(discriminator="template")]


class MessageAccepted(BaseModel):
    key: str
    channel: str


@cache
def _sms_provider(path: Path) -> OutboxSmsProvider:
    """One provider per outbox file, so that it reads the file's keys once and then only what is new."""
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


def channel_unavailable(channel: str) -> ApiError:
    return ApiError(502, "channel_unavailable", f"the {channel} channel is unavailable", "消息通道暂不可用")


def _text(channel: str, zh: str, en: str) -> str:
    if channel == "sms":
        return f"【进博会】{zh} {en}"
    return f"{zh}\n\n{en}\n\n{SIGNATURE}"


async def _deliver(ctx: ServiceContext, channel: str, to: str, key: str, subject: str, text: str) -> None:
    if channel == "sms":
        await _sms_provider(ctx.settings.sms_outbox_path).send(key=key, mobile=to, text=text)
    else:
        await send_email(ctx.settings, to=to, subject=subject, text=text, message_id_key=key)


async def _reissue_params(
    ctx: ServiceContext, params: CertificateReissuedParams
) -> tuple[str, dict[str, str]]:
    """The person's mission (whose staff read the log) and the message's params with the certificate
    centre's place and hours from the person's edition."""
    try:
        person = await fetch_person(ctx, params.registration_id)
    except httpx.HTTPStatusError as exc:
        if exc.response.status_code == 404:
            raise ApiError(
                422,
                "unknown_registration",
                "no such registration",
                "报名不存在",
                field="params.registration_id",
            ) from exc
        raise _registration_unavailable() from exc
    except httpx.HTTPError as exc:
        raise _registration_unavailable() from exc
    values = pickup_params(edition_of(ctx, person.edition)) | {
        name: str(value) for name, value in params.model_dump(mode="json").items()
    }
    return person.mission, values


def _registration_unavailable() -> ApiError:
    return ApiError(
        502,
        "registration_unavailable",
        "the registration service is not answering; try again",
        "报名服务暂时无法访问，请稍后重试",
    )


@app.post(
    "/internal/messages",
    status_code=202,
    response_model=MessageAccepted,
    responses={code: {"model": ErrorBody} for code in (401, 422, 502)},
    dependencies=[Depends(require_internal)],
    tags=["internal"],
)
async def send_message(body: MessageIn, ctx: Ctx) -> MessageAccepted:
    """Send one account message (Chinese and English) by SMS or email, now.

    ``password_reset`` (params ``code``, ``minutes``): nothing of it is logged or kept here but its key,
    since the text carries a secret code. ``certificate_reissued`` (params ``registration_id``,
    ``certificate_no``, ``serial``): logged for staff like a step's message, and sent once per key and
    channel however often it is asked for (the key defaults to the card and its serial)."""
    to = _recipient(body.channel, body.to)
    template: AccountTemplate = body.template
    if isinstance(body, CertificateReissuedMessage):
        key = body.key or f"certificate-reissued.{body.params.certificate_no}.{body.params.serial}"
        mission, params = await _reissue_params(ctx, body.params)
        subject, zh, en = render_account_message(template, params)
        outgoing = Outgoing(
            key=key,
            channel=body.channel,
            registration_id=body.params.registration_id,
            mission=mission,
            step=CERTIFICATE_REISSUED,
            recipient=to,
            subject=subject,
            body=_text(body.channel, zh, en),
        )
        try:
            row_id = await begin(ctx.db, outgoing)
        except LogConflict as exc:  # the same message asked for twice at once: the caller tries again
            raise channel_unavailable(body.channel) from exc
        if row_id is None:
            log.info("%s message %s was sent by %s already", template, key, body.channel)
            return MessageAccepted(key=key, channel=body.channel)
    else:
        key = body.key or f"message:{uuid.uuid4().hex}"
        params = {name: str(value) for name, value in body.params.model_dump(mode="json").items()}
        subject, zh, en = render_account_message(template, params)
        row_id = None
    try:
        await _deliver(ctx, body.channel, to, key, subject, _text(body.channel, zh, en))
    except (aiosmtplib.SMTPException, OSError) as exc:
        error = describe_failure(exc, to)
        if row_id is not None:
            await finish(ctx.db, row_id, error)
        log.warning("%s message %s not sent by %s: %s", template, key, body.channel, error)
        MESSAGES.labels(body.channel, "failed").inc()
        raise channel_unavailable(body.channel) from exc
    if row_id is not None:
        await finish(ctx.db, row_id)
    log.info("%s message %s sent by %s", template, key, body.channel)
    MESSAGES.labels(body.channel, "sent").inc()
    return MessageAccepted(key=key, channel=body.channel)
