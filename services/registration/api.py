"""The registration service's HTTP API: units, people, photos and progress timelines."""

from __future__ import annotations

import hashlib
import io
import re
from datetime import UTC, date, datetime
from typing import Annotated

from fastapi import Body, Depends, Query
from PIL import Image, UnidentifiedImageError
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from services.registration import (
    accounts,
    internal_units,
    pages,
    previous_api,
    sessions,
    statistics,
    validation,
)
from services.registration.auth import CurrentAccount, own_person, own_unit
from services.registration.deadlines import current_payment_deadlines, extended
from services.registration.models import (
    Account,
    AccountKind,
    PaymentDeadlineExtension,
    PersonRegistration,
    PersonRevision,
    PreviousBuyer,
    RevisionStatus,
    Unit,
    UnitRevision,
)
from services.registration.previous import (
    certificate_number_pattern,
    edition_number,
    fee_kind_for,
    holder_certificate,
    is_preferentially_reissuable,
    is_revalidatable,
    revalidation_refusal,
    revalidation_refusal_for,
)
from services.registration.progress import NEXT_ACTION
from services.registration.revisions import Identity, PersonalData, unit_data
from services.registration.schemas import (
    DeadlineExtensionIn,
    DeadlineExtensionOut,
    DeliveryAddressIn,
    EditionOut,
    InstantOut,
    NextAction,
    PaymentDeadlinesOut,
    PersonChangeIn,
    PersonIn,
    PersonOut,
    PhotoUploadOut,
    RegistrationStatusOut,
    StatusLabel,
    TimelineOut,
    TimelineStepOut,
    UnitIn,
    UnitOut,
    WithdrawalIn,
)
from services.registration.starts import commit_then_start
from shared import contracts as c
from shared.catalogue import Edition
from shared.db import utcnow
from shared.http import ApiError, ErrorBody, execute_update, not_found, require_internal
from shared.ids import new_id
from shared.records import (
    DeliveryAddress,
    PersonRecord,
    UnitMemberRecord,
    UnitMembersRecord,
    is_mainland_mobile,
)
from shared.service import ServiceContext, context, create_service_app
from shared.temporal import registration_workflow_id, unit_workflow_id
from shared.types import DeliveryMethod, FeeKind, IdType, PaymentMethod, RegistrationStatus, UnitKind
from shared.web import mount_static

app = create_service_app(
    "registration",
    title="Buyer registration",
    description="Units and their people register for an edition, upload photos and follow their progress.",
)
app.include_router(accounts.router)
app.include_router(previous_api.router)
app.include_router(statistics.router)
app.include_router(sessions.router)
app.include_router(internal_units.router)
app.include_router(pages.router)  # the buyer portal's pages, under /portal
mount_static(app)
Ctx = Annotated[ServiceContext, Depends(context)]
ERRORS: dict[int | str, dict[str, object]] = {code: {"model": ErrorBody} for code in (401, 404, 409, 422)}
PHOTO_MAX_BYTES = 2 * 1024 * 1024
PHOTO_UPLOAD_SECONDS = 900


def check_entrance_date(edition: Edition, day: date) -> None:
    """The day of entrance is one of the expo's days (Beijing dates)."""
    first, last = (
        edition.local(edition.deadlines.expo_opens).date(),
        edition.local(edition.deadlines.expo_closes).date(),
    )
    if not first <= day <= last:
        raise validation.invalid(
            "entrance_date",
            "entrance_date_outside_expo",
            f"the day of entrance must be an expo day, {first} to {last}",
            f"入场日期须在展会期间（{first}至{last}）",
        )


def ensure_registration_open(edition: Edition) -> None:
    if not edition.registration_open(utcnow()):
        raise registration_closed(edition)


# ------------------------------------------------------------------------------------------ units


