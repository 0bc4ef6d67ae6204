"""The missions' and the certificate office's routes: collection lists (per mission and sub-mission,
as JSON, CSV or Excel), hand-outs of collected cards, and reissues of lost cards."""

from __future__ import annotations

import logging
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Body, Depends, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field, StringConstraints
from sqlalchemy import Select, func, select, update
from sqlalchemy.exc import IntegrityError

from services.certificate.admission_code import AdmissionClaims
from services.certificate.auth import (
    ADMINISTRATOR,
    CERTIFICATE_OFFICE,
    CertificateStaff,
    CurrentCertificateStaff,
)
from services.certificate.cards import card_face, signer_for, store_badge
from services.certificate.delivery import RegistrationUnreachable, record_delivery
from services.certificate.models import Certificate, CertificateActivation, CertificateReissue
from services.certificate.views import (
    ERRORS,
    CertificateOut,
    card_view,
    certificate_not_found,
    certificate_revoked,
    staff_card,
)
from shared import exports
from shared.auth import outside_your_mission, registration_unavailable
from shared.db import utcnow
from shared.http import ApiError, internal_headers
from shared.masking import mask_numbers_in_text
from shared.metrics import CERTIFICATES
from shared.records import PersonRecord, fetch_person
from shared.service import ServiceContext, context
from shared.types import DeliveryMethod

log = logging.getLogger(__name__)
router = APIRouter()
Ctx = Annotated[ServiceContext, Depends(context)]
COLLECTED = (DeliveryMethod.MISSION_COLLECTION, DeliveryMethod.ONSITE_PICKUP)


class CollectionRow(BaseModel):
    certificate_no: str
    registration_id: str
    holder_name: str | None
    unit_id: str | None
    unit_name: str | None
    mission: str | None
    sub_mission: str | None
    delivery_method: DeliveryMethod
    dispatched_at: datetime | None
    handed_out_at: datetime | None
    handed_out_by: str | None
    handed_out_note: str | None


class CollectionMethod(StrEnum):
    MISSION_COLLECTION = DeliveryMethod.MISSION_COLLECTION.value
    ONSITE_PICKUP = DeliveryMethod.ONSITE_PICKUP.value


class ListFormat(StrEnum):
    JSON = "json"
    CSV = "csv"
    XLSX = "xlsx"


class HandOutIn(BaseModel):
    note: str | None = Field(default=None, max_length=500, description="e.g. who collected it for the holder")


class ReissueIn(BaseModel):
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]


class ReissueOut(BaseModel):
    certificate: CertificateOut
    serial: int = Field(description="the new card's serial: every QR code of an earlier one is revoked")
    reissued_at: datetime
    buyer_notified: bool = Field(
        description="the buyer was emailed; false if the notification service did not take the message "
        "(the reissue stands)"
    )


def already_handed_out(ctx: ServiceContext, certificate: Certificate) -> ApiError:
    assert certificate.handed_out_at is not None
    at = ctx.edition.local(certificate.handed_out_at).strftime("%Y-%m-%d %H:%M")
    by = certificate.handed_out_by or "?"
    error = ApiError(
        409,
        "already_handed_out",
        f"certificate {certificate.certificate_no} was handed out at {at} (Beijing time) by {by}",
        f"证件{certificate.certificate_no}已于北京时间{at}由{by}发放",
    )
    error.body.details = [{"handed_out_at": certificate.handed_out_at.isoformat(), "handed_out_by": by}]
    return error


def certificate_changed(certificate_no: str) -> ApiError:
    """Another reissue (or a revocation) of the card came first."""
    return ApiError(
        409,
        "certificate_changed",
        f"certificate {certificate_no} was reissued or revoked meanwhile: look at it again",
        f"证件{certificate_no}刚刚已被补办或作废，请刷新后再操作",
    )


# ------------------------------------------------------------------------------------------ collection

COLLECTION_COLUMNS: list[exports.Column] = [
    ("certificate_no", "Certificate no.", "证件号"),
    ("holder_name", "Holder", "持证人"),
    ("unit_name", "Unit", "单位"),
    ("mission", "Mission", "交易团"),
    ("sub_mission", "Sub-mission", "交易分团"),
    ("delivery_method", "Delivery", "领取方式"),
    ("dispatched_at", "Ready for collection (Beijing)", "可领取时间（北京时间）"),
    ("handed_out_at", "Handed out (Beijing)", "发放时间（北京时间）"),
    ("handed_out_by", "Handed out by", "发放人"),
    ("handed_out_note", "Note", "备注"),
    ("registration_id", "Registration", "报名编号"),
]


