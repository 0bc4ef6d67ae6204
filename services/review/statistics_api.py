"""Statistics per trade mission and sub-mission, as JSON, CSV or Excel (``services.review.statistics``
says what each column counts and how industrial missions roll up).

Included in the review app with ``app.include_router(statistics_api.router)``. Who sees what is the
``statistics_scope`` dependency, which the app replaces with the staff member's scope
(``app.dependency_overrides[statistics_scope] = ...``).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import httpx
from fastapi import APIRouter, Depends, Query, Response

from services.review.statistics import (
    EXPORT_COLUMNS,
    Statistics,
    build_statistics,
    export_rows,
    fetch_registration_statistics,
)
from shared import exports
from shared.auth import outside_your_mission
from shared.catalogue import load_missions
from shared.http import ApiError, ErrorBody
from shared.records import registration_unavailable
from shared.service import ServiceContext, context

router = APIRouter(tags=["statistics"])
Ctx = Annotated[ServiceContext, Depends(context)]


def statistics_scope() -> str | None:
    """The mission whose statistics the caller may see (its rows, with the industrial units rolled into
    it), or None for every mission. This default sees everything: the review app overrides it with the
    logged-in staff member's scope."""
    return None


MissionScope = Annotated[str | None, Depends(statistics_scope)]


class StatisticsFormat(StrEnum):
    JSON = "json"
    CSV = "csv"
    XLSX = "xlsx"


RESPONSES: dict[int | str, dict[str, object]] = {
    200: {
        "description": "JSON; or with format=csv or xlsx, a download",
        "content": {exports.CSV_MEDIA_TYPE: {}, exports.XLSX_MEDIA_TYPE: {}},
    },
    **{code: {"model": ErrorBody} for code in (401, 403, 404, 422, 503)},
}


@router.get("/v1/statistics", response_model=Statistics, responses=RESPONSES)
async def statistics(
    ctx: Ctx,
    mission_scope: MissionScope,
    edition: Annotated[
        str | None,
        Query(pattern=r"^[A-Za-z0-9_-]{1,16}$", description="the edition's code; default: the current one"),
    ] = None,
    mission: Annotated[str | None, Query(description="one mission (and its sub-missions) only")] = None,
    format: StatisticsFormat = StatisticsFormat.JSON,
) -> Statistics | Response:
    """Units and people per trade mission and sub-mission: registered, under review, unpaid, paid,
    approved, certificates issued, refunded, and more. A unit of an industrial mission counts in that
    mission and in the regional, Central Enterprise or NHC mission it rolls into, whose rows say how
    much came from each industrial mission (``from_industrial`` rows). Totals count everyone once.

    ``format=csv`` (UTF-8 with a byte-order mark, for Excel) or ``format=xlsx`` downloads the same rows
    with bilingual column names."""
    catalogue = load_missions()
    if mission is not None and catalogue.get(mission) is None:
        raise ApiError(
            404, "unknown_mission", f"no trade mission {mission!r}", "未找到该交易团", field="mission"
        )
    if mission_scope is not None and mission is not None and mission != mission_scope:
        raise outside_your_mission()
    shown = mission or mission_scope
    edition_code = edition or ctx.edition.code
    try:
        record = await fetch_registration_statistics(ctx, edition_code)
    except httpx.HTTPError as exc:
        raise registration_unavailable() from exc
    result = build_statistics(record, catalogue, mission=shown)
    if format is StatisticsFormat.JSON:
        return result
    stamp = ctx.edition.local(result.generated_at).strftime("%Y%m%d-%H%M")
    name = "-".join(part for part in ("statistics", edition_code, shown, stamp) if part)
    return exports.download(
        EXPORT_COLUMNS,
        export_rows(result),
        name=name,
        excel=format is StatisticsFormat.XLSX,
        sheet_title="交易团统计 Statistics",
    )