@app.post("/v1/units", status_code=201, response_model=UnitOut, responses=ERRORS, tags=["units"])
async def register_unit(body: UnitIn, ctx: Ctx, account: CurrentAccount) -> Unit:
    """Register the account's unit (affiliation) and put it in its trade mission's review queue. An
    individual's account registers an individual "unit": their own affiliation data (FAQ XIV)."""
    edition = ctx.edition
    ensure_registration_open(edition)
    if account.unit_id is not None:
        raise ApiError(
            409,
            "unit_exists",
            f"this account has already registered its unit ({account.unit_id})",
            "该账户已登记单位信息",
        )
    individual = account.kind is AccountKind.INDIVIDUAL
    if individual != (body.kind is UnitKind.INDIVIDUAL):
        raise validation.invalid(
            "kind",
            "unit_kind_mismatch",
            "an individual's account registers kind 'individual', a unit's account any other kind",
            "个人账户的单位类型须为“个人”，单位账户不能选择“个人”",
        )
    data = unit_data(body)
    unit_id = new_id("U")
    unit = Unit(
        id=unit_id,
        edition=edition.code,
        workflow_id=unit_workflow_id(edition.code, unit_id),
        **data.model_dump(),
    )

    async def forget(session: AsyncSession) -> None:
        await session.execute(
            update(Account).where(Account.id == account.id, Account.unit_id == unit_id).values(unit_id=None)
        )
        await session.execute(delete(Unit).where(Unit.id == unit_id))

    # Started once the unit is committed: if Temporal refuses, the unit is removed again (503) and the
    # buyer retries.
    async with commit_then_start(ctx, forget) as saving:
        session = saving.session
        session.add(unit)
        try:
            await session.flush()
        except IntegrityError as exc:
            raise unit_already_registered() from exc
        owner = await session.get(Account, account.id)
        assert owner is not None
        owner.unit_id = unit_id
        saving.then_start(
            "UnitReview",
            c.UnitStart(
                edition=edition.code,
                unit_id=unit_id,
                mission=unit.mission,
                sub_mission=unit.sub_mission,
                registration_closes=edition.deadlines.registration_closes,
                expo_closes=edition.deadlines.expo_closes,
                unit_kind=unit.kind,
            ),
            id=unit.workflow_id,
            summary=f"Unit {unit_id} · {unit.mission}",
        )
    return unit


def unit_already_registered() -> ApiError:
    return ApiError(
        409,
        "unit_already_registered",
        "this unit is already registered for the edition",
        "该单位已报名本届展会",
        field="credit_code",
    )


@app.get("/v1/units/{unit_id}", response_model=UnitOut, responses=ERRORS, tags=["units"])
async def get_unit(unit_id: str, ctx: Ctx, account: CurrentAccount) -> Unit:
    async with ctx.db.sessions() as session:
        return own_unit(account, await session.get(Unit, unit_id))


@app.get("/v1/units/{unit_id}/people", response_model=list[PersonOut], responses=ERRORS, tags=["people"])
async def unit_people(unit_id: str, ctx: Ctx, account: CurrentAccount) -> list[PersonOut]:
    """The unit's people, in the order they registered, each with the status and deadline that apply."""
    async with ctx.db.sessions() as session:
        unit = own_unit(account, await session.get(Unit, unit_id))
        people = await session.scalars(
            select(PersonRegistration)
            .where(PersonRegistration.unit_id == unit.id)
            .order_by(PersonRegistration.created_at, PersonRegistration.id)
        )
        return [_person_out(person, ctx.edition) for person in people]


@app.put("/v1/units/{unit_id}", response_model=UnitOut, responses=ERRORS, tags=["units"])
async def change_unit(unit_id: str, body: UnitIn, ctx: Ctx, account: CurrentAccount) -> Unit:
    """Modify the unit's data (checked as at registration) until registration closes: a rejected unit
    is resubmitted, an approved one is reviewed again. The unit stays in its trade mission."""
    edition = ctx.edition
    ensure_registration_open(edition)
    data = unit_data(body)
    revision_id = new_id("V")
    async with ctx.db.transaction() as session:
        unit = own_unit(account, await session.get(Unit, unit_id))
        if body.kind is not unit.kind and UnitKind.INDIVIDUAL in (body.kind, unit.kind):
            raise validation.invalid(
                "kind",
                "unit_kind_mismatch",
                "an individual stays an individual",
                "个人不能改为单位，单位不能改为个人",
            )
        if (data.mission, data.sub_mission) != (unit.mission, unit.sub_mission):
            # The unit's workflow, its members' and the review queue are the mission's.
            raise ApiError(
                409,
                "mission_fixed",
                f"the unit belongs to the trade mission {unit.mission}"
                f"{f' ({unit.sub_mission})' if unit.sub_mission else ''}; the new data would place it in"
                f" {data.mission}{f' ({data.sub_mission})' if data.sub_mission else ''}, and a registered"
                " unit cannot move: contact your trade mission's secretariat",
                "单位报名后不能更换所属交易团（分团），如需调整请联系交易团秘书处",
                field="mission",
            )
        if data.credit_code and data.credit_code != unit.credit_code:
            taken = await session.scalar(
                select(Unit.id).where(
                    Unit.edition == unit.edition, Unit.credit_code == data.credit_code, Unit.id != unit.id
                )
            )
            if taken is not None:
                raise unit_already_registered()
        session.add(UnitRevision(id=revision_id, unit_id=unit.id, data=data.model_dump(mode="json")))
    change = c.UnitChange(revision_id=revision_id)
    await _change(ctx, UnitRevision, revision_id, unit.workflow_id, c.UPDATE_CHANGE_UNIT, change)
    async with ctx.db.sessions() as session:
        changed = await session.get(Unit, unit_id)
    assert changed is not None
    return changed


