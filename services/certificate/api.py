"""The certificate service's HTTP API: certificates, badge downloads, and verification at the gates."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from fastapi import Depends
from fastapi.responses import Response
from pydantic import BaseModel
from sqlalchemy import select

from services.certificate.activities import signer_for
from services.certificate.admission_code import AdmissionCodeError
from services.certificate.models import Certificate
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


class CertificateOut(BaseModel):
    certificate_no: str
    edition: str
    registration_id: str
    serial: int
    revoked: bool
    issued_at: datetime
    delivery_method: DeliveryMethod | None
    carrier: str | None
    tracking_no: str | None
    dispatched_at: datetime | None


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


@app.get(
    "/v1/certificates/{certificate_no}",
    response_model=CertificateOut,
    responses=ERRORS,
    tags=["certificates"],
)
async def get_certificate(certificate_no: str, ctx: Ctx) -> Certificate:
    async with ctx.db.sessions() as session:
        certificate = await session.get(Certificate, certificate_no)
    if certificate is None:
        raise not_found("certificate", "证件")
    return certificate


@app.get(
    "/v1/registrations/{registration_id}/certificate",
    response_model=CertificateOut,
    responses=ERRORS,
    tags=["certificates"],
)
async def certificate_of(registration_id: str, ctx: Ctx) -> Certificate:
    async with ctx.db.sessions() as session:
        certificate = await session.scalar(
            select(Certificate).where(Certificate.registration_id == registration_id)
        )
    if certificate is None:
        raise not_found("certificate", "证件")
    return certificate


@app.get("/v1/certificates/{certificate_no}/badge.pdf", responses=ERRORS, tags=["certificates"])
async def badge(certificate_no: str, ctx: Ctx) -> Response:
    certificate = await get_certificate(certificate_no, ctx)
    pdf = await ctx.store.get(ctx.settings.bucket_certificates, certificate.badge_key)
    return Response(pdf, media_type="application/pdf")


@app.post("/v1/verify", response_model=VerifyOut, tags=["gates"])
async def verify(body: VerifyIn, ctx: Ctx) -> VerifyOut:
    """What an entrance gate asks: is this QR code a valid admission for this edition?"""
    try:
        claims = signer_for(ctx).verifier().verify(body.code)
    except AdmissionCodeError:
        return VerifyOut(verdict=Verdict.FORGED)
    if claims.edition != ctx.settings.edition:
        return VerifyOut(verdict=Verdict.WRONG_EDITION, certificate_no=claims.certificate_no)
    async with ctx.db.sessions() as session:
        certificate = await session.get(Certificate, claims.certificate_no)
    if certificate is None or certificate.revoked or certificate.serial != claims.serial:
        return VerifyOut(verdict=Verdict.REVOKED, certificate_no=claims.certificate_no)
    return VerifyOut(verdict=Verdict.VALID, certificate_no=claims.certificate_no)
