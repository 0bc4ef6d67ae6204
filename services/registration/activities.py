"""Activities the workflows call on the registration service: writing the buyer-facing read model."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import func, select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from services.registration.models import PersonRegistration, RegistrationEvent, Unit, UnitReviewEvent
from shared import contracts as c
from shared.service import ServiceContext


class RegistrationActivities:
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    @activity.defn(name=c.RECORD_STATUS.name)
    async def record_status(self, step: c.RecordStatus) -> None:
        """Write one timeline step and the person's current status; a repeated step changes nothing."""
        async with self.ctx.db.transaction() as session:
            person = await session.get(PersonRegistration, step.registration_id)
            if person is None:
                raise ApplicationError(f"unknown registration {step.registration_id}", non_retryable=True)
            if await session.get(RegistrationEvent, (step.registration_id, step.seq)) is not None:
                return
            latest = await session.scalar(
                select(func.max(RegistrationEvent.seq)).where(
                    RegistrationEvent.registration_id == step.registration_id
                )
            )
            session.add(
                RegistrationEvent(
                    registration_id=step.registration_id,
                    seq=step.seq,
                    step=step.step.value,
                    status=step.status,
                    at=step.at,
                    deadline=step.deadline,
                    reason=step.reason,
                    detail=step.detail,
                )
            )
            if latest is None or step.seq > latest:  # a retried old step must not roll the status back
                person.status = step.status
                person.status_at = step.at
                person.deadline = step.deadline

    @activity.defn(name=c.RECORD_UNIT_STATUS.name)
    async def record_unit_status(self, change: c.RecordUnitStatus) -> None:
        async with self.ctx.db.transaction() as session:
            unit = await session.get(Unit, change.unit_id)
            if unit is None:
                raise ApplicationError(f"unknown unit {change.unit_id}", non_retryable=True)
            if await session.get(UnitReviewEvent, (change.unit_id, change.round, change.status)) is not None:
                return
            session.add(
                UnitReviewEvent(
                    unit_id=change.unit_id,
                    round=change.round,
                    status=change.status,
                    at=change.at,
                    reason=change.reason,
                )
            )
            if change.round >= unit.review_round:
                unit.review_round = change.round
                unit.status = change.status
                unit.reject_reason = change.reason


def activities(ctx: ServiceContext) -> Sequence[Callable[..., Any]]:
    acts = RegistrationActivities(ctx)
    return [acts.record_status, acts.record_unit_status]