async def _change(
    ctx: ServiceContext,
    revisions: type[UnitRevision] | type[PersonRevision],
    revision_id: str,
    workflow_id: str,
    update_name: str,
    change: c.UnitChange | c.PersonChange,
) -> c.DecisionResult:
    """Ask the workflow to apply a saved revision (its update applies it if its rules allow); a refusal
    discards the revision and answers 409 with the workflow's code. If Temporal could not be asked, it
    is unknown whether the workflow took it: the revision stays pending."""
    # The workflow has closed: the edition is over for a unit, the registration for a person.
    closed = registration_ended() if revisions is PersonRevision else registration_closed(ctx.edition)
    try:
        return await execute_update(ctx.temporal, workflow_id, update_name, change, closed=closed)
    except ApiError:
        async with ctx.db.transaction() as session:
            await session.execute(
                update(revisions)
                .where(revisions.id == revision_id, revisions.status == RevisionStatus.PENDING)
                .values(status=RevisionStatus.DISCARDED)
            )
        raise


def registration_closed(edition: Edition) -> ApiError:
    closes = edition.local(edition.deadlines.registration_closes)
    return ApiError(
        409,
        "registration_closed",
        f"Registration closed at {closes:%Y-%m-%d %H:%M} Beijing time. There is no on-site registration.",
        f"报名已于北京时间{closes:%Y-%m-%d %H:%M}截止，展会不设现场报名。",
    )


def registration_ended() -> ApiError:
    return ApiError(
        409,
        "registration_ended",
        "the registration has ended (expired, withdrawn or refunded)",
        "该报名已结束（已过期、已撤回或已退款）",
    )


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
        nationality=person.nationality,
        mobile=person.mobile,
        email=person.email,
        job_title=person.job_title,
        personnel_label=person.personnel_label,
        fee_kind=person.fee_kind,
        delivery_method=person.delivery_method,
        delivery_address=DeliveryAddress(**person.delivery_address) if person.delivery_address else None,
        entrance_date=person.entrance_date,
        status=_label(person.status),
        deadline=edition.local(person.deadline) if person.deadline else None,
        revalidate_certificate_no=person.previous_certificate_no,
        photo_uploaded=person.photo_key is not None,
        photo_upload=upload,
    )


def _check_delivery(
    method: DeliveryMethod, address: DeliveryAddressIn | None, unit: Unit, nationality: str
) -> dict[str, str] | None:
    """The delivery method suits the person (FAQ VIII); answers the address to store."""
    if method is DeliveryMethod.EXPRESS:
        if address is None:
            raise validation.invalid(
                "delivery_address",
                "address_required",
                "express delivery needs an address",
                "快递寄送请填写收件地址",
            )
        mobile = validation.mobile(address.mobile, "delivery_address.mobile")
        if not is_mainland_mobile(mobile):
            raise validation.invalid(
                "delivery_address.mobile",
                "mainland_only",
                "express delivery is for the Chinese mainland only: give a mainland mobile for the courier",
                "快递寄送仅限中国大陆地区，请填写中国大陆手机号码",
            )
        province = validation.mainland_province(address.province, "delivery_address.province")
        if not address.valid_for_six_months:
            raise validation.invalid(
                "delivery_address.valid_for_six_months",
                "address_validity_unconfirmed",
                "confirm that the address will reach you for the next six months",
                "请确认该收件地址在未来6个月内有效",
            )
        # The confirmation is a condition of the address, not part of it.
        stored = address.model_dump(exclude={"valid_for_six_months"})
        return stored | {"mobile": mobile, "province": province}
    if method is DeliveryMethod.ONSITE_PICKUP and unit.country == "CN" and nationality == "CN":
        raise validation.invalid(
            "delivery_method",
            "onsite_pickup_overseas_only",
            "on-site pickup is for overseas buyers",
            "现场领取仅适用于境外采购商",
        )
    return address.model_dump(exclude={"valid_for_six_months"}) if address else None


