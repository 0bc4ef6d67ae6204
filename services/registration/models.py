"""The registration service's tables: units, people's registrations and their timelines.

These rows are the buyer-facing read model: the workflows are the authority on status and write it
here through the ``registration.record_*`` activities.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from shared.db import TYPE_ANNOTATION_MAP, service_metadata, utcnow
from shared.types import (
    Affiliation,
    DeliveryMethod,
    FeeKind,
    IdType,
    RegistrationStatus,
    UnitKind,
    UnitStatus,
)


class Base(DeclarativeBase):
    metadata = service_metadata()
    type_annotation_map = TYPE_ANNOTATION_MAP


class Unit(Base):
    __tablename__ = "units"
    __table_args__ = (UniqueConstraint("edition", "credit_code"),)

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    edition: Mapped[str] = mapped_column(String(16), index=True)
    kind: Mapped[UnitKind] = mapped_column()
    affiliation: Mapped[Affiliation] = mapped_column()
    name: Mapped[str] = mapped_column(String(200))
    credit_code: Mapped[str | None] = mapped_column(String(18))  # domestic units
    country: Mapped[str] = mapped_column(String(2))  # ISO 3166 alpha-2; CN for domestic
    foreign_registration_no: Mapped[str | None] = mapped_column(String(64))  # overseas units
    address: Mapped[str] = mapped_column(String(300))
    industry: Mapped[str] = mapped_column(String(100))
    contact_name: Mapped[str] = mapped_column(String(100))
    contact_mobile: Mapped[str] = mapped_column(String(32))  # E.164
    contact_email: Mapped[str] = mapped_column(String(254))
    # The mission that reviews and manages the unit (an industrial one when joined by referral code)
    # and the one its statistics roll into (regional, Central Enterprise or NHC).
    mission: Mapped[str] = mapped_column(String(64), index=True)
    sub_mission: Mapped[str | None] = mapped_column(String(96))
    statistics_mission: Mapped[str] = mapped_column(String(64))
    statistics_sub_mission: Mapped[str | None] = mapped_column(String(96))
    referral_code: Mapped[str | None] = mapped_column(String(16))
    status: Mapped[UnitStatus] = mapped_column(default=UnitStatus.UNDER_REVIEW)
    review_round: Mapped[int] = mapped_column(default=1)
    reject_reason: Mapped[str | None] = mapped_column(Text)
    workflow_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    people: Mapped[list[PersonRegistration]] = relationship(back_populates="unit")


class PersonRegistration(Base):
    __tablename__ = "person_registrations"
    # One person registers once per edition.
    __table_args__ = (
        UniqueConstraint("edition", "id_type", "id_number"),
        # A certificate is re-validated once per edition (NULLs, the usual case, never clash).
        UniqueConstraint("edition", "previous_certificate_no"),
        Index("ix_person_registrations_unit_status", "unit_id", "status"),
    )

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    edition: Mapped[str] = mapped_column(String(16))
    unit_id: Mapped[str] = mapped_column(ForeignKey("units.id"))
    name: Mapped[str] = mapped_column(String(100))
    id_type: Mapped[IdType] = mapped_column()
    id_number: Mapped[str] = mapped_column(String(32))
    nationality: Mapped[str] = mapped_column(String(2))  # ISO 3166 alpha-2
    mobile: Mapped[str] = mapped_column(String(32))  # E.164
    email: Mapped[str] = mapped_column(String(254))
    job_title: Mapped[str] = mapped_column(String(100))
    personnel_label: Mapped[str] = mapped_column(String(64))
    fee_kind: Mapped[FeeKind] = mapped_column(default=FeeKind.STANDARD)
    delivery_method: Mapped[DeliveryMethod] = mapped_column()
    delivery_address: Mapped[dict[str, Any] | None] = mapped_column()
    photo_key: Mapped[str | None] = mapped_column(String(200))
    photo_sha256: Mapped[str | None] = mapped_column(String(64))  # of the checked photo: re-validation
    # The day printed on the certificate; required of every registration (None only in rows that
    # predate the column).
    entrance_date: Mapped[date | None] = mapped_column()
    # Re-validation (FAQ VII): the number of last edition's certificate that becomes valid again.
    previous_certificate_no: Mapped[str | None] = mapped_column(String(24))
    # The substitution that put the current person in this place, if any: their photo is their own.
    identity_revision_id: Mapped[str | None] = mapped_column(String(16))
    status: Mapped[RegistrationStatus] = mapped_column(default=RegistrationStatus.SUBMITTED)
    status_at: Mapped[datetime] = mapped_column(default=utcnow)
    deadline: Mapped[datetime | None] = mapped_column()
    workflow_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    unit: Mapped[Unit] = relationship(back_populates="people")
    events: Mapped[list[RegistrationEvent]] = relationship(
        order_by="RegistrationEvent.seq", back_populates="registration"
    )


class RegistrationEvent(Base):
    """One step of a person's timeline, written once per (registration, seq) by the workflow."""

    __tablename__ = "registration_events"

    registration_id: Mapped[str] = mapped_column(ForeignKey("person_registrations.id"), primary_key=True)
    seq: Mapped[int] = mapped_column(primary_key=True)
    step: Mapped[str] = mapped_column(String(32))
    status: Mapped[RegistrationStatus] = mapped_column()
    at: Mapped[datetime] = mapped_column()
    deadline: Mapped[datetime | None] = mapped_column()
    reason: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)

    registration: Mapped[PersonRegistration] = relationship(back_populates="events")


