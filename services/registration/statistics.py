"""An edition's registrations counted by placement and status, for the review service's statistics
(GET /internal/statistics, with the service token).

Included in the registration app with ``app.include_router(statistics.router)``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from sqlalchemy import func, select

from services.registration.models import PersonRegistration, Unit
from shared.http import require_internal
from shared.records import PeopleCountRecord, RegistrationStatisticsRecord, UnitCountRecord
from shared.service import ServiceContext, context

router = APIRouter(tags=["internal"])
Ctx = Annotated[ServiceContext, Depends(context)]

_PLACEMENT = (Unit.mission, Unit.sub_mission, Unit.statistics_mission, Unit.statistics_sub_mission)


@router.get(
    "/internal/statistics",
    response_model=RegistrationStatisticsRecord,
    dependencies=[Depends(require_internal)],
)
async def registration_statistics(
    ctx: Ctx, edition: Annotated[str, Query(min_length=1, max_length=16)]
) -> RegistrationStatisticsRecord:
    """People counted by (mission, sub-mission, statistics mission, statistics sub-mission, status),
    and units by the same placement and their review status: two GROUP BY queries, no rows loaded."""
    people_query = (
        select(*_PLACEMENT, PersonRegistration.status, func.count())
        .select_from(PersonRegistration)
        .join(Unit, PersonRegistration.unit_id == Unit.id)
        .where(Unit.edition == edition)
        .group_by(*_PLACEMENT, PersonRegistration.status)
    )
    units_query = (
        select(*_PLACEMENT, Unit.status, func.count())
        .where(Unit.edition == edition)
        .group_by(*_PLACEMENT, Unit.status)
    )
    async with ctx.db.sessions() as session:
        people = (await session.execute(people_query)).all()
        units = (await session.execute(units_query)).all()
    return RegistrationStatisticsRecord(
        edition=edition,
        people=[
            PeopleCountRecord(
                mission=mission,
                sub_mission=sub_mission,
                statistics_mission=statistics_mission,
                statistics_sub_mission=statistics_sub_mission,
                status=status,
                people=count,
            )
            for mission, sub_mission, statistics_mission, statistics_sub_mission, status, count in people
        ],
        units=[
            UnitCountRecord(
                mission=mission,
                sub_mission=sub_mission,
                statistics_mission=statistics_mission,
                statistics_sub_mission=statistics_sub_mission,
                status=status,
                units=count,
            )
            for mission, sub_mission, statistics_mission, statistics_sub_mission, status, count in units
        ],
    )