def _identity(body: PersonIn, unit: Unit) -> Identity:
    """A person's validated identity and data, as at registration (the same for a substitute)."""
    id_number = validation.id_number(body.id_type, body.id_number)
    if body.id_type is IdType.RESIDENT_ID and body.nationality != "CN":
        raise validation.invalid(
            "nationality",
            "nationality_mismatch",
            "a resident identity card holder is a Chinese national",
            "持居民身份证者国籍应为中国",
        )
    return Identity(
        id_type=body.id_type,
        id_number=id_number,
        nationality=body.nationality,
        **_personal_data(body, body.delivery_method, unit, body.nationality).model_dump(),
    )


def _personal_data(
    body: PersonChangeIn, method: DeliveryMethod, unit: Unit, nationality: str
) -> PersonalData:
    return PersonalData(
        name=body.name,
        mobile=validation.mobile(body.mobile),
        email=str(body.email),
        job_title=body.job_title,
        personnel_label=body.personnel_label,
        delivery_address=_check_delivery(method, body.delivery_address, unit, nationality),
        entrance_date=body.entrance_date,
    )


def already_registered() -> ApiError:
    return ApiError(
        409,
        "already_registered",
        "this person is already registered for the edition",
        "该人员已报名本届展会，每人每届只能报名一次",
        field="id_number",
    )


def _certificate_number(edition: Edition, value: str) -> str:
    """A certificate number of the editions whose cards count now: the previous one's (re-validated,
    FAQ VII) or the one before (reissued at the preferential rate)."""
    field = "revalidate_certificate_no"
    editions = [code for code in (edition.previous_edition, edition.preferential_reissue_edition) if code]
    if not editions:
        raise validation.invalid(
            field,
            "revalidation_not_offered",
            "this edition re-validates no certificates",
            "本届展会不办理证件延续使用",
        )
    number = value.strip().upper()
    if not any(re.fullmatch(certificate_number_pattern(code), number) for code in editions):
        example = f"B{edition_number(editions[0]):02d}-0001234"
        raise validation.invalid(
            field,
            "invalid_certificate_no",
            f"not a certificate number of the previous editions (they look like {example})",
            f"往届证件编号格式有误（应形如{example}）",
        )
    return number


async def _previous_card(
    session: AsyncSession, edition: Edition, number: str, identity: Identity, unit: Unit
) -> PreviousBuyer:
    """The person's own card of an earlier edition, checked for re-validation (unchanged data, FAQ VII)
    or for the preferential reissue (a card in good order)."""
    previous = await holder_certificate(session, edition, number, identity.id_type, identity.id_number)
    if is_revalidatable(previous, edition) or previous.edition == edition.previous_edition:
        refusal = revalidation_refusal(
            previous,
            edition=edition,
            name=identity.name,
            unit_name=unit.name,
            credit_code_or_registration_no=unit.credit_code or unit.foreign_registration_no,
            mission=unit.mission,
            sub_mission=unit.sub_mission,
            personnel_label=identity.personnel_label,
            photo_sha256=None,  # compared when the photo is confirmed
            entrance_date=identity.entrance_date,
        )
        if refusal is not None:
            raise refusal
    elif not is_preferentially_reissuable(previous, edition):
        raise ApiError(
            409,
            "certificate_lost",
            f"certificate {previous.certificate_no} was reported lost or damaged: register for a new one",
            f"证件{previous.certificate_no}已挂失或损坏，请办理新证件",
            field="revalidate_certificate_no",
        )
    return previous


