"""The review service's HTTP API: the queues of mission secretariats and their decisions."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Depends, Query
from pydantic import BaseModel, Field
from sqlalchemy import and_, not_, select

from services.review.models import DecisionRecord, ReviewTask
from shared import contracts as c
from shared.http import ApiError, ErrorBody, execute_update
from shared.service import ServiceContext, context, create_service_app
from shared.types import Decision

app = create_service_app(
    "review",
    title="Review",
    description="Mission secretariats review units (affiliation review) and people (personnel review).",
)
Ctx = Annotated[ServiceContext, Depends(context)]
ERRORS: dict[int | str, dict[str, object]] = {code: {"model": ErrorBody} for code in (404, 409, 422)}


class TaskOut(BaseModel):
    kind: c.ReviewKind
    subject_id: str
    round: int
    edition: str
    mission: str
    sub_mission: str | None
    unit_id: str
    workflow_id: str
    opened_at: datetime
    decided_at: datetime | None
    decision: Decision | None
    closed_at: datetime | None = Field(description="taken off the queue without a decision")
    close_reason: str | None


class DecisionIn(BaseModel):
    decision: Decision
    reason: str | None = Field(default=None, max_length=500, description="required to reject")
    reviewer: str = Field(min_length=1, max_length=64, description="the staff member deciding")


class DecisionOut(BaseModel):
    subject_id: str
    status: str


class AuditEntryOut(BaseModel):
    kind: c.ReviewKind
    subject_id: str
    round: int
    decision: Decision
    reason: str | None
    reviewer: str
    decided_at: datetime


@app.get("/v1/queue", response_model=list[TaskOut], tags=["queues"])
async def queue(
    ctx: Ctx,
    kind: c.ReviewKind,
    mission: str | None = None,
    pending: Annotated[
        bool, Query(description="true: awaiting a decision; false: decided, or closed without a decision")
    ] = True,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[ReviewTask]:
    """Units or people to review, oldest first. A round closed without a decision (the buyer withdrew,
    or changed their data so that a new round replaced it) is no longer pending."""
    query = select(ReviewTask).where(ReviewTask.kind == kind)
    if mission:
        query = query.where(ReviewTask.mission == mission)
    waiting = and_(ReviewTask.decided_at.is_(None), ReviewTask.closed_at.is_(None))
    query = query.where(waiting if pending else not_(waiting))
    async with ctx.db.sessions() as session:
        rows = await session.scalars(
            query.order_by(ReviewTask.opened_at, ReviewTask.id).limit(limit).offset(offset)
        )
        return list(rows)


async def _decide(ctx: ServiceContext, kind: c.ReviewKind, subject_id: str, body: DecisionIn) -> DecisionOut:
    async with ctx.db.sessions() as session:
        task = await session.scalar(
            select(ReviewTask)
            .where(ReviewTask.kind == kind, ReviewTask.subject_id == subject_id)
            .order_by(ReviewTask.round.desc())
            .limit(1)
        )
    if task is None:
        raise ApiError(404, "not_in_queue", f"no {kind.value} {subject_id} awaits review", "未找到待审核记录")
    if task.closed_at is not None:
        raise ApiError(
            409,
            "review_task_closed",
            f"the review of {kind.value} {subject_id} (round {task.round}) was closed without a decision"
            f" ({task.close_reason}): there is nothing to decide",
            f"该审核（第{task.round}轮）已关闭，无需作出审核决定（报名已撤回，或信息修改后已由新一轮审核取代）",
        )
    decision = c.ReviewDecision(
        decision=body.decision, reason=body.reason, reviewer=body.reviewer, round=task.round
    )
    closed = ApiError(409, "review_closed", "this review is over: its workflow has closed", "该审核已结束")
    result = await execute_update(ctx.temporal, task.workflow_id, c.UPDATE_DECIDE, decision, closed=closed)
    return DecisionOut(subject_id=subject_id, status=result.status)


@app.post("/v1/units/{unit_id}/decision", response_model=DecisionOut, responses=ERRORS, tags=["decisions"])
async def decide_unit(unit_id: str, body: DecisionIn, ctx: Ctx) -> DecisionOut:
    """The affiliation review of a unit: approve, or reject with a reason."""
    return await _decide(ctx, c.ReviewKind.UNIT, unit_id, body)


@app.post(
    "/v1/registrations/{registration_id}/decision",
    response_model=DecisionOut,
    responses=ERRORS,
    tags=["decisions"],
)
async def decide_person(registration_id: str, body: DecisionIn, ctx: Ctx) -> DecisionOut:
    """The personnel review of a paid person: a pass starts certificate-making; a failure refunds."""
    return await _decide(ctx, c.ReviewKind.PERSON, registration_id, body)


@app.get("/v1/audit", response_model=list[AuditEntryOut], tags=["audit"])
async def audit(
    ctx: Ctx,
    subject_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[DecisionRecord]:
    """Every decision: who, when, what and why, newest first."""
    query = select(DecisionRecord)
    if subject_id:
        query = query.where(DecisionRecord.subject_id == subject_id)
    async with ctx.db.sessions() as session:
        rows = await session.scalars(
            query.order_by(DecisionRecord.decided_at.desc(), DecisionRecord.id.desc())
            .limit(limit)
            .offset(offset)
        )
        return list(rows)
