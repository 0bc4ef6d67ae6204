"""The certificate service's tables: certificates and the per-edition number sequence."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
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
