"""One person's registration for one edition, from submission to a delivered certificate.

submitted ──unit approved──▶ unpaid ──paid──▶ to_be_reviewed ──pass──▶ approved
  ▲   │                          │                  │                       │ (at once)
  │   unit rejected              deadline           fail                    ▼
  │   ▼                          ▼                  ▼              certificate_in_production
  └── unit_rejected          expired          review_failed                 ▼
   (resubmitted)                                    │ refund       certificate_issued
                                                    ▼                       ▼
                                                refunded       shipped / awaiting_collection /
                                                               onsite_pickup ──▶ delivered
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from shared import contracts as c
    from shared.temporal import SA_PAYMENT_METHOD
    from shared.types import Decision, RegistrationStatus, UnitStatus

from workflows.calls import call, record_decision, signal_if_open
from workflows.refusal import refuse
from workflows.visibility import identify, show_status

S = RegistrationStatus


@workflow.defn(name="BuyerRegistration")
class BuyerRegistrationWorkflow:
    @workflow.init
    def __init__(self, start: c.RegistrationStart) -> None:
        self.start = start
        self.status = S.SUBMITTED
        self.timeline: list[c.TimelineEntry] = []
        self._unit_events: list[c.UnitStatusChanged] = []
        self._payment: c.PaymentConfirmed | None = None
        self._decision: c.ReviewDecision | None = None
        self._in_review = False  # paid and queued for the personnel review
        self._decided = False  # the decision is in the audit log: the lifecycle may act on it
        self._delivered: c.CertificateDelivered | None = None
        self._certificate_no: str | None = None
        self._background: list[Awaitable[Any]] = []

    @workflow.run
    async def run(self, start: c.RegistrationStart) -> c.RegistrationProgress:
        await self._enter(c.Step.REGISTERED, S.SUBMITTED)
        # The unit workflow tells members where its review stands, now and at every change.
        joined = await signal_if_open(
            start.unit_workflow_id,
            c.SIGNAL_MEMBER_JOINED,
            c.MemberJoined(registration_id=start.registration_id, workflow_id=workflow.info().workflow_id),
        )
        if not joined:  # the API starts the unit's workflow first; gone means the edition is over
            workflow.logger.warning("unit workflow %s is not running", start.unit_workflow_id)
        if await self._until_paid():
            await self._personnel_review()
        # Messages started along the way must be sent before the workflow closes.
        await asyncio.gather(*self._background)
        return self.progress()

    # ---------------------------------------------------------------- phases

    async def _until_paid(self) -> bool:
        """Follow the unit review until the person is paid for; False if the deadline passed unpaid."""
        while self._payment is None:
            until = self.start.payment_deadline if self.status is S.UNPAID else self.start.expo_closes
            try:
                await workflow.wait_condition(
                    lambda: bool(self._unit_events) or self._payment is not None,
                    timeout=max(until - workflow.now(), timedelta(0)),
                )
            except TimeoutError:
                if self.status is S.UNPAID:
                    await self._enter(c.Step.PAYMENT_EXPIRED, S.EXPIRED)
                return False
            while self._unit_events and self._payment is None:
                await self._follow_unit(self._unit_events.pop(0))
        workflow.upsert_search_attributes([SA_PAYMENT_METHOD.value_set(self._payment.method.value)])
        return True

    async def _follow_unit(self, event: c.UnitStatusChanged) -> None:
        if event.status is UnitStatus.APPROVED and self.status is not S.UNPAID:
            await self._enter(c.Step.UNIT_APPROVED, S.UNPAID, deadline=self.start.payment_deadline)
        elif event.status is UnitStatus.REJECTED and self.status is not S.UNIT_REJECTED:
            await self._enter(c.Step.UNIT_REJECTED, S.UNIT_REJECTED, reason=event.reason)
        elif event.status is UnitStatus.UNDER_REVIEW and self.status is S.UNIT_REJECTED:
            await self._enter(c.Step.UNIT_RESUBMITTED, S.SUBMITTED)

    async def _personnel_review(self) -> None:
        assert self._payment is not None
        self._in_review = True  # from now on a personnel decision is accepted
        # In the staff's queue before the buyer reads "to be reviewed", so a decision can follow at once.
        await call(
            c.OPEN_REVIEW_TASK,
            c.OpenReviewTask(
                kind=c.ReviewKind.PERSON,
                subject_id=self.start.registration_id,
                round=1,
                workflow_id=workflow.info().workflow_id,
                edition=self.start.edition,
                mission=self.start.mission,
                sub_mission=self.start.sub_mission,
                unit_id=self.start.unit_id,
                opened_at=workflow.now(),
            ),
            summary="queue for personnel review",
        )
        await self._enter(c.Step.PAID, S.TO_BE_REVIEWED, detail={"order_no": self._payment.order_no})
        await workflow.wait_condition(lambda: self._decided)
        assert self._decision is not None
        if self._decision.decision is Decision.REJECT:
            await self._refund_after_failed_review(self._decision.reason or "")
        else:
            await self._enter(c.Step.REVIEW_PASSED, S.APPROVED)
            await self._make_and_dispatch_certificate()

    async def _refund_after_failed_review(self, reason: str) -> None:
        await self._enter(c.Step.REVIEW_FAILED, S.REVIEW_FAILED, reason=reason)
        assert self._payment is not None
        refund = await call(
            c.REFUND,
            c.RefundRequest(
                refund_key=f"review-failed:{self.start.registration_id}",
                order_no=self._payment.order_no,
                registration_id=self.start.registration_id,
                reason="personnel review failed",
            ),
            summary="refund after failed personnel review",
            timeout=timedelta(minutes=2),
        )
        await self._enter(c.Step.REFUNDED, S.REFUNDED, detail={"refund_no": refund.refund_no})

    async def _make_and_dispatch_certificate(self) -> None:
        await self._enter(c.Step.CERTIFICATE_MAKING, S.CERTIFICATE_IN_PRODUCTION, notify=False)
        made = await call(
            c.MAKE_CERTIFICATE,
            c.MakeCertificate(
                registration_id=self.start.registration_id,
                edition=self.start.edition,
                fee_kind=self.start.fee_kind,
            ),
            summary="make the certificate",
            timeout=timedelta(minutes=2),
        )
        self._certificate_no = made.certificate_no
        await self._enter(
            c.Step.CERTIFICATE_MADE,
            S.CERTIFICATE_ISSUED,
            detail={"certificate_no": made.certificate_no},
            notify=False,
        )
        dispatched = await call(
            c.DISPATCH_CERTIFICATE,
            c.DispatchCertificate(
                registration_id=self.start.registration_id,
                certificate_no=made.certificate_no,
                delivery_method=self.start.delivery_method,
            ),
            summary=f"dispatch by {self.start.delivery_method.value}",
        )
        detail = {"certificate_no": made.certificate_no, "delivery_method": self.start.delivery_method.value}
        if dispatched.tracking_no:
            detail |= {"carrier": dispatched.carrier or "", "tracking_no": dispatched.tracking_no}
        await self._enter(c.Step.DISPATCHED, dispatched.status, detail=detail)
        try:
            await workflow.wait_condition(
                lambda: self._delivered is not None,
                timeout=max(self.start.expo_closes - workflow.now(), timedelta(0)),
            )
        except TimeoutError:
            return  # the expo is over; the card was used or never reported delivered
        await self._enter(c.Step.DELIVERED, S.DELIVERED, notify=False)

    # ---------------------------------------------------------------- transitions

    async def _enter(
        self,
        step: c.Step,
        status: RegistrationStatus,
        *,
        deadline: datetime | None = None,
        reason: str | None = None,
        detail: dict[str, str] | None = None,
        notify: bool = True,
    ) -> None:
        """Record a step: state, search attributes, the read model's timeline, and the buyer's message."""
        now = workflow.now()
        self.status = status
        entry = c.TimelineEntry(step=step, status=status, at=now, deadline=deadline, reason=reason)
        self.timeline.append(entry)
        seq = len(self.timeline)
        if seq == 1:
            identify(
                edition=self.start.edition,
                mission=self.start.mission,
                unit=self.start.unit_id,
                sub_mission=self.start.sub_mission,
            )
        show_status(status.value, f"**{status.label_en}** ({status.label_zh}) since {now:%Y-%m-%d %H:%M} UTC")
        await call(
            c.RECORD_STATUS,
            c.RecordStatus(
                registration_id=self.start.registration_id,
                seq=seq,
                step=step,
                status=status,
                at=now,
                deadline=deadline,
                reason=reason,
                detail=detail or {},
            ),
            summary=f"record {step.value}",
        )
        if notify:
            params = dict(detail or {})
            if deadline:
                params["deadline"] = deadline.isoformat()
            if reason:
                params["reason"] = reason
            message = c.Notify(
                registration_id=self.start.registration_id,
                step=step,
                key=f"{self.start.registration_id}:{seq}:{step.value}",
                params=params,
            )
            # Not awaited here: the lifecycle goes on while the message is sent (and retried).
            self._background.append(
                asyncio.ensure_future(call(c.NOTIFY, message, summary=f"notify {step.value}"))
            )

    # ---------------------------------------------------------------- messages

    @workflow.signal(name=c.SIGNAL_UNIT_STATUS)
    def on_unit_status(self, event: c.UnitStatusChanged) -> None:
        self._unit_events.append(event)

    @workflow.signal(name=c.SIGNAL_PAYMENT_CONFIRMED)
    def on_payment_confirmed(self, payment: c.PaymentConfirmed) -> None:
        if self._payment is None:
            self._payment = payment

    @workflow.signal(name=c.SIGNAL_CERTIFICATE_DELIVERED)
    def on_delivered(self, delivered: c.CertificateDelivered) -> None:
        self._delivered = delivered

    @workflow.update(name=c.UPDATE_DECIDE)
    async def decide(self, decision: c.ReviewDecision) -> c.DecisionResult:
        """The personnel review: approve, or reject with a reason (which refunds the payment)."""
        if self._decision is not None:  # two decisions validated in the same workflow task
            raise refuse("already_decided", f"already decided: {self._decision.decision.value}")
        self._decision = decision
        try:
            await record_decision(c.ReviewKind.PERSON, self.start.registration_id, 1, decision)
        except Exception:
            self._decision = None  # not recorded: the decision may be made again
            raise
        self._decided = True
        await workflow.wait_condition(lambda: self.status not in (S.UNPAID, S.TO_BE_REVIEWED))
        return c.DecisionResult(status=self.status.value)

    @decide.validator
    def _validate_decision(self, decision: c.ReviewDecision) -> None:
        if self._decision is not None:
            raise refuse("already_decided", f"already decided: {self._decision.decision.value}")
        if not self._in_review:
            raise refuse(
                "not_awaiting_review", f"not awaiting personnel review (status: {self.status.value})"
            )
        if decision.decision is Decision.REJECT and not (decision.reason or "").strip():
            raise refuse("reason_required", "a rejection needs a reason")

    @workflow.query(name=c.QUERY_PROGRESS)
    def progress(self) -> c.RegistrationProgress:
        return c.RegistrationProgress(
            status=self.status,
            timeline=self.timeline,
            payment_deadline=self.start.payment_deadline,
            order_no=self._payment.order_no if self._payment else None,
            certificate_no=self._certificate_no,
        )
