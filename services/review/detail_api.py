"""What staff see of each subject they review: a unit's data, a person's data and photo, and the review's
rounds. Included in the review app with ``app.include_router(detail_api.router)``.

The registration service owns the data (its ``/internal/units/{id}`` and
``/internal/registrations/{id}/review-data`` routes, with the service token); this service decides
who may see it, exactly as for the queue: a subject is visible when its review task's mission is one
the staff member sees. Another mission's subject, and one never queued here, answer 404 as if it did
not exist. Document numbers come masked from the registration service and stay so.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Literal
from urllib.parse import quote

from botocore.exceptions import BotoCoreError, ClientError
from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, Field
from sqlalchemy import select

from services.review.models import ReviewTask, StaffAccount
from services.review.staff import CurrentStaff, sees_mission
from shared import contracts as c
from shared.http import ApiError, ErrorBody, not_found
from shared.records import PersonReviewData, PersonReviewRecord, UnitRecord, ask_registration
from shared.service import ServiceContext, context
from shared.types import Decision

log = logging.getLogger(__name__)
router = APIRouter(tags=["details"])
Ctx = Annotated[ServiceContext, Depends(context)]
RESPONSES: dict[int | str, dict[str, object]] = {code: {"model": ErrorBody} for code in (401, 404, 503)}


# ------------------------------------------------------------------------------------------ bodies


class ReviewRoundOut(BaseModel):
    """One round of a subject's review in this service's queue."""

    round: int
    state: Literal["pending", "decided", "closed"]
    mission: str
    sub_mission: str | None
    opened_at: datetime
    decision: Decision | None
    decided_at: datetime | None
    closed_at: datetime | None = Field(description="taken off the queue without a decision")
    close_reason: str | None
    workflow_id: str


class UnitDetailOut(UnitRecord):
    """A unit as registered, with its people in the order they joined, and its review rounds here."""

    rounds: list[ReviewRoundOut] = Field(description="the unit's review rounds here, latest first")


class RegistrationDetailOut(PersonReviewData):
    review_round: int | None = Field(description="the personnel review's current round; None: not yet paid")
    has_photo: bool = Field(description="GET /v1/registrations/{id}/photo gives it")
    rounds: list[ReviewRoundOut] = Field(description="the personnel review's rounds here, latest first")


# ------------------------------------------------------------------------------------------ scope


async def _rounds(ctx: ServiceContext, kind: c.ReviewKind, subject_id: str) -> list[ReviewTask]:
    async with ctx.db.sessions() as session:
        rows = await session.scalars(
            select(ReviewTask)
            .where(ReviewTask.kind == kind, ReviewTask.subject_id == subject_id)
            .order_by(ReviewTask.round.desc())
        )
        return list(rows)


def _visible(staff: StaffAccount, rounds: list[ReviewTask]) -> bool:
    """Seen through its latest round's mission: the mission that manages the subject now."""
    return bool(rounds) and sees_mission(staff, rounds[0].mission)


def _round_out(task: ReviewTask) -> ReviewRoundOut:
    state: Literal["pending", "decided", "closed"] = (
        "decided" if task.decided_at is not None else "closed" if task.closed_at is not None else "pending"
    )
    return ReviewRoundOut(
        round=task.round,
        state=state,
        mission=task.mission,
        sub_mission=task.sub_mission,
        opened_at=task.opened_at,
        decision=task.decision,
        decided_at=task.decided_at,
        closed_at=task.closed_at,
        close_reason=task.close_reason,
        workflow_id=task.workflow_id,
    )


def _unit_not_found() -> ApiError:
    return not_found("unit", "单位")


def _registration_not_found() -> ApiError:
    return not_found("registration", "报名记录")


async def _ask_registration(ctx: ServiceContext, path: str, missing: ApiError) -> bytes:
    """The registration service's internal answer; its 404 is ``missing``, anything else a 503."""
    content = await ask_registration(ctx, path)
    if content is None:
        raise missing
    return content


