"""The registration service's HTTP API: units, people, photos and progress timelines."""

from __future__ import annotations

import io
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Query
from PIL import Image, UnidentifiedImageError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from services.registration import validation
from services.registration.missions import place_unit
from services.registration.models import PersonRegistration, Unit
from services.registration.progress import NEXT_ACTION
from services.registration.schemas import (
    NextAction,
    PersonIn,
    PersonOut,
    PhotoUploadOut,
    StatusLabel,
    TimelineOut,
    TimelineStepOut,
    UnitIn,
    UnitOut,
)
from shared import contracts as c
from shared.catalogue import Edition, load_missions
from shared.db import utcnow
from shared.http import ApiError, ErrorBody, not_found, require_internal
from shared.ids import new_id
from shared.records import (
    DeliveryAddress,
    PersonRecord,
    UnitMemberRecord,
    UnitMembersRecord,
    is_mainland_mobile,
)
from shared.service import ServiceContext, context, create_service_app
from shared.temporal import registration_workflow_id, start_workflow, unit_workflow_id
from shared.types import Affiliation, DeliveryMethod, FeeKind, IdType, RegistrationStatus

app = create_service_app(
    "registration",
    title="Buyer registration",
    description="Units and their people register for an edition, upload photos and follow their progress.",
)
Ctx = Annotated[ServiceContext, Depends(context)]
ERRORS: dict[int | str, dict[str, object]] = {code: {"model": ErrorBody} for code in (401, 404, 409, 422)}
PHOTO_MAX_BYTES = 2 * 1024 * 1024
PHOTO_UPLOAD_SECONDS = 900


def ensure_registration_open(edition: Edition) -> None:
    if not edition.registration_open(utcnow()):
        closes = edition.local(edition.deadlines.registration_closes)
        raise ApiError(
            409,
            "registration_closed",
            f"Registration closed at {closes:%Y-%m-%d %H:%M} Beijing time. There is no on-site registration.",
            f"报名已于北京时间{closes:%Y-%m-%d %H:%M}截止，展会不设现场报名。",
        )


# ------------------------------------------------------------------------------------------ units


@app.post("/v1/units", status_code=201, response_model=UnitOut, responses=ERRORS, tags=["units"])
async def register_unit(body: UnitIn, ctx: Ctx) -> Unit:
    """Register a unit (affiliation) and put it in its trade mission's review queue."""
    edition = ctx.edition
    ensure_registration_open(edition)
    domestic = body.mission.affiliation is not Affiliation.OVERSEAS
    credit_code = None
    if domestic:
        if not body.credit_code:
            raise validation.invalid(
                "credit_code",
                "credit_code_required",
                "a domestic unit needs its credit code",
                "请填写统一社会信用代码",
            )
        credit_code = validation.credit_code(body.credit_code)
    elif not body.registration_no:
        raise validation.invalid(
            "registration_no",
            "registration_no_required",
            "an overseas unit needs its registration number",
            "境外单位请填写注册号",
        )
    placement = place_unit(
        load_missions(),
        affiliation=body.mission.affiliation,
        credit_code=credit_code,
        chosen_mission=body.mission.mission,
        chosen_sub_mission=body.mission.sub_mission,
        referral_code=body.mission.referral_code,
    )
    unit_id = new_id("U")
    unit = Unit(
        id=unit_id,
        edition=edition.code,
        kind=body.kind,
        affiliation=body.mission.affiliation,
        name=body.name,
        credit_code=credit_code,
        country="CN" if domestic else body.country,
        foreign_registration_no=None if domestic else body.registration_no,
        address=body.address,
        industry=body.industry,
        contact_name=body.contact.name,
        contact_mobile=validation.mobile(body.contact.mobile, "contact.mobile"),
        contact_email=str(body.contact.email),
        mission=placement.mission,
        sub_mission=placement.sub_mission,
        statistics_mission=placement.statistics_mission,
        statistics_sub_mission=placement.statistics_sub_mission,
        referral_code=placement.referral_code,
        workflow_id=unit_workflow_id(edition.code, unit_id),
    )
    async with ctx.db.transaction() as session:
        session.add(unit)
        try:
            await session.flush()
        except IntegrityError as exc:
            raise ApiError(
                409,
                "unit_already_registered",
                "this unit is already registered for the edition",
                "该单位已报名本届展会",
                field="credit_code",
            ) from exc
        # Started inside the transaction: if Temporal refuses, nothing is saved and the buyer retries.
        await start_workflow(
            ctx.temporal,
            "UnitReview",
            c.UnitStart(
                edition=edition.code,
                unit_id=unit_id,
                mission=placement.mission,
                sub_mission=placement.sub_mission,
                registration_closes=edition.deadlines.registration_closes,
                expo_closes=edition.deadlines.expo_closes,
            ),
            id=unit.workflow_id,
            summary=f"Unit {unit_id} · {placement.mission}",
        )
    return unit


