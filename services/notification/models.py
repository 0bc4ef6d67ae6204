"""The notification service's table: every message, once per (key, channel)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import TYPE_ANNOTATION_MAP, service_metadata, utcnow


class Base(DeclarativeBase):
    metadata = service_metadata()
    type_annotation_map = TYPE_ANNOTATION_MAP


class SentMessage(Base):
    """A message to a buyer on one channel: written before it is sent (``pending``), marked ``sent`` once
    the mail server or SMS provider took it. A pending row with attempts is a message delayed by a
    channel that is down; Temporal retries it until it goes."""

    __tablename__ = "notification_messages"
    __table_args__ = (UniqueConstraint("key", "channel"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(120))
    channel: Mapped[str] = mapped_column(String(8))  # sms | email
    registration_id: Mapped[str] = mapped_column(String(16), index=True)
    mission: Mapped[str | None] = mapped_column(String(64), index=True)  # whose staff may read it
    step: Mapped[str] = mapped_column(String(32))
    recipient: Mapped[str] = mapped_column(String(254))  # masked: staff read the log, not the contact
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(8), default="sent")  # pending | sent
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(default=None)
