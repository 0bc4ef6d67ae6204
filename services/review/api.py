"""The review service's HTTP API: mission staff's queues and decisions, one at a time or in bulk, and
the audit log; staff accounts (staff_api) and statistics (statistics_api) are routers of their own.

Every route needs a staff login and sees only what the staff member's role allows: a mission's
secretariat its own mission (for an industrial mission, the units that joined with its referral
codes), the organiser's administrators and observers every mission; observers decide nothing.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import Depends, Query, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Select, and_, func, select

from services.review import codec_api, detail_api, internal_api, pages, staff_api, statistics_api
from services.review.activities import write_decision
from services.review.models import DecisionRecord, ReviewTask, StaffAccount
from services.review.staff import (
    CurrentStaff,
    mission_filter,
    require_decider,
    sees_mission,
)
from shared import contracts as c
from shared import exports, web
from shared.auth import outside_your_mission
from shared.http import ApiError, ErrorBody, execute_update
from shared.service import ServiceContext, context, create_service_app
from shared.types import Decision, UnitKind

app = create_service_app(
    "review",
    title="Review",
    description="Mission secretariats review units (affiliation review) and people (personnel review).",
)
app.include_router(staff_api.router)
app.include_router(statistics_api.router)
app.include_router(internal_api.router)
app.include_router(detail_api.router)
app.include_router(pages.router)
app.include_router(codec_api.router)  # the Temporal UI's codec endpoint, /codec
web.mount_static(app)
Ctx = Annotated[ServiceContext, Depends(context)]
ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorBody} for code in (401, 403, 404, 409, 422)
}
BEIJING = ZoneInfo("Asia/Shanghai")
BULK_LIMIT = 200
DECISIONS_IN_FLIGHT = 8  # a bulk decision's updates sent at once


def _statistics_scope(staff: CurrentStaff) -> str | None:
    return mission_filter(staff)


app.dependency_overrides[statistics_api.statistics_scope] = _statistics_scope


class TaskOut(BaseModel):
    kind: c.ReviewKind
    subject_id: str
    round: int
    edition: str
    mission: str
    sub_mission: str | None
    unit_id: str
    unit_kind: UnitKind | None
    unit_name: str | None = Field(description="as registered when the round opened; None: not known")
    person_name: str | None = Field(description="personnel reviews: the person's name; None: not known")
    workflow_id: str
    opened_at: datetime
    decided_at: datetime | None
    decision: Decision | None
    closed_at: datetime | None = Field(description="taken off the queue without a decision")
    close_reason: str | None


class DecisionIn(BaseModel):
    decision: Decision
    reason: str | None = Field(default=None, max_length=500, description="required to reject")


class DecisionOut(BaseModel):
    subject_id: str
    status: str


class BulkItemIn(DecisionIn):
    model_config = ConfigDict(extra="forbid")
    subject_id: str = Field(min_length=1, max_length=16)


class BulkIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: c.ReviewKind
    items: list[BulkItemIn] = Field(min_length=1, max_length=BULK_LIMIT)


class BulkItemOut(BaseModel):
    subject_id: str
    outcome: Literal["done", "refused"]
    status: str | None = Field(default=None, description="the subject's status after the decision")
    code: str | None = Field(default=None, description="why it was refused")
    message: str | None = None
    message_zh: str | None = None


class BulkOut(BaseModel):
    done: int
    refused: int
    results: list[BulkItemOut]


class AuditEntryOut(BaseModel):
    kind: c.ReviewKind
    subject_id: str
    round: int
    mission: str
    decision: Decision
    reason: str | None
    reviewer: str
    decided_at: datetime


class QueueStatus(StrEnum):
    PENDING = "pending"  # awaiting a decision
    DECIDED = "decided"
    CLOSED = "closed"  # taken off the queue without a decision (withdrawn, or superseded by new data)
    ALL = "all"


# ------------------------------------------------------------------------------------------ queues


class QueueFilter(BaseModel):
    """What staff filter a queue by; dates are Beijing dates of when the subject entered the queue."""

    kind: c.ReviewKind
    mission: str | None = None
    sub_mission: str | None = None
    status: QueueStatus = QueueStatus.PENDING
    unit_kind: UnitKind | None = None
    opened_from: date | None = None
    opened_to: date | None = None


def _queue_query(staff: StaffAccount, where: QueueFilter) -> Select[Any]:
    query = select(ReviewTask).where(ReviewTask.kind == where.kind)
    if where.mission is not None and not sees_mission(staff, where.mission):
        raise outside_your_mission()
    if (own := mission_filter(staff)) is not None:
        query = query.where(ReviewTask.mission == own)
    if where.mission:
        query = query.where(ReviewTask.mission == where.mission)
    if where.sub_mission:
        query = query.where(ReviewTask.sub_mission == where.sub_mission)
    if where.unit_kind:
        query = query.where(ReviewTask.unit_kind == where.unit_kind)
    if where.opened_from:
        query = query.where(ReviewTask.opened_at >= _beijing_midnight(where.opened_from))
    if where.opened_to:
        query = query.where(ReviewTask.opened_at < _beijing_midnight(where.opened_to + timedelta(days=1)))
    waiting = and_(ReviewTask.decided_at.is_(None), ReviewTask.closed_at.is_(None))
    match where.status:
        case QueueStatus.PENDING:
            query = query.where(waiting)
        case QueueStatus.DECIDED:
            query = query.where(ReviewTask.decided_at.is_not(None))
        case QueueStatus.CLOSED:
            query = query.where(ReviewTask.closed_at.is_not(None))
        case QueueStatus.ALL:
            pass
    return query


def _beijing_midnight(day: date) -> datetime:
    return datetime.combine(day, time(), BEIJING)


@app.get("/v1/queue", response_model=list[TaskOut], responses=ERRORS, tags=["queues"])
async def queue(
    ctx: Ctx,
    staff: CurrentStaff,
    response: Response,
    where: Annotated[QueueFilter, Query()],
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[ReviewTask]:
    """Units or people to review, oldest first, in pages; the total is in the X-Total-Count header."""
    query = _queue_query(staff, where)
    async with ctx.db.sessions() as session:
        total = await session.scalar(select(func.count()).select_from(query.subquery()))
        rows = await session.scalars(
            query.order_by(ReviewTask.opened_at, ReviewTask.id).limit(limit).offset(offset)
        )
        response.headers["X-Total-Count"] = str(total or 0)
        return list(rows)


QUEUE_COLUMNS = [
    ("kind", "Kind", "类型"),
    ("subject_id", "Subject", "审核对象"),
    ("round", "Round", "轮次"),
    ("mission", "Mission", "交易团"),
    ("sub_mission", "Sub-mission", "交易分团"),
    ("person_name", "Name", "姓名"),
    ("unit_id", "Unit", "单位"),
    ("unit_name", "Unit name", "单位名称"),
    ("unit_kind", "Unit kind", "单位类型"),
    ("opened_at", "In the queue since (Beijing)", "进入队列时间（北京时间）"),
    ("decision", "Decision", "审核结果"),
    ("decided_at", "Decided (Beijing)", "审核时间（北京时间）"),
    ("close_reason", "Closed because", "关闭原因"),
]


@app.get("/v1/queue/export", responses=ERRORS, tags=["queues"])
async def export_queue(
    ctx: Ctx,
    staff: CurrentStaff,
    where: Annotated[QueueFilter, Query()],
    format: Literal["csv", "xlsx"] = "csv",
) -> Response:
    """The whole filtered queue as CSV (UTF-8 with BOM) or Excel, oldest first."""
    async with ctx.db.sessions() as session:
        tasks = await session.scalars(
            _queue_query(staff, where).order_by(ReviewTask.opened_at, ReviewTask.id)
        )
        rows = [_export_row(task) for task in tasks]
    name = f"queue-{where.kind.value}-{where.status.value}"
    return exports.download(
        QUEUE_COLUMNS, rows, name=name, excel=format == "xlsx", sheet_title="审核队列 Queue"
    )


def _export_row(task: ReviewTask) -> dict[str, Any]:
    def local(at: datetime | None) -> str:
        return at.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M") if at else ""

    return {
        "kind": task.kind.value,
        "subject_id": task.subject_id,
        "round": task.round,
        "mission": task.mission,
        "sub_mission": task.sub_mission or "",
        "person_name": task.person_name or "",
        "unit_id": task.unit_id,
        "unit_name": task.unit_name or "",
        "unit_kind": task.unit_kind.value if task.unit_kind else "",
        "opened_at": local(task.opened_at),
        "decision": task.decision.value if task.decision else "",
        "decided_at": local(task.decided_at),
        "close_reason": task.close_reason or "",
    }


# ------------------------------------------------------------------------------------------ decisions


async def _decide(
    ctx: ServiceContext, staff: StaffAccount, kind: c.ReviewKind, subject_id: str, body: DecisionIn
) -> DecisionOut:
    """One decision, sent to the subject's workflow (whose validator may refuse it: 409 with its code)."""
    require_decider(staff)
    async with ctx.db.sessions() as session:
        task = await session.scalar(
            select(ReviewTask)
            .where(ReviewTask.kind == kind, ReviewTask.subject_id == subject_id)
            .order_by(ReviewTask.round.desc())
            .limit(1)
        )
    if task is None or not sees_mission(staff, task.mission):  # another mission's: as if it did not exist
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
        decision=body.decision, reason=body.reason, reviewer=staff.login, round=task.round
    )
    closed = ApiError(409, "review_closed", "this review is over: its workflow has closed", "该审核已结束")
    result = await execute_update(ctx.temporal, task.workflow_id, c.UPDATE_DECIDE, decision, closed=closed)
    # The workflow answers before it writes the decision: written here too, the queue and the audit
    # show it on the reviewer's next page.
    await write_decision(
        ctx,
        c.RecordDecision(
            kind=kind,
            subject_id=subject_id,
            round=task.round,
            decision=decision.decision,
            reason=decision.reason,
            reviewer=decision.reviewer,
            decided_at=datetime.now(UTC),
        ),
    )
    return DecisionOut(subject_id=subject_id, status=result.status)


