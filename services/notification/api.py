"""The notification service's HTTP API: the message log for staff, and the embedded SMS outbox."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Query
from pydantic import BaseModel
from sqlalchemy import select

from services.notification.models import SentMessage
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