def _collection_query(
    ctx: ServiceContext,
    staff: CertificateStaff,
    mission: str | None,
    sub_mission: str | None,
    method: CollectionMethod | None,
    handed_out: bool | None,
) -> Select[Certificate]:
    """This edition's cards to be collected (by their mission, or on site), not revoked, in the caller's
    scope: mission staff their own mission's (another mission is 403 ``outside_your_mission``)."""
    scope = staff.mission_filter()
    if scope is not None and mission is not None and mission != scope:
        raise outside_your_mission()
    shown = mission if mission is not None else scope
    query = select(Certificate).where(
        Certificate.edition == ctx.settings.edition,
        Certificate.revoked.is_(False),
        Certificate.delivery_method.in_([DeliveryMethod(method)] if method else COLLECTED),
    )
    if shown is not None:
        query = query.where(Certificate.mission == shown)
    if sub_mission is not None:
        query = query.where(Certificate.sub_mission == sub_mission)
    if handed_out is not None:
        handed = Certificate.handed_out_at.is_not(None)
        query = query.where(handed if handed_out else ~handed)
    return query


@router.get(
    "/v1/collection-list",
    response_model=list[CollectionRow],
    responses={
        200: {
            "description": "JSON (a page); or with format=csv or xlsx, the whole list as a download",
            "content": {exports.CSV_MEDIA_TYPE: {}, exports.XLSX_MEDIA_TYPE: {}},
        },
        **ERRORS,
    },
    tags=["collection"],
)
async def collection_list(
    ctx: Ctx,
    staff: CurrentCertificateStaff,
    response: Response,
    mission: Annotated[str | None, Query(description="default: mission staff's own; others: every")] = None,
    sub_mission: str | None = None,
    delivery_method: Annotated[
        CollectionMethod | None, Query(description="default: both ways of collecting")
    ] = None,
    handed_out: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
    format: ListFormat = ListFormat.JSON,
) -> list[CollectionRow] | Response:
    """The cards a mission collects and hands out to its buyers, or that overseas buyers pick up at the
    certificate centre, by mission, sub-mission, unit and number; in pages (the total is in the
    X-Total-Count header), or the whole list as CSV (UTF-8 with BOM, for Excel) or Excel."""
    query = _collection_query(ctx, staff, mission, sub_mission, delivery_method, handed_out)
    ordered = query.order_by(
        Certificate.mission, Certificate.sub_mission, Certificate.unit_name, Certificate.certificate_no
    )
    async with ctx.db.sessions() as session:
        if format is ListFormat.JSON:
            total = await session.scalar(select(func.count()).select_from(query.subquery()))
            rows = list(await session.scalars(ordered.limit(limit).offset(offset)))
            response.headers["X-Total-Count"] = str(total or 0)
            return [_collection_row(certificate, staff) for certificate in rows]
        rows = list(await session.scalars(ordered))
    zone = ctx.edition.local(utcnow()).tzinfo
    table = [_export_row(ctx, certificate, staff) for certificate in rows]
    shown = mission or staff.mission_filter()
    name = "-".join(part for part in ("collection", ctx.settings.edition, shown, sub_mission) if part)
    return exports.download(
        COLLECTION_COLUMNS,
        table,
        name=name,
        excel=format is ListFormat.XLSX,
        sheet_title="证件领取 Collection",
        tz=zone,
    )


# Who reads hand-out notes whole. A note records who collected a card for its holder, often with that
# person's ID or phone number: the certificate office (which hands out on-site pickups and answers for
# any card later claimed as never received) and the organiser's administrators need them; a mission's
# staff and observers read the notes with those numbers masked (shared/masking.py), in the list and in
# its CSV and Excel files, which travel further than the screen.
NOTE_READERS = frozenset({CERTIFICATE_OFFICE, ADMINISTRATOR})


def _note_for(staff: CertificateStaff, note: str | None) -> str | None:
    if note is None or staff.role in NOTE_READERS:
        return note
    return mask_numbers_in_text(note)


def _collection_row(certificate: Certificate, staff: CertificateStaff) -> CollectionRow:
    assert certificate.delivery_method is not None  # the query lists collected cards only
    return CollectionRow(
        certificate_no=certificate.certificate_no,
        registration_id=certificate.registration_id,
        holder_name=certificate.holder_name,
        unit_id=certificate.unit_id,
        unit_name=certificate.unit_name,
        mission=certificate.mission,
        sub_mission=certificate.sub_mission,
        delivery_method=certificate.delivery_method,
        dispatched_at=certificate.dispatched_at,
        handed_out_at=certificate.handed_out_at,
        handed_out_by=certificate.handed_out_by,
        handed_out_note=_note_for(staff, certificate.handed_out_note),
    )


