"""The review service's tables: the review queues and the audit log of decisions."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.contracts import ReviewKind
from shared.db import TYPE_ANNOTATION_MAP, service_metadata, utcnow
from shared.types import Decision, UnitKind


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
    unit_id: Mapped[str] = mapped_column(String(16), index=True)  # a unit's rounds are renamed together
    unit_kind: Mapped[UnitKind | None] = mapped_column()  # None in rows from before it was recorded
    # What the queue shows instead of bare ids, as registered when the round opened (the unit's name
    # is brought up to date on open rounds when the unit's own review reopens). None: rows from before
    # they were recorded, or the registration service did not answer then (activities.open_task).
    unit_name: Mapped[str | None] = mapped_column(String(200))
    person_name: Mapped[str | None] = mapped_column(String(100))  # personnel reviews only
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


# ------------------------------------------------------------------------------------------ staff


class StaffRole(StrEnum):
    MISSION_STAFF = "mission_staff"  # a mission secretariat: its mission and sub-missions only
    ADMINISTRATOR = "administrator"  # the organiser: every mission, and the staff accounts
    OBSERVER = "observer"  # reads everything, decides nothing
    FINANCE = "finance"  # the payment service's finance staff: its mission's transfers, or every mission's
    # The certificate office (certificate service): every mission's cards; hands out on-site pickups and
    # reissues lost cards. Decides no review.
    CERTIFICATE_OFFICE = "certificate_office"


class StaffAccount(Base):
    __tablename__ = "staff_accounts"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    login: Mapped[str] = mapped_column(String(254), unique=True)  # lower-cased email
    name: Mapped[str] = mapped_column(String(100))
    role: Mapped[StaffRole] = mapped_column()
    mission: Mapped[str | None] = mapped_column(String(64))  # mission staff only
    password_hash: Mapped[str] = mapped_column(String(200))  # argon2id
    active: Mapped[bool] = mapped_column(default=True)
    failed_logins: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class StaffSession(Base):
    """A staff login: the bearer token is given once; only its SHA-256 is kept."""

    __tablename__ = "staff_sessions"

    token_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    staff_id: Mapped[str] = mapped_column(ForeignKey("staff_accounts.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()


class StaffChange(Base):
    """The audit log of staff changes: who changed whose account, when, what and why."""

    __tablename__ = "staff_changes"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor_id: Mapped[str | None] = mapped_column(String(16))  # None: the command line (bootstrap)
    staff_id: Mapped[str] = mapped_column(ForeignKey("staff_accounts.id"), index=True)
    action: Mapped[str] = mapped_column(String(32))  # created, role_changed, deactivated, password_set ...
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    reason: Mapped[str | None] = mapped_column(Text)