def _photo_upload(ctx: ServiceContext, key: str) -> PhotoUploadOut:
    url = ctx.store.presigned_put(ctx.settings.bucket_photos, key, "image/jpeg", PHOTO_UPLOAD_SECONDS)
    return PhotoUploadOut(url=url, headers={"Content-Type": "image/jpeg"}, expires_in=PHOTO_UPLOAD_SECONDS)


def _photo_key(person: PersonRegistration) -> str:
    """Where the person's photo goes: a substitute's is their own, never the predecessor's."""
    suffix = f"-{person.identity_revision_id}" if person.identity_revision_id else ""
    return f"{person.edition}/{person.unit_id}/{person.id}{suffix}.jpg"


@app.post(
    "/v1/units/{unit_id}/people", status_code=201, response_model=PersonOut, responses=ERRORS, tags=["people"]
)
async def register_person(unit_id: str, body: PersonIn, ctx: Ctx, account: CurrentAccount) -> PersonOut:
    """Register a person of the unit. The answer carries a presigned URL to upload the photo to.

    Holders of the previous edition's certificate whose data is unchanged give its number
    (``revalidate_certificate_no``) to re-validate it at the re-validation fee (FAQ VII)."""
    edition = ctx.edition
    ensure_registration_open(edition)
    previous_number = None
    if body.revalidate_certificate_no is not None:
        previous_number = _certificate_number(edition, body.revalidate_certificate_no)
    registration_id = new_id("R")
    check_entrance_date(edition, body.entrance_date)

    async def forget(session: AsyncSession) -> None:
        await session.execute(delete(PersonRegistration).where(PersonRegistration.id == registration_id))

    # Started once the person is committed: if Temporal refuses, the person is removed again (503).
    async with commit_then_start(ctx, forget) as saving:
        session = saving.session
        unit = own_unit(account, await session.get(Unit, unit_id))
        if unit.kind is UnitKind.INDIVIDUAL and await session.scalar(
            select(PersonRegistration.id).where(PersonRegistration.unit_id == unit.id)
        ):
            raise ApiError(
                409,
                "individual_registers_once",
                "an individual's account registers one person: its holder",
                "个人账户只能为本人报名一人",
            )
        identity = _identity(body, unit)
        fee_kind = FeeKind.STANDARD
        if previous_number is not None:
            previous = await _previous_card(session, edition, previous_number, identity, unit)
            fee_kind = fee_kind_for(previous, edition)
            if await session.scalar(
                select(PersonRegistration.id).where(
                    PersonRegistration.edition == edition.code,
                    PersonRegistration.previous_certificate_no == previous_number,
                )
            ):
                raise ApiError(
                    409,
                    "certificate_already_revalidated",
                    "this certificate is already being re-validated or reissued for the edition",
                    "该证件已申请本届延续使用或补办",
                    field="revalidate_certificate_no",
                )
        person = PersonRegistration(
            id=registration_id,
            edition=edition.code,
            unit_id=unit.id,
            fee_kind=fee_kind,
            previous_certificate_no=previous_number,
            delivery_method=body.delivery_method,
            workflow_id=registration_workflow_id(edition.code, registration_id),
            **identity.model_dump(),
        )
        session.add(person)
        try:
            await session.flush()
        except IntegrityError as exc:
            raise already_registered() from exc
        saving.then_start(
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
                payment_deadlines=await current_payment_deadlines(session, edition),
                expo_closes=edition.deadlines.expo_closes,
                # Re-validation re-activates the old card; a reissue makes a new one.
                previous_certificate_no=previous_number if fee_kind is FeeKind.REVALIDATION else None,
                unit_kind=unit.kind,
            ),
            id=person.workflow_id,
            summary=f"Registration {registration_id} · unit {unit.id} · {unit.mission}",
        )
    return _person_out(person, edition, _photo_upload(ctx, _photo_key(person)))


async def _person(session: AsyncSession, account: Account, registration_id: str) -> PersonRegistration:
    """The caller's own registration (404 for anyone else's)."""
    person = await session.scalar(
        select(PersonRegistration)
        .where(PersonRegistration.id == registration_id)
        .options(selectinload(PersonRegistration.unit), selectinload(PersonRegistration.events))
    )
    return own_person(account, person)