async def _person(
    ctx: ServiceContext, staff: StaffAccount, registration_id: str
) -> tuple[RegistrationDetailOut, str | None]:
    """The person, if ``staff`` sees them, and their photo's key. Before the personnel review a person has
    no round of their own here: they are seen through their unit's."""
    rounds = await _rounds(ctx, c.ReviewKind.PERSON, registration_id)
    if rounds and not _visible(staff, rounds):
        raise _registration_not_found()  # before asking: nothing of it is read for the wrong mission
    content = await _ask_registration(
        ctx,
        f"/internal/registrations/{quote(registration_id, safe='')}/review-data",
        _registration_not_found(),
    )
    record = PersonReviewRecord.model_validate_json(content)
    if not rounds and not _visible(staff, await _rounds(ctx, c.ReviewKind.UNIT, record.unit_id)):
        raise _registration_not_found()
    detail = RegistrationDetailOut(
        **record.model_dump(exclude={"photo_key", "created_at"}),
        review_round=rounds[0].round if rounds else None,
        has_photo=record.photo_key is not None,
        rounds=[_round_out(task) for task in rounds],
    )
    return detail, record.photo_key


# ------------------------------------------------------------------------------------------ routes


@router.get("/v1/units/{unit_id}", response_model=UnitDetailOut, responses=RESPONSES)
async def unit_detail(unit_id: str, ctx: Ctx, staff: CurrentStaff) -> UnitDetailOut:
    """A unit under (or after) its affiliation review: its data as registered, its people, and its review
    rounds. Mission staff see their own mission's units only; any other answers 404."""
    rounds = await _rounds(ctx, c.ReviewKind.UNIT, unit_id)
    if not _visible(staff, rounds):
        raise _unit_not_found()
    content = await _ask_registration(ctx, f"/internal/units/{quote(unit_id, safe='')}", _unit_not_found())
    record = UnitRecord.model_validate_json(content)
    return UnitDetailOut(**record.model_dump(), rounds=[_round_out(task) for task in rounds])


@router.get("/v1/registrations/{registration_id}", response_model=RegistrationDetailOut, responses=RESPONSES)
async def registration_detail(registration_id: str, ctx: Ctx, staff: CurrentStaff) -> RegistrationDetailOut:
    """A person for the personnel review: name, document (its number masked), nationality, unit, job
    title, personnel label, day of entrance, delivery of the certificate, status and review round.
    Mission staff see their own mission's people only; any other answers 404."""
    detail, _ = await _person(ctx, staff, registration_id)
    return detail


@router.get(
    "/v1/registrations/{registration_id}/photo",
    responses={
        200: {"description": "the photo", "content": {"image/jpeg": {}, "image/png": {}}},
        **RESPONSES,
    },
    response_class=Response,
)
async def registration_photo(registration_id: str, ctx: Ctx, staff: CurrentStaff) -> Response:
    """The person's checked photo (JPEG or PNG, at most 2 MiB), scoped like the person; 404 if none."""
    _, key = await _person(ctx, staff, registration_id)
    no_photo = ApiError(404, "no_photo", "this person has no photo yet", "该人员尚未上传照片")
    if key is None:
        raise no_photo
    try:
        # At most 2 MiB (checked at upload): read whole, which also lets the type be told from its bytes.
        data = await ctx.store.get(ctx.settings.bucket_photos, key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            raise no_photo from exc
        raise
    except BotoCoreError as exc:
        log.warning("object store unreachable for %s: %s", key, exc)
        raise ApiError(
            503, "store_unavailable", "the photo store did not answer", "照片存储暂时无法访问"
        ) from exc
    return Response(
        data,
        media_type=_image_type(data),
        # Personal data: kept by no shared cache, and not for long by the browser.
        headers={"Cache-Control": "private, max-age=300", "X-Content-Type-Options": "nosniff"},
    )


def _image_type(data: bytes) -> str:
    """Photos are JPEG or PNG (checked by decoding at upload); their key says .jpg whatever they are."""
    return "image/png" if data.startswith(b"\x89PNG\r\n\x1a\n") else "image/jpeg"
