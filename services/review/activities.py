"""Activities the workflows call on the review service: queueing subjects, closing and recording decisions."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import select
from temporalio import activity

from services.review.models import DecisionRecord, ReviewTask
from shared import contracts as c
from shared.service import ServiceContext


class ReviewActivities:
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    @activity.defn(name=c.OPEN_REVIEW_TASK.name)
    async def open_task(self, task: c.OpenReviewTask) -> None:
        async with self.ctx.db.transaction() as session:
            exists = await session.scalar(
                select(ReviewTask.id).where(
                    ReviewTask.kind == task.kind,
                    ReviewTask.subject_id == task.subject_id,
                    ReviewTask.round == task.round,
                )
            )
            if exists is None:
                session.add(ReviewTask(**task.model_dump()))

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
        """Write the audit entry and take the subject off the queue, once."""
        async with self.ctx.db.transaction() as session:
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


def activities(ctx: ServiceContext) -> Sequence[Callable[..., Any]]:
    acts = ReviewActivities(ctx)
    return [acts.open_task, acts.close_task, acts.record_decision]