@app.get("/v1/registrations/{registration_id}", response_model=PersonOut, responses=ERRORS, tags=["people"])
async def get_person(registration_id: str, ctx: Ctx, account: CurrentAccount) -> PersonOut:
    async with ctx.db.sessions() as session:
        return _person_out(await _person(session, account, registration_id), ctx.edition)


@app.put("/v1/registrations/{registration_id}", response_model=PersonOut, responses=ERRORS, tags=["people"])
async def change_person(
    registration_id: str, body: PersonChangeIn, ctx: Ctx, account: CurrentAccount
) -> PersonOut:
    """Change personal data before the personnel review passes (under review, it is reviewed anew).

    A re-validated certificate is unchanged: its holder's name and personnel label stay (FAQ VII)."""
    check_entrance_date(ctx.edition, body.entrance_date)
    revision_id = new_id("V")
    async with ctx.db.transaction() as session:
        person = await _person(session, account, registration_id)
        data = _personal_data(body, person.delivery_method, person.unit, person.nationality)
        if person.fee_kind is FeeKind.REVALIDATION:
            for field in ("name", "personnel_label", "entrance_date"):
                if getattr(data, field) != getattr(person, field):
                    raise ApiError(
                        409,
                        "certificate_data_fixed",
                        "a re-validated certificate keeps the data printed on it: the name, personnel"
                        " label and day of entrance cannot change",
                        "证件延续使用须证件信息不变，姓名、人员标签和入场日期不能修改",
                        field=field,
                    )
        session.add(
            PersonRevision(id=revision_id, registration_id=person.id, data=data.model_dump(mode="json"))
        )
    change = c.PersonChange(revision_id=revision_id, substitution=False)
    await _change(ctx, PersonRevision, revision_id, person.workflow_id, c.UPDATE_CHANGE_PERSON, change)
    async with ctx.db.sessions() as session:
        return _person_out(await _person(session, account, registration_id), ctx.edition)


@app.post(
    "/v1/registrations/{registration_id}/substitute",
    response_model=PersonOut,
    responses=ERRORS,
    tags=["people"],
)
async def substitute_person(
    registration_id: str, body: PersonIn, ctx: Ctx, account: CurrentAccount
) -> PersonOut:
    """Another person takes this place before the personnel review passes (FAQ X): the registration
    and its payment stay, the new person is reviewed and uploads their own photo (URL in the answer).
    The delivery method stays as registered."""
    edition = ctx.edition
    if body.revalidate_certificate_no is not None:
        raise validation.invalid(
            "revalidate_certificate_no",
            "revalidation_needs_own_registration",
            "a certificate is re-validated by its holder's own registration, not as a substitute",
            "证件延续使用须由原持证人本人报名办理，不能以换人方式办理",
        )
    check_entrance_date(edition, body.entrance_date)
    revision_id = new_id("V")
    async with ctx.db.transaction() as session:
        person = await _person(session, account, registration_id)
        if body.delivery_method is not person.delivery_method:
            raise validation.invalid(
                "delivery_method",
                "delivery_method_fixed",
                f"the certificate is delivered as registered ({person.delivery_method.value})",
                "证件领取方式以报名时所选为准，不能修改",
            )
        identity = _identity(body, person.unit)
        if await session.scalar(
            select(PersonRegistration.id).where(
                PersonRegistration.edition == person.edition,
                PersonRegistration.id_type == identity.id_type,
                PersonRegistration.id_number == identity.id_number,
            )
        ):
            raise already_registered()
        session.add(
            PersonRevision(
                id=revision_id,
                registration_id=person.id,
                substitution=True,
                data=identity.model_dump(mode="json"),
            )
        )
    change = c.PersonChange(revision_id=revision_id, substitution=True)
    await _change(ctx, PersonRevision, revision_id, person.workflow_id, c.UPDATE_CHANGE_PERSON, change)
    async with ctx.db.sessions() as session:
        person = await _person(session, account, registration_id)
    return _person_out(person, edition, _photo_upload(ctx, _photo_key(person)))


