"""The certificate service's HTTP API: the card a registration admits with and its tracking (buyers
and staff), the badge (staff), and verification at the gates. The missions' and the certificate
office's routes (collection lists, hand-outs, reissues) are in ``office_api``; the courier's callbacks
in ``courier_api``.

Every route needs a login (who may do what: ``services/certificate/auth.py``) but three: ``/healthz``,
the gates' ``POST /v1/verify`` (a gate holds no login: a code proves itself by its signature) and the
courier's tracking callbacks (``courier_api``, authenticated by their signature).
"""

from __future__ import annotations

import logging
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from fastapi import Depends
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.certificate import courier_api, office_api
from services.certificate.admission_code import AdmissionCodeError
from services.certificate.auth import (
    Caller,
    CertificateStaff,
    CurrentCaller,
    CurrentCertificateStaff,
    may_see,
)
from services.certificate.cards import verifier_for
from services.certificate.models import Certificate, CertificateActivation
from services.certificate.tracking import tracking_events
from services.certificate.views import ERRORS, CertificateOut, card_view, certificate_not_found, staff_card
from shared.service import ServiceContext, context, create_service_app
from shared.types import DeliveryMethod

log = logging.getLogger(__name__)

app = create_service_app(
    "certificate",
    title="Certificates",
    description=(
        "Admission certificates: numbers, badges with signed QR codes, delivery (express, collection by "
        "the trade mission, on-site pickup) and its tracking, hand-outs, reissues of lost cards, gate "
        "verification."
    ),
)
app.include_router(courier_api.router)
app.include_router(office_api.router)
Ctx = Annotated[ServiceContext, Depends(context)]


class TrackingEventOut(BaseModel):
    status: str
    description_zh: str
    description_en: str
    location: str | None
    occurred_at: datetime


class TrackingOut(BaseModel):
    certificate_no: str
    delivery_method: DeliveryMethod | None = None
    carrier: str | None = None
    tracking_no: str | None = None
    dispatched_at: datetime | None = None
    delivered_at: datetime | None = None
    events: list[TrackingEventOut] = Field(
        description="the courier's events, oldest first; none for a card not sent by express"
    )


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


async def _registration_card(
    session: AsyncSession, caller: Caller, registration_id: str
) -> tuple[str, Certificate | None]:
    """The number and (if issued here) the row of the card a registration admits with: the one made for
    it, or the old card it re-activated; 404 if there is none or the caller may not see it."""
    certificate = await session.scalar(
        select(Certificate).where(Certificate.registration_id == registration_id)
    )
    if certificate is not None:
        if not may_see(caller, certificate):
            raise certificate_not_found()
        return certificate.certificate_no, certificate
    activation = await session.get(CertificateActivation, registration_id)
    if activation is None:
        raise certificate_not_found()
    old = await session.get(Certificate, activation.certificate_no)
    if not may_see(caller, old, activation):
        raise certificate_not_found()
    return activation.certificate_no, old


# ------------------------------------------------------------------------------------------ cards


@app.get(
    "/v1/registrations/{registration_id}/certificate",
    response_model=CertificateOut,
    responses=ERRORS,
    tags=["certificates"],
)
async def certificate_of(registration_id: str, ctx: Ctx, caller: CurrentCaller) -> CertificateOut:
    """The card a registration admits with (the one made for it, or the old card it re-activated): how
    it is delivered, the courier and waybill, when it was dispatched, delivered and handed out. For the
    registration's own unit, and staff within their mission."""
    async with ctx.db.sessions() as session:
        number, certificate = await _registration_card(session, caller, registration_id)
        view = await card_view(session, number, certificate, for_staff=isinstance(caller, CertificateStaff))
    assert view is not None
    return view


@app.get(
    "/v1/registrations/{registration_id}/certificate/tracking",
    response_model=TrackingOut,
    responses=ERRORS,
    tags=["certificates"],
)
async def tracking_of(registration_id: str, ctx: Ctx, caller: CurrentCaller) -> TrackingOut:
    """Where the card sent by express is: the courier's tracking events, oldest first, described in
    Chinese and English. A card collected by the mission or on site has no events."""
    async with ctx.db.sessions() as session:
        number, certificate = await _registration_card(session, caller, registration_id)
    if certificate is None or certificate.registration_id != registration_id:
        # A re-activated old card is not sent again: its holder has it.
        return TrackingOut(certificate_no=number, events=[])
    events = await tracking_events(ctx, certificate)
    if certificate.delivered_at is None:  # reading the courier may have just recorded the delivery
        async with ctx.db.sessions() as session:
            certificate = await session.get(Certificate, number) or certificate
    return TrackingOut(
        certificate_no=number,
        delivery_method=certificate.delivery_method,
        carrier=certificate.carrier,
        tracking_no=certificate.tracking_no,
        dispatched_at=certificate.dispatched_at,
        delivered_at=certificate.delivered_at,
        events=[
            TrackingEventOut(
                status=str(event.status),
                description_zh=event.description_zh,
                description_en=event.description_en,
                location=event.location,
                occurred_at=event.occurred_at,
            )
            for event in events
        ],
    )


@app.get(
    "/v1/certificates/{certificate_no}",
    response_model=CertificateOut,
    responses=ERRORS,
    tags=["certificates"],
)
async def get_certificate(certificate_no: str, ctx: Ctx, staff: CurrentCertificateStaff) -> CertificateOut:
    """A card: issued here, or an earlier edition's card re-activated here (re-validation). Mission staff
    see their mission's cards only."""
    async with ctx.db.sessions() as session:
        certificate = await session.get(Certificate, certificate_no)
        view = None
        if staff.sees(certificate.mission if certificate else None):
            view = await card_view(session, certificate_no, certificate, for_staff=True)
    if view is None:
        raise certificate_not_found()
    return view


@app.get(
    "/v1/certificates/{certificate_no}/badge.pdf",
    responses={200: {"content": {"application/pdf": {}}}, **ERRORS},
    tags=["certificates"],
)
async def badge(certificate_no: str, ctx: Ctx, staff: CurrentCertificateStaff) -> Response:
    """The badge of a card issued here, with its current QR code (a card issued elsewhere has none here).
    Staff only: the QR code admits its bearer."""
    certificate = await staff_card(ctx, staff, certificate_no)
    pdf = await ctx.store.get(ctx.settings.bucket_certificates, certificate.badge_key)
    return Response(pdf, media_type="application/pdf")


# ------------------------------------------------------------------------------------------ gates


@app.post("/v1/verify", response_model=VerifyOut, tags=["gates"])
async def verify(body: VerifyIn, ctx: Ctx) -> VerifyOut:
    """What an entrance gate asks: is this QR code a valid admission for this edition?

    This edition's cards, and an earlier edition's card re-activated for this one (re-validation: the
    holder keeps last edition's card). An earlier card that was not re-activated is the wrong edition."""
    try:
        claims = verifier_for(ctx).verify(body.code)
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
        # Only what the verdict needs: a gate asks this thousands of times a minute.
        certificate = (
            await session.execute(
                select(Certificate.edition, Certificate.serial, Certificate.revoked).where(
                    Certificate.certificate_no == number
                )
            )
        ).one_or_none()
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
