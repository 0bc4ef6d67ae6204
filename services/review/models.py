"""The review service's tables: the review queues and the audit log of decisions."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.contracts import ReviewKind
from shared.db import TYPE_ANNOTATION_MAP, service_metadata
from shared.types import Decision


class Base(DeclarativeBase):
    metadata = service_metadata()
    type_annotation_map = TYPE_ANNOTATION_MAP


class ReviewTask(Base):
    """A unit or a person waiting for (or given) a decision, in one review round; or closed without one."""

    __tablename__ = "review_tasks"
    __table_args__ = (
        UniqueConstraint("kind", "subject_id", "round"),
        Index("ix_review_tasks_queue", "kind", "mission", "decided_at", "opened_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    kind: Mapped[ReviewKind] = mapped_column()
    subject_id: Mapped[str] = mapped_column(String(16))
    round: Mapped[int] = mapped_column()
    workflow_id: Mapped[str] = mapped_column(String(64))
    edition: Mapped[str] = mapped_column(String(16))
    mission: Mapped[str] = mapped_column(String(64))
    sub_mission: Mapped[str | None] = mapped_column(String(96))
    unit_id: Mapped[str] = mapped_column(String(16))
    opened_at: Mapped[datetime] = mapped_column()
    decided_at: Mapped[datetime | None] = mapped_column()
    decision: Mapped[Decision | None] = mapped_column()
    # Taken off the queue without a decision: the buyer withdrew, or new data opened a new round.
    closed_at: Mapped[datetime | None] = mapped_column()
    close_reason: Mapped[str | None] = mapped_column(Text)


class DecisionRecord(Base):
    """The audit log: who decided what, when and why. Written once per (kind, subject, round)."""

    __tablename__ = "review_decisions"
    __table_args__ = (UniqueConstraint("kind", "subject_id", "round"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    kind: Mapped[ReviewKind] = mapped_column()
    subject_id: Mapped[str] = mapped_column(String(16), index=True)
    round: Mapped[int] = mapped_column()
    decision: Mapped[Decision] = mapped_column()
    reason: Mapped[str | None] = mapped_column(Text)
    reviewer: Mapped[str] = mapped_column(String(64))
    decided_at: Mapped[datetime] = mapped_column()