@app.get("/v1/units/{unit_id}", response_model=UnitOut, responses=ERRORS, tags=["units"])
async def get_unit(unit_id: str, ctx: Ctx) -> Unit:
    async with ctx.db.sessions() as session:
        unit = await session.get(Unit, unit_id)
    if unit is None:
        raise not_found("unit", "单位")
    return unit


# ------------------------------------------------------------------------------------------ people


def _label(status: RegistrationStatus) -> StatusLabel:
    return StatusLabel(code=status, zh=status.label_zh, en=status.label_en)


def _mask(id_number: str) -> str:
    return id_number[:3] + "*" * max(len(id_number) - 7, 0) + id_number[-4:]


def _person_out(
    person: PersonRegistration, edition: Edition, upload: PhotoUploadOut | None = None
) -> PersonOut:
    return PersonOut(
        registration_id=person.id,
        unit_id=person.unit_id,
        edition=person.edition,
        name=person.name,
        id_type=person.id_type,
        id_number_masked=_mask(person.id_number),
        fee_kind=person.fee_kind,
        delivery_method=person.delivery_method,
        status=_label(person.status),
        deadline=edition.local(person.deadline) if person.deadline else None,
        photo_uploaded=person.photo_key is not None,
        photo_upload=upload,
    )


def _check_delivery(body: PersonIn, unit: Unit) -> None:
    if body.delivery_method is DeliveryMethod.EXPRESS:
        if body.delivery_address is None:
            raise validation.invalid(
                "delivery_address",
                "address_required",
                "express delivery needs an address",
                "快递寄送请填写收件地址",
            )
        validation.mobile(body.delivery_address.mobile, "delivery_address.mobile")
        if not is_mainland_mobile(validation.mobile(body.delivery_address.mobile)):
            raise validation.invalid(
                "delivery_address.mobile",
                "mainland_only",
                "express delivery is for the Chinese mainland only",
                "快递寄送仅限中国大陆地区",
            )
    if (
        body.delivery_method is DeliveryMethod.ONSITE_PICKUP
        and unit.country == "CN"
        and body.nationality == "CN"
    ):
        raise validation.invalid(
            "delivery_method",
            "onsite_pickup_overseas_only",
            "on-site pickup is for overseas buyers",
            "现场领取仅适用于境外采购商",
        )


def _photo_upload(ctx: ServiceContext, key: str) -> PhotoUploadOut:
    url = ctx.store.presigned_put(ctx.settings.bucket_photos, key, "image/jpeg", PHOTO_UPLOAD_SECONDS)
    return PhotoUploadOut(url=url, headers={"Content-Type": "image/jpeg"}, expires_in=PHOTO_UPLOAD_SECONDS)


def _photo_key(person: PersonRegistration) -> str:
    return f"{person.edition}/{person.unit_id}/{person.id}.jpg"


