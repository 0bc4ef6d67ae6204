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
from shared.masking import mask_id_number
from shared.records import PersonReviewRecord, UnitData, UnitPersonRecord, UnitRecord
from shared.service import ServiceContext, context

router = APIRouter(dependencies=[Depends(require_internal)], tags=["internal"])
Ctx = Annotated[ServiceContext, Depends(context)]
NOT_FOUND: dict[int | str, dict[str, object]] = {404: {"model": ErrorBody}}


def masked(id_number: str) -> str:
    """The first three and the last four characters (shared/masking.py: one rule everywhere)."""
    return mask_id_number(id_number)


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
            **UnitData.model_validate(unit, from_attributes=True).model_dump(),
            unit_id=unit.id,
            people=[
                UnitPersonRecord(registration_id=person.id, name=person.name, status=person.status)
                for person in people
            ],
        )


async def person_with_unit(ctx: ServiceContext, registration_id: str) -> PersonRegistration:
    """Anyone's registration with its unit, for the internal routes (the caller holds the service
    token: no ownership to check); 404 if there is none."""
    async with ctx.db.sessions() as session:
        person = await session.scalar(
            select(PersonRegistration)
            .where(PersonRegistration.id == registration_id)
            .options(selectinload(PersonRegistration.unit))
        )
    if person is None:
        raise not_found("registration", "报名记录")
    return person


@router.get(
    "/internal/registrations/{registration_id}/review-data",
    response_model=PersonReviewRecord,
    responses=NOT_FOUND,
)
async def person_review_record(registration_id: str, ctx: Ctx) -> PersonReviewRecord:
    person = await person_with_unit(ctx, registration_id)
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