@app.post("/v1/units/{unit_id}/decision", response_model=DecisionOut, responses=ERRORS, tags=["decisions"])
async def decide_unit(unit_id: str, body: DecisionIn, ctx: Ctx, staff: CurrentStaff) -> DecisionOut:
    """The affiliation review of a unit: approve, or reject with a reason."""
    return await _decide(ctx, staff, c.ReviewKind.UNIT, unit_id, body)


@app.post(
    "/v1/registrations/{registration_id}/decision",
    response_model=DecisionOut,
    responses=ERRORS,
    tags=["decisions"],
)
async def decide_person(registration_id: str, body: DecisionIn, ctx: Ctx, staff: CurrentStaff) -> DecisionOut:
    """The personnel review of a paid person: a pass starts certificate-making; a failure refunds."""
    return await _decide(ctx, staff, c.ReviewKind.PERSON, registration_id, body)


@app.post("/v1/decisions", response_model=BulkOut, responses=ERRORS, tags=["decisions"])
async def decide_in_bulk(body: BulkIn, ctx: Ctx, staff: CurrentStaff) -> BulkOut:
    """Many decisions at once: each goes to its own workflow, and the answer says per item whether it was
    done (with the new status) or refused (with the code and why). One refusal stops no other item."""
    require_decider(staff)
    if len({item.subject_id for item in body.items}) != len(body.items):
        raise ApiError(
            422,
            "duplicate_items",
            "each subject may appear once in a bulk decision",
            "批量审核中同一对象只能出现一次",
        )
    in_flight = asyncio.Semaphore(DECISIONS_IN_FLIGHT)

    async def one(item: BulkItemIn) -> BulkItemOut:
        async with in_flight:
            try:
                done = await _decide(ctx, staff, body.kind, item.subject_id, item)
            except ApiError as refusal:
                return BulkItemOut(
                    subject_id=item.subject_id,
                    outcome="refused",
                    code=refusal.body.code,
                    message=refusal.body.message,
                    message_zh=refusal.body.message_zh,
                )
            return BulkItemOut(subject_id=item.subject_id, outcome="done", status=done.status)

    results = await asyncio.gather(*(one(item) for item in body.items))
    done = sum(result.outcome == "done" for result in results)
    return BulkOut(done=done, refused=len(results) - done, results=results)