@app.post(
    "/v1/units/{unit_id}/people", status_code=201, response_model=PersonOut, responses=ERRORS, tags=["people"]
)
async def register_person(unit_id: str, body: PersonIn, ctx: Ctx) -> PersonOut:
    """Register a person of the unit. The answer carries a presigned URL to upload the photo to."""
    edition = ctx.edition
    ensure_registration_open(edition)
    id_number = validation.id_number(body.id_type, body.id_number)
    if body.id_type is IdType.RESIDENT_ID and body.nationality != "CN":
        raise validation.invalid(
            "nationality",
            "nationality_mismatch",
            "a resident identity card holder is a Chinese national",
            "持居民身份证者国籍应为中国",
        )
    mobile = validation.mobile(body.mobile)
    registration_id = new_id("R")
    async with ctx.db.transaction() as session:
        unit = await session.get(Unit, unit_id)
        if unit is None:
            raise not_found("unit", "单位")
        _check_delivery(body, unit)
        person = PersonRegistration(
            id=registration_id,
            edition=edition.code,
            unit_id=unit.id,
            name=body.name,
            id_type=body.id_type,
            id_number=id_number,
            nationality=body.nationality,
            mobile=mobile,
            email=str(body.email),
            job_title=body.job_title,
            personnel_label=body.personnel_label,
            fee_kind=FeeKind.STANDARD,
            delivery_method=body.delivery_method,
            delivery_address=body.delivery_address.model_dump() if body.delivery_address else None,
            workflow_id=registration_workflow_id(edition.code, registration_id),
        )
        session.add(person)
        try:
            await session.flush()
        except IntegrityError as exc:
            raise ApiError(
                409,
                "already_registered",
                "this person is already registered for the edition",
                "该人员已报名本届展会，每人每届只能报名一次",
                field="id_number",
            ) from exc
        await start_workflow(
            ctx.temporal,
            "BuyerRegistration",
            c.RegistrationStart(
                edition=edition.code,
                registration_id=registration_id,
                unit_id=unit.id,
                unit_workflow_id=unit.workflow_id,
                mission=unit.mission,
                sub_mission=unit.sub_mission,
                fee_kind=person.fee_kind,
                delivery_method=person.delivery_method,
                payment_deadline=edition.latest_payment_deadline,
                expo_closes=edition.deadlines.expo_closes,
            ),
            id=person.workflow_id,
            summary=f"Registration {registration_id} · unit {unit.id} · {unit.mission}",
        )
    return _person_out(person, edition, _photo_upload(ctx, _photo_key(person)))


async def _person(session: AsyncSession, registration_id: str) -> PersonRegistration:
    person = await session.get(PersonRegistration, registration_id)
    if person is None:
        raise not_found("registration", "报名记录")
    return person


@app.get("/v1/registrations/{registration_id}", response_model=PersonOut, responses=ERRORS, tags=["people"])
async def get_person(registration_id: str, ctx: Ctx) -> PersonOut:
    async with ctx.db.sessions() as session:
        return _person_out(await _person(session, registration_id), ctx.edition)


@app.post(
    "/v1/registrations/{registration_id}/photo-upload",
    response_model=PhotoUploadOut,
    responses=ERRORS,
    tags=["people"],
)
async def new_photo_upload(registration_id: str, ctx: Ctx) -> PhotoUploadOut:
    """A fresh presigned URL for the photo (the one given at registration expires)."""
    async with ctx.db.sessions() as session:
        person = await _person(session, registration_id)
    return _photo_upload(ctx, _photo_key(person))


@app.post(
    "/v1/registrations/{registration_id}/photo-confirm",
    response_model=PersonOut,
    responses=ERRORS,
    tags=["people"],
)
async def confirm_photo(registration_id: str, ctx: Ctx) -> PersonOut:
    """Check the uploaded photo by decoding it (JPEG or PNG, at most 2 MiB, at least 295×413 px)."""
    async with ctx.db.transaction() as session:
        person = await _person(session, registration_id)
        key = _photo_key(person)
        size = await ctx.store.size(ctx.settings.bucket_photos, key)
        if size is None:
            raise ApiError(
                409, "photo_missing", "no photo has been uploaded yet", "尚未上传照片", field="photo"
            )
        if size > PHOTO_MAX_BYTES:
            raise ApiError(
                422, "photo_too_large", "the photo is larger than 2 MiB", "照片不能超过2MB", field="photo"
            )
        data = await ctx.store.get(ctx.settings.bucket_photos, key)
        try:
            with Image.open(io.BytesIO(data)) as image:
                image_format, (width, height) = image.format, image.size
                image.verify()
        except (UnidentifiedImageError, OSError) as exc:
            raise ApiError(
                422, "photo_unreadable", "the photo is not a readable image", "照片无法识别", field="photo"
            ) from exc
        if image_format not in ("JPEG", "PNG"):
            raise ApiError(
                422, "photo_format", "the photo must be JPEG or PNG", "照片须为JPEG或PNG格式", field="photo"
            )
        if width < 295 or height < 413:
            raise ApiError(
                422,
                "photo_too_small",
                "the photo must be at least 295×413 pixels",
                "照片尺寸不小于295×413像素",
                field="photo",
            )
        person.photo_key = key
    return _person_out(person, ctx.edition)


