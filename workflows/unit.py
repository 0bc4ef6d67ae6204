"""A unit's (affiliation's) review by its trade mission, and the fan-out to its members.

The unit workflow is the one place that knows where the unit review stands: every member's
registration is told of each change, and a member who joins an approved unit goes straight to unpaid.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from shared import contracts as c
    from shared.types import Decision, UnitStatus

from workflows.calls import call, record_decision, signal_if_open
from workflows.patches import ANSWER_BEFORE_RECORDS
from workflows.refusal import refuse
from workflows.visibility import identify, show_status


@workflow.defn(name="UnitReview")
class UnitWorkflow:
    @workflow.init
    def __init__(self, start: c.UnitStart) -> None:
        self.start = start
        self.status = UnitStatus.UNDER_REVIEW
        self.round = 1
        self.reason: str | None = None
        self.members: dict[str, str] = {}  # registration id -> workflow id
        self._pending: list[tuple[str, c.UnitStatusChanged]] = []  # (workflow id, event) to deliver
        self._busy = False  # a decision or resubmission is being recorded
        self._writing: Awaitable[None] | None = None  # a decision's records, written after its answer

    @workflow.run
    async def run(self, start: c.UnitStart) -> c.UnitProgress:
        identify(
            edition=start.edition, mission=start.mission, unit=start.unit_id, sub_mission=start.sub_mission
        )
        await self._open_round()
        # Deliver status changes to members until the expo is over.
        while True:
            try:
                await workflow.wait_condition(
                    lambda: bool(self._pending),
                    timeout=max(start.expo_closes - workflow.now(), timedelta(0)),
                )
            except TimeoutError:
                break
            while self._pending:
                if workflow.patched(ANSWER_BEFORE_RECORDS):  # every member told at once
                    batch, self._pending = self._pending, []
                else:
                    batch = [self._pending.pop(0)]
                told = await asyncio.gather(
                    *(
                        signal_if_open(workflow_id, c.SIGNAL_UNIT_STATUS, event)
                        for workflow_id, event in batch
                    )
                )
                self._forget({wid for (wid, _), open_ in zip(batch, told, strict=True) if not open_})
        await workflow.wait_condition(lambda: not self._busy)
        if self._writing is not None:
            await self._writing  # a failed write fails the workflow instead of passing unseen
        return self.progress()

    def _forget(self, closed: set[str]) -> None:
        """Registrations that have closed (expired, say) follow the unit no more."""
        self.members = {rid: wid for rid, wid in self.members.items() if wid not in closed}

    async def _open_round(self) -> None:
        await self._record()
        await call(
            c.OPEN_REVIEW_TASK,
            c.OpenReviewTask(
                kind=c.ReviewKind.UNIT,
                subject_id=self.start.unit_id,
                round=self.round,
                workflow_id=workflow.info().workflow_id,
                edition=self.start.edition,
                mission=self.start.mission,
                sub_mission=self.start.sub_mission,
                unit_id=self.start.unit_id,
                opened_at=workflow.now(),
                unit_kind=self.start.unit_kind,
            ),
            summary=f"queue unit for review (round {self.round})",
        )

    async def _record(self) -> None:
        show_status(self.status.value, f"Unit review round {self.round}: **{self.status.value}**")
        await self._write_status()
        self._tell_members()

    async def _write_status(self) -> None:
        await call(
            c.RECORD_UNIT_STATUS,
            c.RecordUnitStatus(
                unit_id=self.start.unit_id,
                round=self.round,
                status=self.status,
                at=workflow.now(),
                reason=self.reason,
            ),
            summary=f"record unit {self.status.value}",
        )

    def _tell_members(self) -> None:
        event = c.UnitStatusChanged(
            status=self.status, round=self.round, at=workflow.now(), reason=self.reason
        )
        self._pending.extend((workflow_id, event) for workflow_id in self.members.values())

    # ---------------------------------------------------------------- messages

    @workflow.signal(name=c.SIGNAL_MEMBER_JOINED)
    def on_member_joined(self, member: c.MemberJoined) -> None:
        if member.registration_id in self.members:
            return
        self.members[member.registration_id] = member.workflow_id
        if self.status is not UnitStatus.UNDER_REVIEW:
            event = c.UnitStatusChanged(
                status=self.status, round=self.round, at=workflow.now(), reason=self.reason
            )
            self._pending.append((member.workflow_id, event))

    @workflow.update(name=c.UPDATE_DECIDE)
    async def decide(self, decision: c.ReviewDecision) -> c.DecisionResult:
        """The mission's affiliation review: approve, or reject with a reason.

        The answer and the members' news follow the decision taken in the workflow's state; the
        decision and the unit's status are written together after it, and no other decision or change
        is accepted until they are (``_busy``)."""
        if not workflow.patched(ANSWER_BEFORE_RECORDS):
            return await self._decide_recording_first(decision)
        self._busy = True
        approved = decision.decision is Decision.APPROVE
        self.status = UnitStatus.APPROVED if approved else UnitStatus.REJECTED
        self.reason = None if approved else decision.reason
        show_status(self.status.value, f"Unit review round {self.round}: **{self.status.value}**")
        self._tell_members()
        self._writing = asyncio.ensure_future(self._write_decision(decision))
        return c.DecisionResult(status=self.status.value)

    async def _write_decision(self, decision: c.ReviewDecision) -> None:
        try:
            await asyncio.gather(
                record_decision(c.ReviewKind.UNIT, self.start.unit_id, self.round, decision),
                self._write_status(),
            )
        finally:
            self._busy = False

    async def _decide_recording_first(self, decision: c.ReviewDecision) -> c.DecisionResult:
        """Before ANSWER_BEFORE_RECORDS: the answer waited for both writes, one after the other, and the
        members heard after them (kept so that workflows started before it replay)."""
        self._busy = True
        try:
            await record_decision(c.ReviewKind.UNIT, self.start.unit_id, self.round, decision)
            approved = decision.decision is Decision.APPROVE
            self.status = UnitStatus.APPROVED if approved else UnitStatus.REJECTED
            self.reason = None if approved else decision.reason
            await self._record()
        finally:
            self._busy = False
        return c.DecisionResult(status=self.status.value)

    @decide.validator
    def _validate_decision(self, decision: c.ReviewDecision) -> None:
        # Decided already (its records may still be being written): say so, rather than "in progress".
        if self.status is not UnitStatus.UNDER_REVIEW:
            raise refuse("not_under_review", f"the unit is not under review (status: {self.status.value})")
        if self._busy:
            raise refuse("decision_in_progress", "another decision on this unit is being recorded")
        if decision.round is not None and decision.round != self.round:
            raise refuse("review_round_superseded", f"the unit is in review round {self.round} now")
        if decision.decision is Decision.REJECT and not (decision.reason or "").strip():
            raise refuse("reason_required", "a rejection needs a reason")

    @workflow.update(name=c.UPDATE_CHANGE_UNIT)
    async def change(self, change: c.UnitChange) -> c.DecisionResult:
        """The unit changed its data. Rejected: resubmitted, a new round. Approved: reviewed again, a new
        round (members not yet paid wait for it). Under review: the reviewers see the new data."""
        self._busy = True
        try:
            await call(
                c.APPLY_REVISION,
                c.ApplyRevision(
                    kind=c.ReviewKind.UNIT, subject_id=self.start.unit_id, revision_id=change.revision_id
                ),
                summary="apply the changed unit data",
            )
            if self.status is not UnitStatus.UNDER_REVIEW:
                self.round += 1
                self.status = UnitStatus.UNDER_REVIEW
                self.reason = None
                await self._open_round()
        finally:
            self._busy = False
        return c.DecisionResult(status=self.status.value)

    @change.validator
    def _validate_change(self, change: c.UnitChange) -> None:
        if self._busy:
            raise refuse("decision_in_progress", "a decision on this unit is being recorded")
        if workflow.now() >= self.start.registration_closes:
            raise refuse(
                "registration_closed", "registration has closed: the unit's data can no longer change"
            )

    @workflow.query(name=c.QUERY_PROGRESS)
    def progress(self) -> c.UnitProgress:
        return c.UnitProgress(
            status=self.status, round=self.round, reason=self.reason, members=sorted(self.members)
        )
