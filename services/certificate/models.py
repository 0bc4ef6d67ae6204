"""The certificate service's tables: certificates, the per-edition number sequence, re-activations,
reissues of lost cards, and the courier's tracking events."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text, UniqueConstraint
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
    # What is printed on the card, kept so that the certificate office and the missions can list cards
    # without asking the registration service for every row (null for cards made before it was kept).
    unit_id: Mapped[str | None] = mapped_column(String(16), index=True)
    mission: Mapped[str | None] = mapped_column(String(64), index=True)
    sub_mission: Mapped[str | None] = mapped_column(String(96))
    holder_name: Mapped[str | None] = mapped_column(String(100))
    unit_name: Mapped[str | None] = mapped_column(String(200))
    delivery_method: Mapped[DeliveryMethod | None] = mapped_column()
    carrier: Mapped[str | None] = mapped_column(String(32))
    tracking_no: Mapped[str | None] = mapped_column(String(40), index=True)
    dispatched_at: Mapped[datetime | None] = mapped_column()
    # The card reached its holder: the courier's delivery scan, or a hand-out by the mission or on site.
    delivered_at: Mapped[datetime | None] = mapped_column()
    handed_out_at: Mapped[datetime | None] = mapped_column()
    handed_out_by: Mapped[str | None] = mapped_column(String(254))  # the staff login
    handed_out_note: Mapped[str | None] = mapped_column(String(500))  # e.g. who collected it for the holder
    revoked_at: Mapped[datetime | None] = mapped_column()
    revoked_reason: Mapped[str | None] = mapped_column(String(500))


class CertificateReissue(Base):
    """A lost (or damaged) card reissued: the card keeps its number, its serial goes up, and every QR code
    of an earlier serial is refused at the gates from then on."""

    __tablename__ = "certificate_reissues"
    __table_args__ = (UniqueConstraint("certificate_no", "serial"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    certificate_no: Mapped[str] = mapped_column(String(24), index=True)
    serial: Mapped[int] = mapped_column()  # the new card's serial
    reason: Mapped[str] = mapped_column(String(500))
    staff_login: Mapped[str] = mapped_column(String(254))
    previous_badge_key: Mapped[str] = mapped_column(String(200))
    reissued_at: Mapped[datetime] = mapped_column(default=utcnow)


class TrackingEvent(Base):
    """A courier's tracking event for a waybill, once per event id however often the courier sends it."""

    __tablename__ = "certificate_tracking_events"
    __table_args__ = (UniqueConstraint("carrier", "event_id"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    carrier: Mapped[str] = mapped_column(String(32))
    event_id: Mapped[str] = mapped_column(String(64))
    tracking_no: Mapped[str] = mapped_column(String(40), index=True)
    status: Mapped[str] = mapped_column(String(24))  # a TrackingStatus value
    description_zh: Mapped[str] = mapped_column(Text)
    description_en: Mapped[str] = mapped_column(Text)
    location: Mapped[str | None] = mapped_column(String(100))
    occurred_at: Mapped[datetime] = mapped_column()
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


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
    unit_id: Mapped[str | None] = mapped_column(String(16))  # this registration's unit (the buyer's scope)
    activated_at: Mapped[datetime] = mapped_column(default=utcnow)