@app.post(
    "/v1/registrations/{registration_id}/withdraw",
    response_model=RegistrationStatusOut,
    responses=ERRORS,
    tags=["people"],
)
async def withdraw(
    registration_id: str,
    ctx: Ctx,
    account: CurrentAccount,
    body: Annotated[WithdrawalIn | None, Body()] = None,
) -> RegistrationStatusOut:
    """Withdraw before payment, or after it and before the personnel review (the fee is refunded)."""
    async with ctx.db.sessions() as session:
        person = await _person(session, account, registration_id)
    request = c.Withdrawal(requested_by=(body or WithdrawalIn()).requested_by)
    result = await execute_update(
        ctx.temporal, person.workflow_id, c.UPDATE_WITHDRAW, request, closed=registration_ended()
    )
    return RegistrationStatusOut(registration_id=person.id, status=_label(RegistrationStatus(result.status)))


@app.post(
    "/v1/registrations/{registration_id}/photo-upload",
    response_model=PhotoUploadOut,
    responses=ERRORS,
    tags=["people"],
)
async def new_photo_upload(registration_id: str, ctx: Ctx, account: CurrentAccount) -> PhotoUploadOut:
    """A fresh presigned URL for the photo (the one given at registration expires)."""
    async with ctx.db.sessions() as session:
        person = await _person(session, account, registration_id)
    return _photo_upload(ctx, _photo_key(person))


@app.post(
    "/v1/registrations/{registration_id}/photo-confirm",
    response_model=PersonOut,
    responses=ERRORS,
    tags=["people"],
)
async def confirm_photo(registration_id: str, ctx: Ctx, account: CurrentAccount) -> PersonOut:
    """Check the uploaded photo by decoding it (JPEG or PNG, at most 2 MiB, at least 295×413 px)."""
    async with ctx.db.transaction() as session:
        person = await _person(session, account, registration_id)
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
        person.photo_sha256 = hashlib.sha256(data).hexdigest()
        if person.fee_kind is FeeKind.REVALIDATION and person.previous_certificate_no:
            previous = await session.get(PreviousBuyer, person.previous_certificate_no)
            assert previous is not None  # checked when the person registered
            refusal = revalidation_refusal_for(previous, ctx.edition, person, person.unit)
            if refusal is not None:  # the re-validated card keeps its photo (FAQ VII)
                raise refusal
        person.photo_key = key
    return _person_out(person, ctx.edition)


