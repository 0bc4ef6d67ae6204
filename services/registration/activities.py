"""Activities the workflows call on the registration service: writing the buyer-facing read model,
applying the changes buyers saved, and the payment deadlines (what they are, telling the waiting)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from services.registration.deadlines import current_payment_deadlines
from services.registration.models import (
    PersonRegistration,
    PersonRevision,
    RegistrationEvent,
    RevisionStatus,
    Unit,
    UnitReviewEvent,
    UnitRevision,
)
from services.registration.revisions import apply_person, apply_unit
from shared import contracts as c
from shared.announcements import PAGE_SIZE, announce_deadlines
from shared.catalogue import Edition
from shared.db import utcnow
from shared.metrics import REGISTRATION_STATUS_CHANGES
from shared.service import ServiceContext
from shared.types import RegistrationStatus

# Registrations whose workflow waits on the payment deadlines: told when the organiser extends them.
AWAITING_PAYMENT = (
    RegistrationStatus.SUBMITTED,
    RegistrationStatus.UNIT_REJECTED,
    RegistrationStatus.UNPAID,
    RegistrationStatus.AWAITING_TRANSFER_CONFIRMATION,
)


# The API commits a row before it starts its workflow (services/registration/starts.py), so a row is
# missing only if a start that seemed to fail had in fact begun and the API removed the row again. A
# missing row is still waited for through the retries (1 + 2 + 4 + 8 + 16 s) before it is taken as
# truly unknown: a database replica that lags, or rows written by an API of an older version.
ATTEMPTS_BEFORE_UNKNOWN = 6


def not_yet_saved(what: str) -> ApplicationError:
    """A missing row: retried while its transaction may still commit, then a non-retryable failure."""
    return ApplicationError(
        f"unknown {what}", non_retryable=activity.info().attempt >= ATTEMPTS_BEFORE_UNKNOWN
    )


class RegistrationActivities:
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    @activity.defn(name=c.RECORD_STATUS.name)
    async def record_status(self, step: c.RecordStatus) -> None:
        """Write one timeline step and the person's current status; a repeated step changes nothing."""
        async with self.ctx.db.transaction() as session:
            person = await session.get(PersonRegistration, step.registration_id)
            if person is None:
                raise not_yet_saved(f"registration {step.registration_id}")
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
        REGISTRATION_STATUS_CHANGES.labels(step.status.value).inc()  # committed, and new: counted once

    @activity.defn(name=c.RECORD_UNIT_STATUS.name)
    async def record_unit_status(self, change: c.RecordUnitStatus) -> None:
        async with self.ctx.db.transaction() as session:
            unit = await session.get(Unit, change.unit_id)
            if unit is None:
                raise not_yet_saved(f"unit {change.unit_id}")
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

    @activity.defn(name=c.CURRENT_PAYMENT_DEADLINES.name)
    async def current_payment_deadlines(self, ref: c.EditionRef) -> c.PaymentDeadlines:
        edition = self._edition(ref.edition)
        async with self.ctx.db.sessions() as session:
            return await current_payment_deadlines(session, edition)

    @activity.defn(name=c.APPLY_REVISION.name)
    async def apply_revision(self, request: c.ApplyRevision) -> None:
        """Copy a pending revision onto its unit or person; applying it again changes nothing."""
        async with self.ctx.db.transaction() as session:
            revision: UnitRevision | PersonRevision | None
            if request.kind is c.ReviewKind.UNIT:
                revision = await session.get(UnitRevision, request.revision_id, with_for_update=True)
                owner = revision.unit_id if revision else None
            else:
                revision = await session.get(PersonRevision, request.revision_id, with_for_update=True)
                owner = revision.registration_id if revision else None
            if revision is None or owner != request.subject_id:
                raise ApplicationError(
                    f"no {request.kind.value} revision {request.revision_id} of {request.subject_id}",
                    type="unknown_revision",
                    non_retryable=True,
                )
            if revision.status is RevisionStatus.APPLIED:
                return
            if revision.status is RevisionStatus.DISCARDED:
                raise ApplicationError(
                    f"revision {revision.id} was discarded", type="revision_discarded", non_retryable=True
                )
            if isinstance(revision, UnitRevision):
                unit = await session.get(Unit, revision.unit_id)
                assert unit is not None  # a foreign key
                apply_unit(unit, revision.data)
                conflict = ("unit_already_registered", "another unit of the edition has this credit code")
            else:
                person = await session.get(PersonRegistration, revision.registration_id)
                assert person is not None
                apply_person(person, revision.id, revision.data, revision.substitution)
                conflict = ("already_registered", "this person is already registered for the edition")
            revision.status = RevisionStatus.APPLIED
            revision.applied_at = utcnow()
            try:
                await session.flush()
            except IntegrityError as exc:  # a unit or person registered since the API checked
                raise ApplicationError(conflict[1], type=conflict[0], non_retryable=True) from exc

    @activity.defn(name=c.ANNOUNCE_DEADLINES_TO_REGISTRATIONS.name)
    async def announce_deadlines(self, announcement: c.AnnounceDeadlines) -> c.Announced:
        """Signal every registration of the edition that waits on the payment deadlines, in pages by
        registration id (resumed after the last page on a retry). Closed workflows are skipped."""
        self._edition(announcement.edition)

        async def next_page(last: str) -> list[tuple[str, str]]:
            async with self.ctx.db.sessions() as session:
                rows = await session.execute(
                    select(PersonRegistration.id, PersonRegistration.workflow_id)
                    .where(
                        PersonRegistration.edition == announcement.edition,
                        PersonRegistration.status.in_(AWAITING_PAYMENT),
                        PersonRegistration.id > last,
                    )
                    .order_by(PersonRegistration.id)
                    .limit(PAGE_SIZE)
                )
                return [(row.id, row.workflow_id) for row in rows]

        return await announce_deadlines(self.ctx.temporal, announcement.deadlines, next_page)

    def _edition(self, code: str) -> Edition:
        edition = self.ctx.edition
        if code != edition.code:
            raise ApplicationError(
                f"this deployment serves {edition.code}, not {code}",
                type="unknown_edition",
                non_retryable=True,
            )
        return edition


def activities(ctx: ServiceContext) -> Sequence[Callable[..., Any]]:
    acts = RegistrationActivities(ctx)
    return [
        acts.record_status,
        acts.record_unit_status,
        acts.current_payment_deadlines,
        acts.apply_revision,
        acts.announce_deadlines,
    ]
