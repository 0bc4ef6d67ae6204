"""A unit's (affiliation's) review by its trade mission, and the fan-out to its members.

The unit workflow is the one place that knows where the unit review stands: every member's
registration is told of each change, and a member who joins an approved unit goes straight to unpaid.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from shared import contracts as c
    from shared.temporal import SA_EDITION, SA_MISSION, SA_STATUS, SA_SUB_MISSION, SA_UNIT
    from shared.types import Decision, UnitStatus

from workflows.calls import call, signal_if_open
from workflows.refusal import refuse


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

    @workflow.run
    async def run(self, start: c.UnitStart) -> c.UnitProgress:
        workflow.upsert_search_attributes(
            [
                SA_EDITION.value_set(start.edition),
                SA_MISSION.value_set(start.mission),
                SA_UNIT.value_set(start.unit_id),
                *([SA_SUB_MISSION.value_set(start.sub_mission)] if start.sub_mission else []),
            ]
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
                workflow_id, event = self._pending.pop(0)
                if not await signal_if_open(workflow_id, c.SIGNAL_UNIT_STATUS, event):
                    # The registration has closed (expired, say): it follows the unit no more.
                    self.members = {rid: wid for rid, wid in self.members.items() if wid != workflow_id}
        await workflow.wait_condition(lambda: not self._busy)
        return self.progress()

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
            ),
            summary=f"queue unit for review (round {self.round})",
        )

    async def _record(self) -> None:
        workflow.upsert_search_attributes([SA_STATUS.value_set(self.status.value)])
        workflow.set_current_details(f"Unit review round {self.round}: **{self.status.value}**")
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
        """The mission's affiliation review: approve, or reject with a reason."""
        self._busy = True
        try:
            await call(
                c.RECORD_DECISION,
                c.RecordDecision(
                    kind=c.ReviewKind.UNIT,
                    subject_id=self.start.unit_id,
                    round=self.round,
                    decision=decision.decision,
                    reason=decision.reason,
                    reviewer=decision.reviewer,
                    decided_at=workflow.now(),
                ),
                summary=f"unit review: {decision.decision.value}",
            )
            approved = decision.decision is Decision.APPROVE
            self.status = UnitStatus.APPROVED if approved else UnitStatus.REJECTED
            self.reason = None if approved else decision.reason
            await self._record()
        finally:
            self._busy = False
        return c.DecisionResult(status=self.status.value)

    @decide.validator
    def _validate_decision(self, decision: c.ReviewDecision) -> None:
        if self._busy:
            raise refuse("decision_in_progress", "another decision on this unit is being recorded")
        if self.status is not UnitStatus.UNDER_REVIEW:
            raise refuse("not_under_review", f"the unit is not under review (status: {self.status.value})")
        if decision.decision is Decision.REJECT and not (decision.reason or "").strip():
            raise refuse("reason_required", "a rejection needs a reason")

    @workflow.update(name=c.UPDATE_RESUBMIT)
    async def resubmit(self) -> c.DecisionResult:
        """The unit modified its data after a rejection: a new review round."""
        self._busy = True
        try:
            self.round += 1
            self.status = UnitStatus.UNDER_REVIEW
            self.reason = None
            await self._open_round()
        finally:
            self._busy = False
        return c.DecisionResult(status=self.status.value)

    @resubmit.validator
    def _validate_resubmit(self) -> None:
        if self._busy:
            raise refuse("decision_in_progress", "a decision on this unit is being recorded")
        if self.status is not UnitStatus.REJECTED:
            raise refuse("not_rejected", "only a rejected unit is resubmitted")
        if workflow.now() >= self.start.registration_closes:
            raise refuse("registration_closed", "registration has closed")

    @workflow.query(name=c.QUERY_PROGRESS)
    def progress(self) -> c.UnitProgress:
        return c.UnitProgress(
            status=self.status, round=self.round, reason=self.reason, members=sorted(self.members)
        )