def _export_row(ctx: ServiceContext, certificate: Certificate, staff: CertificateStaff) -> dict[str, Any]:
    row = _collection_row(certificate, staff).model_dump()
    # Beijing time in the CSV too (with its offset), as the column headings say.
    for column in ("dispatched_at", "handed_out_at"):
        if row[column] is not None:
            row[column] = ctx.edition.local(row[column])
    return row


# ------------------------------------------------------------------------------------------ hand-out


@router.post(
    "/v1/certificates/{certificate_no}/hand-out",
    response_model=CertificateOut,
    responses=ERRORS,
    tags=["collection"],
)
async def hand_out(
    certificate_no: str,
    ctx: Ctx,
    staff: CurrentCertificateStaff,
    body: Annotated[HandOutIn | None, Body()] = None,
) -> CertificateOut:
    """The card was handed to its holder (or to the unit for them): recorded with who and when, and the
    registration moves to delivered. A mission's collected cards: its staff, the certificate office and
    administrators; on-site pickups: the certificate office and administrators. Express cards are
    delivered by the courier (409 ``express_delivery``); a card is handed out once (409
    ``already_handed_out``, saying when and by whom)."""
    staff.require_writer()
    certificate = await staff_card(ctx, staff, certificate_no)
    if certificate.revoked:
        raise certificate_revoked(certificate)
    method = certificate.delivery_method
    if method is None:
        raise ApiError(
            409,
            "not_dispatched",
            f"certificate {certificate_no} is not ready for collection yet",
            f"证件{certificate_no}尚未制作完成，暂不能发放",
        )
    if method is DeliveryMethod.EXPRESS:
        raise ApiError(
            409,
            "express_delivery",
            f"certificate {certificate_no} is sent by express: the courier delivers it",
            f"证件{certificate_no}以快递方式寄送，由快递公司投递，不能现场发放",
        )
    staff.require_hand_out(method)
    at = utcnow()
    async with ctx.db.transaction() as session:
        # Conditional, so that two desks handing out the same card at once record one hand-out.
        marked = await session.scalar(
            update(Certificate)
            .where(
                Certificate.certificate_no == certificate_no,
                Certificate.handed_out_at.is_(None),
                Certificate.revoked.is_(False),
            )
            .values(handed_out_at=at, handed_out_by=staff.login, handed_out_note=body.note if body else None)
            .returning(Certificate.certificate_no)
        )
    if marked is None:
        current = await staff_card(ctx, staff, certificate_no)
        if current.revoked:
            raise certificate_revoked(current)
        # Tell the registration again (harmless: it takes the first), so that a hand-out whose first
        # telling failed (503 below) is healed by sending it again.
        try:
            await record_delivery(ctx, certificate_no, current.handed_out_at or at)
        except RegistrationUnreachable as exc:
            log.warning("certificate %s: delivery not told to its registration: %s", certificate_no, exc)
        raise already_handed_out(ctx, current)
    log.info("certificate %s handed out by staff %s", certificate_no, staff.staff_id)
    try:
        await record_delivery(ctx, certificate_no, at)
    except RegistrationUnreachable as exc:
        log.warning("certificate %s: delivery not told to its registration: %s", certificate_no, exc)
        raise ApiError(
            503,
            "workflow_unavailable",
            "the hand-out is recorded, but the registration could not be told: send the hand-out again",
            "已记录发放，但报名状态未能更新，请重新提交发放",
        ) from exc
    async with ctx.db.sessions() as session:
        view = await card_view(
            session, certificate_no, await session.get(Certificate, certificate_no), for_staff=True
        )
    assert view is not None
    return view


# ------------------------------------------------------------------------------------------ reissue


