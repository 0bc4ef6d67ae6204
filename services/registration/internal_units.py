"""What mission staff review, for the review service (``/internal/...``, with the service token): a unit's
data with its people, and a person's data as the personnel review needs it.

Included in the registration app with ``app.include_router(internal_units.router)``. The review service
scopes both to the staff member's mission before it asks; these routes answer any caller holding the
service token. Identity document numbers leave this service masked: no review role needs the full
number (it was checked by its checksum at registration), and an answer that never carries it cannot
leak it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from services.registration.models import PersonRegistration, Unit
from shared.http import ErrorBody, not_found, require_internal
from shared.records import PersonReviewRecord, UnitPersonRecord, UnitRecord
from shared.service import ServiceContext, context

router = APIRouter(dependencies=[Depends(require_internal)], tags=["internal"])
Ctx = Annotated[ServiceContext, Depends(context)]
NOT_FOUND: dict[int | str, dict[str, object]] = {404: {"model": ErrorBody}}


def masked(id_number: str) -> str:
    """The first three and the last four characters (as the buyer's own API shows it)."""
    return id_number[:3] + "*" * max(len(id_number) - 7, 0) + id_number[-4:]


@router.get("/internal/units/{unit_id}", response_model=UnitRecord, responses=NOT_FOUND)
async def unit_record(unit_id: str, ctx: Ctx) -> UnitRecord:
    async with ctx.db.sessions() as session:
        unit = await session.get(Unit, unit_id)
        if unit is None:
            raise not_found("unit", "单位")
        people = await session.scalars(
            select(PersonRegistration)
            .where(PersonRegistration.unit_id == unit.id)
            .order_by(PersonRegistration.created_at, PersonRegistration.id)
        )
        return UnitRecord(
            unit_id=unit.id,
            edition=unit.edition,
            kind=unit.kind,
            affiliation=unit.affiliation,
            name=unit.name,
            credit_code=unit.credit_code,
            country=unit.country,
            foreign_registration_no=unit.foreign_registration_no,
            address=unit.address,
            industry=unit.industry,
            contact_name=unit.contact_name,
            contact_mobile=unit.contact_mobile,
            contact_email=unit.contact_email,
            referral_code=unit.referral_code,
            mission=unit.mission,
            sub_mission=unit.sub_mission,
            statistics_mission=unit.statistics_mission,
            statistics_sub_mission=unit.statistics_sub_mission,
            status=unit.status,
            review_round=unit.review_round,
            reject_reason=unit.reject_reason,
            created_at=unit.created_at,
            updated_at=unit.updated_at,
            people=[
                UnitPersonRecord(registration_id=person.id, name=person.name, status=person.status)
                for person in people
            ],
        )


@router.get(
    "/internal/registrations/{registration_id}/review-data",
    response_model=PersonReviewRecord,
    responses=NOT_FOUND,
)
async def person_review_record(registration_id: str, ctx: Ctx) -> PersonReviewRecord:
    async with ctx.db.sessions() as session:
        person = await session.scalar(
            select(PersonRegistration)
            .where(PersonRegistration.id == registration_id)
            .options(selectinload(PersonRegistration.unit))
        )
    if person is None:
        raise not_found("registration", "报名记录")
    return PersonReviewRecord(
        registration_id=person.id,
        edition=person.edition,
        unit_id=person.unit_id,
        unit_name=person.unit.name,
        mission=person.unit.mission,
        sub_mission=person.unit.sub_mission,
        name=person.name,
        id_type=person.id_type,
        id_number_masked=masked(person.id_number),
        nationality=person.nationality,
        job_title=person.job_title,
        personnel_label=person.personnel_label,
        entrance_date=person.entrance_date,
        delivery_method=person.delivery_method,
        fee_kind=person.fee_kind,
        revalidate_certificate_no=person.previous_certificate_no,
        status=person.status,
        photo_key=person.photo_key,
        created_at=person.created_at,
    )