@app.get(
    "/v1/registrations/{registration_id}/timeline",
    response_model=TimelineOut,
    responses=ERRORS,
    tags=["people"],
)
async def timeline(registration_id: str, ctx: Ctx, account: CurrentAccount) -> TimelineOut:
    """Each step with its time (Beijing), what the buyer must do next and the deadline that applies."""
    edition = ctx.edition
    async with ctx.db.sessions() as session:
        person = await _person(session, account, registration_id)
    action = NEXT_ACTION.get(person.status)

    def beijing(instant: datetime | None) -> datetime | None:
        return edition.local(instant) if instant else None

    return TimelineOut(
        registration_id=person.id,
        status=_label(person.status),
        next_action=NextAction(zh=action[0], en=action[1]) if action else None,
        deadline=beijing(person.deadline),
        revalidate_certificate_no=person.previous_certificate_no,
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


# ------------------------------------------------------------------------------------------ editions


def _served_edition(ctx: ServiceContext, code: str) -> Edition:
    edition = ctx.edition
    if code != edition.code:
        raise not_found("edition", "展会届次")
    return edition


def _deadlines_out(edition: Edition, deadlines: c.PaymentDeadlines) -> dict[str, object]:
    def instant(at: datetime) -> InstantOut:
        return InstantOut(beijing=edition.local(at), utc=at.astimezone(UTC))

    return {"edition": edition.code} | {
        method.value: instant(deadlines.closes(method)) for method in PaymentMethod
    }


@app.get("/v1/editions/{edition}", response_model=EditionOut, responses=ERRORS, tags=["editions"])
async def edition_calendar(edition: str, ctx: Ctx) -> EditionOut:
    """The edition's calendar (Beijing time) and fees in fen: what a buyer needs before registering."""
    served = _served_edition(ctx, edition)
    async with ctx.db.sessions() as session:
        deadlines = await current_payment_deadlines(session, served)

    def instant(at: datetime) -> InstantOut:
        return InstantOut(beijing=served.local(at), utc=at.astimezone(UTC))

    calendar = served.deadlines
    return EditionOut(
        edition=served.code,
        name_zh=served.name_zh,
        name_en=served.name_en,
        registration_closes=instant(calendar.registration_closes),
        payment=PaymentDeadlinesOut.model_validate(_deadlines_out(served, deadlines)),
        expo_opens=instant(calendar.expo_opens),
        expo_closes=instant(calendar.expo_closes),
        fees_fen={kind.value: served.fee(kind) for kind in FeeKind},
    )


@app.get(
    "/v1/editions/{edition}/payment-deadlines",
    response_model=PaymentDeadlinesOut,
    responses=ERRORS,
    tags=["editions"],
)
async def payment_deadlines(edition: str, ctx: Ctx) -> PaymentDeadlinesOut:
    """When each payment method closes, as the organiser may have extended it (FAQ VI, XIII)."""
    served = _served_edition(ctx, edition)
    async with ctx.db.sessions() as session:
        deadlines = await current_payment_deadlines(session, served)
    return PaymentDeadlinesOut.model_validate(_deadlines_out(served, deadlines))


@app.post(
    "/v1/editions/{edition}/payment-deadlines",
    status_code=201,
    response_model=DeadlineExtensionOut,
    responses=ERRORS,
    dependencies=[Depends(require_internal)],  # the organiser's staff authentication comes later
    tags=["organiser"],
)
async def extend_payment_deadlines(edition: str, body: DeadlineExtensionIn, ctx: Ctx) -> DeadlineExtensionOut:
    """Extend payment deadlines (never shorten them); every registration and open order waiting on them
    is told by the PaymentDeadlineExtension workflow. Answers the deadlines that now apply."""
    served = _served_edition(ctx, edition)
    given = {method: getattr(body, method.value) for method in PaymentMethod}
    if not any(given.values()):
        raise validation.invalid(
            "qr",
            "deadline_required",
            "give at least one new deadline: qr, b2b or transfer",
            "请至少填写一个新的缴费截止时间",
        )
    extension_id = new_id("X")

    async def forget(session: AsyncSession) -> None:
        await session.execute(
            delete(PaymentDeadlineExtension).where(PaymentDeadlineExtension.id == extension_id)
        )

    # Started once the extension is committed: if Temporal refuses, the extension is removed again (503).
    async with commit_then_start(ctx, forget) as saving:
        session = saving.session
        current = await current_payment_deadlines(session, served)
        for method, new in given.items():
            if new is None:
                continue
            closes = served.local(current.closes(method))
            if new <= current.closes(method):
                raise validation.invalid(
                    method.value,
                    "deadline_not_later",
                    f"the {method.value} deadline is {closes:%Y-%m-%d %H:%M} Beijing time: an extension must be"
                    " later (deadlines are never shortened)",
                    f"当前截止时间为北京时间{closes:%Y-%m-%d %H:%M}，延期后的截止时间须晚于当前截止时间",
                )
            if new >= served.deadlines.expo_closes:
                raise validation.invalid(
                    method.value,
                    "deadline_after_expo",
                    "a payment deadline must fall before the expo closes",
                    "缴费截止时间须早于展会闭幕",
                )
        extension = PaymentDeadlineExtension(
            id=extension_id,
            edition=served.code,
            qr=body.qr,
            b2b=body.b2b,
            transfer=body.transfer,
            extended_by=body.extended_by,
            reason=body.reason,
        )
        session.add(extension)
        deadlines = extended(current, extension)
        saving.then_start(
            "PaymentDeadlineExtension",
            c.DeadlineExtensionStart(edition=served.code, extension_id=extension_id, deadlines=deadlines),
            id=f"deadline-extension-{served.code}-{extension_id}",
            summary=f"Payment deadlines of {served.code} extended ({extension_id})",
        )
    return DeadlineExtensionOut.model_validate(
        _deadlines_out(served, deadlines) | {"extension_id": extension_id}
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
    person = await internal_units.person_with_unit(ctx, registration_id)
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


@app.get(
    "/internal/editions/{edition}/payment-deadlines",
    response_model=c.PaymentDeadlines,
    dependencies=[Depends(require_internal)],
    tags=["internal"],
)
async def current_deadlines(edition: str, ctx: Ctx) -> c.PaymentDeadlines:
    """The edition's payment deadlines now (instants): the payment service sets its orders' by them."""
    served = _served_edition(ctx, edition)
    async with ctx.db.sessions() as session:
        return await current_payment_deadlines(session, served)
