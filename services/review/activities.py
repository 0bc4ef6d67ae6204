"""Activities the workflows call on the review service: queueing subjects, closing and recording decisions.

A queued round keeps the unit's and the person's names for the queue's rows: the workflows know the
subjects by id only, and a queue page should not ask the registration service once per row. The names
are read here, once per round, from the registration service's internal routes; every change of a
unit's or a person's data opens a new round, so the queue shows the data under review.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple
from urllib.parse import quote

import httpx
from pydantic import ValidationError
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from temporalio import activity

from services.review.models import DecisionRecord, ReviewTask
from shared import contracts as c
from shared.http import internal_headers
from shared.records import PersonReviewRecord, UnitRecord
from shared.service import ServiceContext


async def write_decision(ctx: ServiceContext, decision: c.RecordDecision) -> None:
    """Write the audit entry and take the subject off the queue, once. Both the workflow (an activity,
    after it has answered) and the review API (at once, so the reviewer's next page shows the decision)
    write it: whichever comes second changes nothing."""
    try:
        async with ctx.db.transaction() as session:
            recorded = await session.scalar(
                select(DecisionRecord.id).where(
                    DecisionRecord.kind == decision.kind,
                    DecisionRecord.subject_id == decision.subject_id,
                    DecisionRecord.round == decision.round,
                )
            )
            if recorded is not None:
                return
            session.add(DecisionRecord(**decision.model_dump()))
            task = await session.scalar(
                select(ReviewTask).where(
                    ReviewTask.kind == decision.kind,
                    ReviewTask.subject_id == decision.subject_id,
                    ReviewTask.round == decision.round,
                )
            )
            if task is not None:
                task.decided_at = decision.decided_at
                task.decision = decision.decision
    except IntegrityError:
        pass  # the other writer's entry came first (one per kind, subject and round)


class SubjectNames(NamedTuple):
    unit: str | None
    person: str | None  # personnel reviews only


class ReviewActivities:
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    @activity.defn(name=c.OPEN_REVIEW_TASK.name)
    async def open_task(self, task: c.OpenReviewTask) -> None:
        """Queue the round, once, with its subject's names. A unit's new round also renames the unit in
        its people's open personnel reviews (the unit changed its data)."""
        names = await self._names(task)
        async with self.ctx.db.transaction() as session:
            exists = await session.scalar(
                select(ReviewTask.id).where(
                    ReviewTask.kind == task.kind,
                    ReviewTask.subject_id == task.subject_id,
                    ReviewTask.round == task.round,
                )
            )
            if exists is None:
                session.add(ReviewTask(**task.model_dump(), unit_name=names.unit, person_name=names.person))
            if task.kind is c.ReviewKind.UNIT and names.unit is not None:
                await session.execute(
                    update(ReviewTask)
                    .where(
                        ReviewTask.unit_id == task.unit_id,
                        ReviewTask.decided_at.is_(None),
                        ReviewTask.closed_at.is_(None),
                    )
                    .values(unit_name=names.unit)
                )

    async def _names(self, task: c.OpenReviewTask) -> SubjectNames:
        """The names as registered now. Without them (the registration service does not answer) the
        round is queued all the same, showing ids: the subject's page asks the registration service
        afresh, and a review must not wait for a name."""
        person = task.kind is c.ReviewKind.PERSON
        path = (
            f"/internal/registrations/{quote(task.subject_id, safe='')}/review-data"
            if person
            else f"/internal/units/{quote(task.unit_id, safe='')}"
        )
        try:
            response = await self.ctx.http.get(
                f"{self.ctx.settings.registration_url}{path}", headers=internal_headers(self.ctx.settings)
            )
            response.raise_for_status()
            if person:
                record = PersonReviewRecord.model_validate_json(response.content)
                return SubjectNames(unit=record.unit_name, person=record.name)
            return SubjectNames(unit=UnitRecord.model_validate_json(response.content).name, person=None)
        except (httpx.HTTPError, ValidationError) as exc:
            activity.logger.warning(
                "queued %s %s without its names: %s", task.kind.value, task.subject_id, exc
            )
            return SubjectNames(unit=None, person=None)

    @activity.defn(name=c.CLOSE_REVIEW_TASK.name)
    async def close_task(self, request: c.CloseReviewTask) -> None:
        """Take a round off the queue without a decision (withdrawn, or superseded by new data). Once: a
        retry keeps the first close; a round already decided keeps its decision."""
        async with self.ctx.db.transaction() as session:
            task = await session.scalar(
                select(ReviewTask).where(
                    ReviewTask.kind == request.kind,
                    ReviewTask.subject_id == request.subject_id,
                    ReviewTask.round == request.round,
                )
            )
            if task is None:
                activity.logger.warning(
                    "no review task %s %s round %d to close",
                    request.kind.value,
                    request.subject_id,
                    request.round,
                )
                return
            if task.closed_at is None and task.decided_at is None:
                task.closed_at = request.at
                task.close_reason = request.reason

    @activity.defn(name=c.RECORD_DECISION.name)
    async def record_decision(self, decision: c.RecordDecision) -> None:
        await write_decision(self.ctx, decision)


def activities(ctx: ServiceContext) -> Sequence[Callable[..., Any]]:
    acts = ReviewActivities(ctx)
    return [acts.open_task, acts.close_task, acts.record_decision]
