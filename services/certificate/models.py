"""The certificate service's tables: certificates, the per-edition number sequence, and re-activations."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import TYPE_ANNOTATION_MAP, service_metadata, utcnow
from shared.types import DeliveryMethod


class Base(DeclarativeBase):
    metadata = service_metadata()
    type_annotation_map = TYPE_ANNOTATION_MAP


class CertificateSequence(Base):
    """The last certificate number issued in an edition (numbers are unique per edition)."""

    __tablename__ = "certificate_sequences"

    edition: Mapped[str] = mapped_column(String(16), primary_key=True)
    last_number: Mapped[int] = mapped_column(default=0)


class Certificate(Base):
    __tablename__ = "certificates"

    certificate_no: Mapped[str] = mapped_column(String(24), primary_key=True)
    edition: Mapped[str] = mapped_column(String(16))
    registration_id: Mapped[str] = mapped_column(String(16), unique=True)
    serial: Mapped[int] = mapped_column(default=1)  # a reissue for a lost card increments it
    revoked: Mapped[bool] = mapped_column(default=False)
    badge_key: Mapped[str] = mapped_column(String(200))
    issued_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivery_method: Mapped[DeliveryMethod | None] = mapped_column()
    carrier: Mapped[str | None] = mapped_column(String(32))
    tracking_no: Mapped[str | None] = mapped_column(String(40))
    dispatched_at: Mapped[datetime | None] = mapped_column()


class CertificateActivation(Base):
    """Re-validation (FAQ VII): an earlier edition's card, unchanged, made valid for a later edition.

    Once per registration (the primary key); a card is re-activated for one registration per edition.
    The card itself may have been issued by an edition that ran elsewhere: then this row is all this
    service knows of it (``issued_here`` is false and ``certificates`` has no row for the number).
    """

    __tablename__ = "certificate_activations"
    __table_args__ = (UniqueConstraint("edition", "certificate_no"),)

    registration_id: Mapped[str] = mapped_column(String(16), primary_key=True)  # this edition's registration
    edition: Mapped[str] = mapped_column(String(16))  # the edition the old card is now valid for
    certificate_no: Mapped[str] = mapped_column(String(24), index=True)  # the old card's number
    certificate_edition: Mapped[str] = mapped_column(String(16))  # the edition that issued the old card
    issued_here: Mapped[bool] = mapped_column()  # the old card is in ``certificates``
    activated_at: Mapped[datetime] = mapped_column(default=utcnow)