# ------------------------------------------------------------------------------------------ audit


@app.get("/v1/audit", response_model=list[AuditEntryOut], responses=ERRORS, tags=["audit"])
async def audit(
    ctx: Ctx,
    staff: CurrentStaff,
    subject_id: str | None = None,
    kind: c.ReviewKind | None = None,
    mission: str | None = None,
    reviewer: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[AuditEntryOut]:
    """Every decision: who, when, what and why, newest first (staff changes: /v1/audit/staff-changes)."""
    if mission is not None and not sees_mission(staff, mission):
        raise outside_your_mission()
    query = select(DecisionRecord, ReviewTask.mission).join(
        ReviewTask,
        and_(
            ReviewTask.kind == DecisionRecord.kind,
            ReviewTask.subject_id == DecisionRecord.subject_id,
            ReviewTask.round == DecisionRecord.round,
        ),
    )
    for column, value in (
        (DecisionRecord.subject_id, subject_id),
        (DecisionRecord.kind, kind),
        (DecisionRecord.reviewer, reviewer),
        (ReviewTask.mission, mission or mission_filter(staff)),
    ):
        if value is not None:
            query = query.where(column == value)
    async with ctx.db.sessions() as session:
        rows = await session.execute(
            query.order_by(DecisionRecord.decided_at.desc(), DecisionRecord.id.desc())
            .limit(limit)
            .offset(offset)
        )
        return [
            AuditEntryOut(
                kind=record.kind,
                subject_id=record.subject_id,
                round=record.round,
                mission=task_mission,
                decision=record.decision,
                reason=record.reason,
                reviewer=record.reviewer,
                decided_at=record.decided_at,
            )
            for record, task_mission in rows
        ]