@app.get(
    "/v1/registrations/{registration_id}/timeline",
    response_model=TimelineOut,
    responses=ERRORS,
    tags=["people"],
)
async def timeline(registration_id: str, ctx: Ctx) -> TimelineOut:
    """Each step with its time (Beijing), what the buyer must do next and the deadline that applies."""
    edition = ctx.edition
    async with ctx.db.sessions() as session:
        person = await session.scalar(
            select(PersonRegistration)
            .where(PersonRegistration.id == registration_id)
            .options(selectinload(PersonRegistration.events))
        )
    if person is None:
        raise not_found("registration", "报名记录")
    action = NEXT_ACTION.get(person.status)

    def beijing(instant: datetime | None) -> datetime | None:
        return edition.local(instant) if instant else None

    return TimelineOut(
        registration_id=person.id,
        status=_label(person.status),
        next_action=NextAction(zh=action[0], en=action[1]) if action else None,
        deadline=beijing(person.deadline),
        steps=[
            TimelineStepOut(
                seq=event.seq,
                step=event.step,
                status=_label(event.status),
                at=edition.local(event.at),
                deadline=beijing(event.deadline),
                reason=event.reason,
                detail=event.detail,
            )
            for event in person.events
        ],
    )


# ------------------------------------------------------------------------------------------ internal


@app.get(
    "/internal/registrations/{registration_id}",
    response_model=PersonRecord,
    dependencies=[Depends(require_internal)],
    tags=["internal"],
)
async def person_record(registration_id: str, ctx: Ctx) -> PersonRecord:
    """What the certificate and notification services need to know of a person."""
    async with ctx.db.sessions() as session:
        person = await session.scalar(
            select(PersonRegistration)
            .where(PersonRegistration.id == registration_id)
            .options(selectinload(PersonRegistration.unit))
        )
    if person is None:
        raise not_found("registration", "报名记录")
    return PersonRecord(
        registration_id=person.id,
        edition=person.edition,
        unit_id=person.unit_id,
        unit_name=person.unit.name,
        name=person.name,
        nationality=person.nationality,
        mobile=person.mobile,
        email=person.email,
        mission=person.unit.mission,
        sub_mission=person.unit.sub_mission,
        fee_kind=person.fee_kind,
        status=person.status,
        delivery_method=person.delivery_method,
        delivery_address=DeliveryAddress(**person.delivery_address) if person.delivery_address else None,
        photo_key=person.photo_key,
    )


@app.get(
    "/internal/units/{unit_id}/registrations",
    response_model=UnitMembersRecord,
    dependencies=[Depends(require_internal)],
    tags=["internal"],
)
async def unit_members(
    unit_id: str, ctx: Ctx, status: Annotated[RegistrationStatus | None, Query()] = None
) -> UnitMembersRecord:
    """The unit's mission and its people (those in ``status``, if given): what the payment service needs."""
    query = select(PersonRegistration).where(PersonRegistration.unit_id == unit_id)
    if status is not None:
        query = query.where(PersonRegistration.status == status)
    async with ctx.db.sessions() as session:
        unit = await session.get(Unit, unit_id)
        if unit is None:
            raise not_found("unit", "单位")
        people = (await session.scalars(query.order_by(PersonRegistration.created_at))).all()
    return UnitMembersRecord(
        unit_id=unit.id,
        edition=unit.edition,
        mission=unit.mission,
        sub_mission=unit.sub_mission,
        members=[
            UnitMemberRecord(registration_id=p.id, status=p.status, fee_kind=p.fee_kind) for p in people
        ],
    )