@router.post(
    "/v1/certificates/{certificate_no}/reissue",
    status_code=201,
    response_model=ReissueOut,
    responses=ERRORS,
    tags=["certificates"],
)
async def reissue(
    certificate_no: str, body: ReissueIn, ctx: Ctx, staff: CurrentCertificateStaff
) -> ReissueOut:
    """A lost card made again (certificate office and administrators): it keeps its number, its serial
    goes up by one, a new badge with a newly signed QR code is made, and from then on the gates refuse
    every earlier QR code of the card as revoked. The buyer is told by email."""
    staff.require_reissue()
    async with ctx.db.sessions() as session:
        certificate = await session.get(Certificate, certificate_no)
        reactivated = await session.scalar(
            select(CertificateActivation.registration_id)
            .where(CertificateActivation.certificate_no == certificate_no)
            .limit(1)
        )
    if certificate is None:
        if reactivated is None:
            raise certificate_not_found()
        raise ApiError(
            409,
            "not_issued_here",
            f"certificate {certificate_no} was issued by an earlier edition elsewhere: it cannot be reissued here",
            f"证件{certificate_no}由往届在其他系统制发，不能在此补办",
        )
    if not staff.sees(certificate.mission):
        raise certificate_not_found()
    if certificate.revoked:
        raise certificate_revoked(certificate)
    person = await _person(ctx, certificate.registration_id)
    serial = certificate.serial + 1
    reissued_at = utcnow().replace(microsecond=0)
    # What the lost card printed, as the card row keeps it (the person record for cards made before it
    # was kept): a reissue replaces the card, it does not change it.
    holder_name = certificate.holder_name or person.name
    unit_name = certificate.unit_name or person.unit_name
    mission = certificate.mission or person.mission
    sub_mission = certificate.sub_mission if certificate.mission else person.sub_mission
    face = await card_face(
        ctx,
        holder_name=holder_name,
        unit_name=unit_name,
        mission=mission,
        sub_mission=sub_mission,
        photo_key=person.photo_key,
    )
    claims = AdmissionClaims(
        edition=certificate.edition, certificate_no=certificate_no, serial=serial, issued_at=reissued_at
    )
    # The badge is stored before the serial moves: the old QR code is revoked only once a new card exists.
    # Two reissues at once may both store this key; only one moves the serial (the other is refused), and
    # either stored badge carries a valid code of the new serial.
    key = await store_badge(ctx, signer_for(ctx), claims, face)
    try:
        async with ctx.db.transaction() as session:
            moved = await session.scalar(
                update(Certificate)
                .where(
                    Certificate.certificate_no == certificate_no,
                    Certificate.serial == certificate.serial,
                    Certificate.revoked.is_(False),
                )
                .values(
                    serial=serial,
                    badge_key=key,
                    unit_id=certificate.unit_id or person.unit_id,
                    holder_name=holder_name,
                    unit_name=unit_name,
                    mission=mission,
                    sub_mission=sub_mission,
                )
                .returning(Certificate.certificate_no)
            )
            if moved is None:
                raise certificate_changed(certificate_no)
            session.add(
                CertificateReissue(
                    certificate_no=certificate_no,
                    serial=serial,
                    reason=body.reason,
                    staff_login=staff.login,
                    previous_badge_key=certificate.badge_key,
                    reissued_at=reissued_at,
                )
            )
    except IntegrityError as exc:
        raise certificate_changed(certificate_no) from exc
    # The staff's id, not their login (an email); the reason is free text, kept in the table only.
    log.info("certificate %s reissued (serial %d) by staff %s", certificate_no, serial, staff.staff_id)
    CERTIFICATES.labels("reissued").inc()
    notified = await _tell_buyer_of_reissue(ctx, person, certificate_no, serial)
    async with ctx.db.sessions() as session:
        view = await card_view(
            session, certificate_no, await session.get(Certificate, certificate_no), for_staff=True
        )
    assert view is not None
    return ReissueOut(certificate=view, serial=serial, reissued_at=reissued_at, buyer_notified=notified)


async def _person(ctx: ServiceContext, registration_id: str) -> PersonRecord:
    try:
        return await fetch_person(ctx, registration_id)
    except httpx.HTTPError as exc:
        log.warning("person %s not fetched from the registration service: %s", registration_id, exc)
        raise registration_unavailable() from exc


async def _tell_buyer_of_reissue(
    ctx: ServiceContext, person: PersonRecord, certificate_no: str, serial: int
) -> bool:
    """Email the buyer that their card was reissued. A failure is logged, not raised: the reissue has
    been made, and the certificate office tells the buyer at the desk anyway."""
    try:
        response = await ctx.http.post(
            f"{ctx.settings.notification_url}/internal/messages",
            json={
                "channel": "email",
                "to": person.email,
                "template": "certificate_reissued",
                "params": {
                    "registration_id": person.registration_id,
                    "certificate_no": certificate_no,
                    "serial": str(serial),
                },
                "key": f"reissue:{certificate_no}:{serial}",
            },
            headers=internal_headers(ctx.settings),
        )
        response.raise_for_status()
    except httpx.HTTPError as exc:
        status = exc.response.status_code if isinstance(exc, httpx.HTTPStatusError) else None
        log.warning(
            "reissue of %s (serial %d) not told to the buyer: %s %s",
            certificate_no,
            serial,
            type(exc).__name__,
            status or "",
        )
        return False
    return True