class UnitReviewEvent(Base):
    """The unit's review rounds as the unit workflow recorded them."""

    __tablename__ = "unit_review_events"

    unit_id: Mapped[str] = mapped_column(ForeignKey("units.id"), primary_key=True)
    round: Mapped[int] = mapped_column(primary_key=True)
    status: Mapped[UnitStatus] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column()
    reason: Mapped[str | None] = mapped_column(Text)


class RevisionStatus(StrEnum):
    PENDING = "pending"  # saved; the workflow has not yet said whether the change applies
    APPLIED = "applied"  # copied onto the unit or the person by the workflow's apply_revision call
    DISCARDED = "discarded"  # the workflow refused the change: nothing else changed


class UnitRevision(Base):
    """A unit's new data, validated and saved before its workflow decides whether it may apply."""

    __tablename__ = "unit_revisions"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    unit_id: Mapped[str] = mapped_column(ForeignKey("units.id"), index=True)
    data: Mapped[dict[str, Any]] = mapped_column()  # services.registration.revisions.UnitData
    status: Mapped[RevisionStatus] = mapped_column(default=RevisionStatus.PENDING)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    applied_at: Mapped[datetime | None] = mapped_column()


class PersonRevision(Base):
    """A person's changed data, or a substitute's identity, saved before the workflow decides."""

    __tablename__ = "person_revisions"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    registration_id: Mapped[str] = mapped_column(ForeignKey("person_registrations.id"), index=True)
    substitution: Mapped[bool] = mapped_column(default=False)
    # services.registration.revisions.PersonalData, or Identity for a substitution
    data: Mapped[dict[str, Any]] = mapped_column()
    status: Mapped[RevisionStatus] = mapped_column(default=RevisionStatus.PENDING)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    applied_at: Mapped[datetime | None] = mapped_column()


class PaymentDeadlineExtension(Base):
    """An organiser's extension of the edition's payment deadlines; absent methods keep theirs."""

    __tablename__ = "payment_deadline_extensions"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    edition: Mapped[str] = mapped_column(String(16), index=True)
    qr: Mapped[datetime | None] = mapped_column()
    b2b: Mapped[datetime | None] = mapped_column()
    transfer: Mapped[datetime | None] = mapped_column()
    extended_by: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


# ------------------------------------------------------------------------------------------ accounts


class AccountKind(StrEnum):
    UNIT = "unit"  # a unit's account: registers the unit and any number of its people
    INDIVIDUAL = "individual"  # an individual buyer: their own "unit" of kind individual, one person


class Account(Base):
    """Who may act for a unit: every buyer-facing call is scoped to the account's one unit."""

    __tablename__ = "accounts"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    kind: Mapped[AccountKind] = mapped_column()
    login: Mapped[str] = mapped_column(String(254), unique=True)  # the email, lower-cased
    email: Mapped[str] = mapped_column(String(254))
    mobile: Mapped[str] = mapped_column(String(32))  # E.164: where reset codes go by SMS
    password_hash: Mapped[str] = mapped_column(String(200))  # argon2id
    unit_id: Mapped[str | None] = mapped_column(ForeignKey("units.id"), unique=True)
    failed_logins: Mapped[int] = mapped_column(default=0)  # since the last success
    locked_until: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AccountSession(Base):
    """A login: the bearer token is given once; only its SHA-256 is kept."""

    __tablename__ = "account_sessions"

    token_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()


class PasswordResetCode(Base):
    """A one-time code sent by SMS or email to reset a password; only its SHA-256 is kept."""

    __tablename__ = "password_reset_codes"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    code_sha256: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(8))  # sms or email
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    attempts: Mapped[int] = mapped_column(default=0)
    used_at: Mapped[datetime | None] = mapped_column()


# ------------------------------------------------------------------------------------------ previous editions


class PreviousBuyer(Base):
    """A certificate holder of an earlier edition, imported from that edition's records: fills the
    affiliation of a returning buyer and decides re-validation (FAQ VII) field by field."""

    __tablename__ = "previous_buyers"
    __table_args__ = (Index("ix_previous_buyers_identity", "id_type", "id_number"),)

    certificate_no: Mapped[str] = mapped_column(String(24), primary_key=True)
    edition: Mapped[str] = mapped_column(String(16), index=True)
    name: Mapped[str] = mapped_column(String(100))
    id_type: Mapped[IdType] = mapped_column()
    id_number: Mapped[str] = mapped_column(String(32))
    personnel_label: Mapped[str] = mapped_column(String(64))
    photo_sha256: Mapped[str] = mapped_column(String(64))
    entrance_date: Mapped[date] = mapped_column()
    # the affiliation as it was
    unit_kind: Mapped[UnitKind] = mapped_column()
    affiliation: Mapped[Affiliation] = mapped_column()
    unit_name: Mapped[str] = mapped_column(String(200))
    credit_code: Mapped[str | None] = mapped_column(String(18))
    country: Mapped[str] = mapped_column(String(2))
    foreign_registration_no: Mapped[str | None] = mapped_column(String(64))
    address: Mapped[str] = mapped_column(String(300))
    industry: Mapped[str] = mapped_column(String(100))
    mission: Mapped[str] = mapped_column(String(64))
    sub_mission: Mapped[str | None] = mapped_column(String(96))
    referral_code: Mapped[str | None] = mapped_column(String(16))
    lost_or_damaged: Mapped[bool] = mapped_column(default=False)  # reported: not re-validatable
    imported_at: Mapped[datetime] = mapped_column(default=utcnow)
