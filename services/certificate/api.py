"""The certificate service's HTTP API: certificates (and re-activated old cards), badge downloads, and
verification at the gates."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from fastapi import Depends
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.certificate.activities import signer_for
from services.certificate.admission_code import AdmissionCodeError
from services.certificate.models import Certificate, CertificateActivation
from shared.http import ErrorBody, not_found
from shared.service import ServiceContext, context, create_service_app
from shared.types import DeliveryMethod

app = create_service_app(
    "certificate",
    title="Certificates",
    description="Admission certificates: numbers, badges with signed QR codes, dispatch, gate verification.",
)
Ctx = Annotated[ServiceContext, Depends(context)]
ERRORS: dict[int | str, dict[str, object]] = {404: {"model": ErrorBody}}


class ActivationOut(BaseModel):
    """A re-validation: the card admits to ``edition`` too, for that edition's registration."""

    edition: str
    registration_id: str
    activated_at: datetime


class CertificateOut(BaseModel):
    certificate_no: str
    edition: str = Field(description="the edition that issued the card")
    registration_id: str | None = Field(
        description="the registration it was issued to; null for a card issued by an edition that ran "
        "elsewhere, known here only by its re-activation"
    )
    serial: int | None
    revoked: bool
    issued_at: datetime | None
    delivery_method: DeliveryMethod | None
    carrier: str | None
    tracking_no: str | None
    dispatched_at: datetime | None
    valid_for: list[str] = Field(
        description="the editions whose gates admit the card: its own and those it was re-activated for"
    )
    activations: list[ActivationOut]


class Verdict(StrEnum):
    VALID = "valid"
    REVOKED = "revoked"
    WRONG_EDITION = "wrong_edition"
    FORGED = "forged"


class VerifyIn(BaseModel):
    code: str


class VerifyOut(BaseModel):
    verdict: Verdict
    certificate_no: str | None = None
    reactivated: bool = Field(
        default=False, description="an earlier edition's card, re-activated for this edition (re-validation)"
    )


async def _view(session: AsyncSession, number: str, certificate: Certificate | None) -> CertificateOut | None:
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
    issued_for = certificate.edition if certificate else activations[0].certificate_edition
    revoked = certificate.revoked if certificate else False
    return CertificateOut(
        certificate_no=number,
        edition=issued_for,
        registration_id=certificate.registration_id if certificate else None,
        serial=certificate.serial if certificate else None,
        revoked=revoked,
        issued_at=certificate.issued_at if certificate else None,
        delivery_method=certificate.delivery_method if certificate else None,
        carrier=certificate.carrier if certificate else None,
        tracking_no=certificate.tracking_no if certificate else None,
        dispatched_at=certificate.dispatched_at if certificate else None,
        valid_for=[] if revoked else [issued_for, *(a.edition for a in activations)],
        activations=[
            ActivationOut(edition=a.edition, registration_id=a.registration_id, activated_at=a.activated_at)
            for a in activations
        ],
    )


@app.get(
    "/v1/certificates/{certificate_no}",
    response_model=CertificateOut,
    responses=ERRORS,
    tags=["certificates"],
)
async def get_certificate(certificate_no: str, ctx: Ctx) -> CertificateOut:
    """A card: issued here, or an earlier edition's card re-activated here (re-validation)."""
    async with ctx.db.sessions() as session:
        view = await _view(session, certificate_no, await session.get(Certificate, certificate_no))
    if view is None:
        raise not_found("certificate", "证件")
    return view


@app.get(
    "/v1/registrations/{registration_id}/certificate",
    response_model=CertificateOut,
    responses=ERRORS,
    tags=["certificates"],
)
async def certificate_of(registration_id: str, ctx: Ctx) -> CertificateOut:
    """The card a registration admits with: the one made for it, or the old card it re-activated."""
    async with ctx.db.sessions() as session:
        certificate = await session.scalar(
            select(Certificate).where(Certificate.registration_id == registration_id)
        )
        view = None
        if certificate is not None:
            view = await _view(session, certificate.certificate_no, certificate)
        elif (activation := await session.get(CertificateActivation, registration_id)) is not None:
            number = activation.certificate_no
            view = await _view(session, number, await session.get(Certificate, number))
    if view is None:
        raise not_found("certificate", "证件")
    return view


@app.get("/v1/certificates/{certificate_no}/badge.pdf", responses=ERRORS, tags=["certificates"])
async def badge(certificate_no: str, ctx: Ctx) -> Response:
    """The badge of a card issued here (a card issued elsewhere has none here)."""
    async with ctx.db.sessions() as session:
        certificate = await session.get(Certificate, certificate_no)
    if certificate is None:
        raise not_found("certificate", "证件")
    pdf = await ctx.store.get(ctx.settings.bucket_certificates, certificate.badge_key)
    return Response(pdf, media_type="application/pdf")


@app.post("/v1/verify", response_model=VerifyOut, tags=["gates"])
async def verify(body: VerifyIn, ctx: Ctx) -> VerifyOut:
    """What an entrance gate asks: is this QR code a valid admission for this edition?

    This edition's cards, and an earlier edition's card re-activated for this one (re-validation: the
    holder keeps last edition's card). An earlier card that was not re-activated is the wrong edition."""
    try:
        claims = signer_for(ctx).verifier().verify(body.code)
    except AdmissionCodeError:
        return VerifyOut(verdict=Verdict.FORGED)
    number = claims.certificate_no
    async with ctx.db.sessions() as session:
        activation = None
        if claims.edition != ctx.settings.edition:
            activation = await session.scalar(
                select(CertificateActivation).where(
                    CertificateActivation.edition == ctx.settings.edition,
                    CertificateActivation.certificate_no == number,
                    CertificateActivation.certificate_edition == claims.edition,
                )
            )
            if activation is None:
                return VerifyOut(verdict=Verdict.WRONG_EDITION, certificate_no=number)
        certificate = await session.get(Certificate, number)
    reactivated = activation is not None
    if certificate is None:
        # Only a card issued by an edition that ran elsewhere is unknown here: its signature is all there is
        # to check (its serial and revocation were that deployment's to know).
        if activation is not None and not activation.issued_here:
            return VerifyOut(verdict=Verdict.VALID, certificate_no=number, reactivated=True)
        return VerifyOut(verdict=Verdict.REVOKED, certificate_no=number, reactivated=reactivated)
    if certificate.revoked or certificate.serial != claims.serial or certificate.edition != claims.edition:
        return VerifyOut(verdict=Verdict.REVOKED, certificate_no=number, reactivated=reactivated)
    return VerifyOut(verdict=Verdict.VALID, certificate_no=number, reactivated=reactivated)
