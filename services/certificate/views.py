"""What the certificate routes share: the card as they show it, and their refusals."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.certificate.auth import CertificateStaff
from services.certificate.models import Certificate, CertificateActivation
from shared.http import ApiError, ErrorBody, not_found
from shared.service import ServiceContext
from shared.types import DeliveryMethod

ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorBody} for code in (401, 403, 404, 409, 422, 503)
}


# ------------------------------------------------------------------------------------------ schemas


class ActivationOut(BaseModel):
    """A re-validation: the card admits to ``edition`` too, for that edition's registration."""

    edition: str
    registration_id: str
    activated_at: datetime


class CertificateOut(BaseModel):
    """A card. The fields from ``registration_id`` to ``handed_out_by`` are null for a card issued by an
    edition that ran elsewhere, known here only by its re-activation."""

    certificate_no: str
    edition: str = Field(description="the edition that issued the card")
    registration_id: str | None = Field(default=None, description="the registration it was issued to")
    serial: int | None = Field(
        default=None, description="1 for the first card; a reissue for a lost card adds one"
    )
    revoked: bool
    issued_at: datetime | None = None
    holder_name: str | None = None
    unit_id: str | None = None
    unit_name: str | None = None
    mission: str | None = None
    sub_mission: str | None = None
    delivery_method: DeliveryMethod | None = None
    carrier: str | None = None
    tracking_no: str | None = Field(default=None, description="the courier's waybill number (express only)")
    dispatched_at: datetime | None = None
    delivered_at: datetime | None = Field(
        default=None, description="the card reached its holder: the courier's delivery scan, or the hand-out"
    )
    handed_out_at: datetime | None = None
    handed_out_by: str | None = Field(
        default=None, description="the staff login that handed it out (shown to staff only)"
    )
    valid_for: list[str] = Field(
        description="the editions whose gates admit the card: its own and those it was re-activated for"
    )
    activations: list[ActivationOut]


# ------------------------------------------------------------------------------------------ refusals


def certificate_not_found() -> ApiError:
    return not_found("certificate", "证件")


def certificate_revoked(certificate: Certificate) -> ApiError:
    return ApiError(
        409,
        "certificate_revoked",
        f"certificate {certificate.certificate_no} is revoked",
        f"证件{certificate.certificate_no}已作废",
    )


# ------------------------------------------------------------------------------------------ views


async def card_view(
    session: AsyncSession, number: str, certificate: Certificate | None, *, for_staff: bool
) -> CertificateOut | None:
    """The card with its re-activations; a card issued elsewhere is known by its re-activations alone."""
    activations = list(
        await session.scalars(
            select(CertificateActivation)
            .where(CertificateActivation.certificate_no == number)
            .order_by(CertificateActivation.activated_at)
        )
    )
    if certificate is None and not activations:
        return None
    valid_for = [a.edition for a in activations]
    reactivations = [
        ActivationOut(edition=a.edition, registration_id=a.registration_id, activated_at=a.activated_at)
        for a in activations
    ]
    if certificate is None:
        issued_for = activations[0].certificate_edition
        return CertificateOut(
            certificate_no=number,
            edition=issued_for,
            revoked=False,
            valid_for=[issued_for, *valid_for],
            activations=reactivations,
        )
    return CertificateOut(
        certificate_no=number,
        edition=certificate.edition,
        registration_id=certificate.registration_id,
        serial=certificate.serial,
        revoked=certificate.revoked,
        issued_at=certificate.issued_at,
        holder_name=certificate.holder_name,
        unit_id=certificate.unit_id,
        unit_name=certificate.unit_name,
        mission=certificate.mission,
        sub_mission=certificate.sub_mission,
        delivery_method=certificate.delivery_method,
        carrier=certificate.carrier,
        tracking_no=certificate.tracking_no,
        dispatched_at=certificate.dispatched_at,
        delivered_at=certificate.delivered_at,
        handed_out_at=certificate.handed_out_at,
        # Buyers see when, not which staff member: a login is the organiser's business.
        handed_out_by=certificate.handed_out_by if for_staff else None,
        valid_for=[] if certificate.revoked else [certificate.edition, *valid_for],
        activations=reactivations,
    )


async def staff_card(ctx: ServiceContext, staff: CertificateStaff, certificate_no: str) -> Certificate:
    """A card issued here that ``staff`` may see; otherwise 404, as if it did not exist."""
    async with ctx.db.sessions() as session:
        certificate = await session.get(Certificate, certificate_no)
    if certificate is None or not staff.sees(certificate.mission):
        raise certificate_not_found()
    return certificate
