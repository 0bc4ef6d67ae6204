"""One person's registration for one edition, from submission to a delivered certificate.

submitted       → unpaid (unit approved: the payment notice) | unit_rejected | withdrawn
unit_rejected   → submitted (the unit resubmitted) | withdrawn
unpaid          → to_be_reviewed (paid by QR code or B2B) | awaiting_transfer_confirmation (voucher)
                  | submitted (the approved unit changed) | expired (the last deadline) | withdrawn
awaiting_transfer_confirmation → to_be_reviewed (finance confirms) | unpaid (finance rejects)
to_be_reviewed  → approved (review passed) | review_failed → refunded | withdrawn → refunded
approved        → certificate_in_production → certificate_issued → shipped | awaiting_collection
                  | onsite_pickup → delivered; re-validation: approved → certificate_reactivated

Every change of state happens under one lock, whoever asks for it (the unit's review, a payment, the
buyer, staff, the deadline), so a change is decided on the state the previous one left. Money that
arrives for a registration that cannot take it (already paid, expired, withdrawn) is refunded.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypedDict, Unpack

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from shared import contracts as c
    from shared.temporal import SA_PAYMENT_METHOD
    from shared.types import Decision, FeeKind, PaymentMethod, RegistrationStatus, UnitStatus

from workflows.calls import call, record_decision, signal_if_open
from workflows.patches import ANSWER_BEFORE_RECORDS
from workflows.refusal import refuse
from workflows.visibility import identify, show_status

S = RegistrationStatus
# Waiting for the unit review or for the money: the payment deadline applies.
BEFORE_PAYMENT = (S.SUBMITTED, S.UNIT_REJECTED, S.UNPAID, S.AWAITING_TRANSFER_CONFIRMATION)
# Money is taken in these: a payment notice was sent and no payment has been accepted.
PAYABLE = (S.UNPAID, S.AWAITING_TRANSFER_CONFIRMATION)
# Certificate-making has begun: no refund, no substitution, no change of personal data (FAQ X).
PASSED = (
    S.APPROVED,
    S.CERTIFICATE_IN_PRODUCTION,
    S.CERTIFICATE_ISSUED,
    S.CERTIFICATE_REACTIVATED,
    S.SHIPPED,
    S.AWAITING_COLLECTION,
    S.ONSITE_PICKUP,
    S.DELIVERED,
)
ENDED = (S.EXPIRED, S.WITHDRAWN, S.REVIEW_FAILED, S.REFUNDED)


class StepDetails(TypedDict, total=False):
    """``_change``'s keywords, which ``_enter`` passes on."""

    deadline: datetime | None
    reason: str | None
    detail: dict[str, str] | None
    detail_extra: dict[str, str] | None
    notify: bool


class PaymentNotice(TypedDict):
    deadline: datetime
    detail_extra: dict[str, str]


@dataclass(frozen=True)
class StepTaken:
    """A step already in the workflow's state, still to be written: the read model's record and, if
    the buyer is told, the message."""

    record: c.RecordStatus
    message: c.Notify | None = None


@workflow.defn(name="BuyerRegistration")
class BuyerRegistrationWorkflow:
    @workflow.init
    def __init__(self, start: c.RegistrationStart) -> None:
        self.start = start
        self.status = S.SUBMITTED
        self.timeline: list[c.TimelineEntry] = []
        self.deadlines = start.payment_deadlines
        self._lock = asyncio.Lock()  # one change of state at a time
        self._inbox: list[c.UnitStatusChanged | c.TransferSubmitted | c.TransferRejected] = []
        self._unit_seen: tuple[int, int] | None = None  # (round, 0 under review / 1 decided) applied last
        self._deadlines_changed = False  # an extension arrived: the waiting loop re-reads the deadline
        self._payment: c.PaymentConfirmed | None = None
        self._transfer_order: str | None = None  # the order whose voucher finance is confirming
        self._review_round = 0
        self._decision: c.ReviewDecision | None = None
        self._delivered: c.CertificateDelivered | None = None
        self._certificate_no: str | None = None
        self._refund_no: str | None = None
        self._background: list[Awaitable[Any]] = []

    @workflow.run
    async def run(self, start: c.RegistrationStart) -> c.RegistrationProgress:
        async with self._lock:
            await self._enter(c.Step.REGISTERED, S.SUBMITTED)
        # The unit workflow tells members where its review stands, now and at every change.
        joined = await signal_if_open(
            start.unit_workflow_id,
            c.SIGNAL_MEMBER_JOINED,
            c.MemberJoined(registration_id=start.registration_id, workflow_id=workflow.info().workflow_id),
        )
        if not joined:  # the API starts the unit's workflow first; gone means the edition is over
            workflow.logger.warning("unit workflow %s is not running", start.unit_workflow_id)
        await self._until_paid_or_ended()
        if self.status is S.TO_BE_REVIEWED:
            await self._await_personnel_decision()
        if self.status is S.APPROVED:
            await self._issue_certificate()
        elif self.status is S.REVIEW_FAILED:
            async with self._lock:
                await self._refund(f"review-failed:{start.registration_id}", "personnel review failed")
        # Whatever is still being handled (a refund of stray money, a message) finishes first.
        await workflow.wait_condition(workflow.all_handlers_finished)
        await asyncio.gather(*self._background)
        return self.progress()

    # ---------------------------------------------------------------- phases

    async def _until_paid_or_ended(self) -> None:
        """Follow the unit review and the payment until the person is paid for, or the registration ends."""
        while self.status in BEFORE_PAYMENT:
            wake_at = self._wake_at()
            try:
                await workflow.wait_condition(
                    lambda: bool(self._inbox) or self._deadlines_changed or self.status not in BEFORE_PAYMENT,
                    timeout=max(wake_at - workflow.now(), timedelta(0)),
                )
            except TimeoutError:
                async with self._lock:
                    if self.status is S.UNPAID and workflow.now() >= self.deadlines.last:
                        await self._deadline_reached()
                    elif self.status in BEFORE_PAYMENT and workflow.now() >= self.start.expo_closes:
                        return  # never approved, or a transfer never confirmed: the expo is over
                continue
            async with self._lock:
                if self._deadlines_changed:
                    self._deadlines_changed = False
                    if self.status is S.UNPAID:
                        await self._enter(c.Step.DEADLINE_EXTENDED, S.UNPAID, **self._payment_notice())
                while self._inbox and self.status in BEFORE_PAYMENT:
                    await self._apply(self._inbox.pop(0))

    def _wake_at(self) -> datetime:
        # Awaiting finance, a transfer voucher uploaded in time is never expired (it is not the buyer's delay).
        return self.deadlines.last if self.status is S.UNPAID else self.start.expo_closes

    async def _deadline_reached(self) -> None:
        """The timer fired: an organiser may have extended the deadline since it was set."""
        current = await call(
            c.CURRENT_PAYMENT_DEADLINES, c.EditionRef(edition=self.start.edition), summary="re-read deadlines"
        )
        extended = self.deadlines.extended_by(current)
        if extended.last > self.deadlines.last:
            self.deadlines = extended
            await self._enter(c.Step.DEADLINE_EXTENDED, S.UNPAID, **self._payment_notice())
        else:
            await self._enter(c.Step.PAYMENT_EXPIRED, S.EXPIRED)

    async def _apply(self, event: c.UnitStatusChanged | c.TransferSubmitted | c.TransferRejected) -> None:
        match event:
            case c.UnitStatusChanged():
                await self._follow_unit(event)
            case c.TransferSubmitted(order_no=order_no) if self.status is S.UNPAID:
                self._transfer_order = order_no
                # Finance finds the people whose transfers await them by the payment method.
                workflow.upsert_search_attributes([SA_PAYMENT_METHOD.value_set(PaymentMethod.TRANSFER.value)])
                await self._enter(
                    c.Step.VOUCHER_UPLOADED, S.AWAITING_TRANSFER_CONFIRMATION, detail={"order_no": order_no}
                )
            case c.TransferRejected(order_no=order_no, reason=reason) if (
                self.status is S.AWAITING_TRANSFER_CONFIRMATION and order_no == self._transfer_order
            ):
                # Unpaid again with the deadline unchanged: at it (or at once, if it has passed) it expires.
                self._transfer_order = None
                await self._enter(
                    c.Step.TRANSFER_REJECTED,
                    S.UNPAID,
                    reason=reason,
                    detail={"order_no": order_no},
                    **self._payment_notice(),
                )
            case _:
                workflow.logger.info("ignored %s in status %s", type(event).__name__, self.status.value)

    async def _follow_unit(self, event: c.UnitStatusChanged) -> None:
        # Within a round the unit is first under review, then decided.
        seen = (event.round, 0 if event.status is UnitStatus.UNDER_REVIEW else 1)
        if self._unit_seen is not None and seen <= self._unit_seen:
            return  # an older or repeated event of the unit review
        self._unit_seen = seen
        if event.status is UnitStatus.APPROVED and self.status in (S.SUBMITTED, S.UNIT_REJECTED):
            await self._enter(c.Step.UNIT_APPROVED, S.UNPAID, **self._payment_notice())
        elif event.status is UnitStatus.REJECTED and self.status is S.SUBMITTED:
            await self._enter(c.Step.UNIT_REJECTED, S.UNIT_REJECTED, reason=event.reason)
        elif event.status is UnitStatus.UNDER_REVIEW and self.status is S.UNIT_REJECTED:
            await self._enter(c.Step.UNIT_RESUBMITTED, S.SUBMITTED)
        elif event.status is UnitStatus.UNDER_REVIEW and self.status is S.UNPAID:
            # The unit changed its data after approval: no payment until the mission approves it again.
            await self._enter(c.Step.UNIT_CHANGED, S.SUBMITTED)

    def _payment_notice(self) -> PaymentNotice:
        """What the payment notice says: pay by QR code or B2B before one instant, by transfer before another."""
        return {
            "deadline": self.deadlines.online,
            "detail_extra": {"transfer_deadline": self.deadlines.transfer.isoformat()},
        }

    async def _accept_payment(self, payment: c.PaymentConfirmed) -> None:
        """Paid: into the personnel review queue, then "to be reviewed" (under the lock)."""
        self._payment = payment
        self._transfer_order = None
        workflow.upsert_search_attributes([SA_PAYMENT_METHOD.value_set(payment.method.value)])
        paid = {"order_no": payment.order_no}
        if workflow.patched(ANSWER_BEFORE_RECORDS):  # the queue and the status are written together
            await asyncio.gather(
                self._open_personnel_review(), self._enter(c.Step.PAID, S.TO_BE_REVIEWED, detail=paid)
            )
        else:
            await self._open_personnel_review()
            await self._enter(c.Step.PAID, S.TO_BE_REVIEWED, detail=paid)

    def _entering_review(self) -> bool:
        """Paid, and on the way into the review: the staff's queue shows the person a moment before the
        status says "to be reviewed" (both under the lock), so a decision made in that moment is accepted
        and waits for the lock instead of being refused."""
        return self._payment is not None and self.status in PAYABLE

    async def _open_personnel_review(self) -> None:
        # In the staff's queue before the buyer reads "to be reviewed", so a decision can follow at once.
        self._review_round += 1
        await call(
            c.OPEN_REVIEW_TASK,
            c.OpenReviewTask(
                kind=c.ReviewKind.PERSON,
                subject_id=self.start.registration_id,
                round=self._review_round,
                workflow_id=workflow.info().workflow_id,
                edition=self.start.edition,
                mission=self.start.mission,
                sub_mission=self.start.sub_mission,
                unit_id=self.start.unit_id,
                opened_at=workflow.now(),
                unit_kind=self.start.unit_kind,
            ),
            summary=f"queue for personnel review (round {self._review_round})",
        )

    async def _close_personnel_review(self, reason: str) -> None:
        await call(
            c.CLOSE_REVIEW_TASK,
            c.CloseReviewTask(
                kind=c.ReviewKind.PERSON,
                subject_id=self.start.registration_id,
                round=self._review_round,
                reason=reason,
                at=workflow.now(),
            ),
            summary=f"close personnel review round {self._review_round}: {reason}",
        )

    async def _await_personnel_decision(self) -> None:
        """The decision (an update) or a withdrawal moves the registration on; both happen under the lock."""
        try:
            await workflow.wait_condition(
                lambda: self.status is not S.TO_BE_REVIEWED,
                timeout=max(self.start.expo_closes - workflow.now(), timedelta(0)),
            )
        except TimeoutError:
            workflow.logger.warning("the expo closed before the personnel review decided")
        async with self._lock:
            pass  # the decision's own step is recorded before the lifecycle moves on

    async def _refund(self, key: str, reason: str) -> None:
        """This person's share of the order that paid for them goes back; then "refunded"."""
        assert self._payment is not None
        refund = await call(
            c.REFUND,
            c.RefundRequest(
                refund_key=key,
                order_no=self._payment.order_no,
                registration_id=self.start.registration_id,
                reason=reason,
            ),
            summary=f"refund: {reason}",
            timeout=timedelta(minutes=2),
        )
        self._refund_no = refund.refund_no
        detail = {"refund_no": refund.refund_no, "order_no": self._payment.order_no}
        if refund.invoice_voided:
            detail["invoice_voided"] = refund.invoice_voided
        if refund.invoice_issued:
            detail["invoice_issued"] = refund.invoice_issued
        await self._enter(c.Step.REFUNDED, S.REFUNDED, detail=detail)

    async def _issue_certificate(self) -> None:
        """Re-validation re-activates last edition's card; everyone else gets a new one, sent or handed over."""
        if self.start.fee_kind is FeeKind.REVALIDATION and self.start.previous_certificate_no:
            made = await call(
                c.REACTIVATE_CERTIFICATE,
                c.ReactivateCertificate(
                    registration_id=self.start.registration_id,
                    edition=self.start.edition,
                    previous_certificate_no=self.start.previous_certificate_no,
                ),
                summary="re-activate last edition's certificate",
            )
            self._certificate_no = made.certificate_no
            await self._enter(
                c.Step.CERTIFICATE_REACTIVATED,
                S.CERTIFICATE_REACTIVATED,
                detail={"certificate_no": made.certificate_no},
            )
            return
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

    async def _enter(self, step: c.Step, status: RegistrationStatus, **details: Unpack[StepDetails]) -> None:
        """Take a step (``_change``) and record it (``_record``)."""
        await self._record(self._change(step, status, **details))

    def _change(
        self,
        step: c.Step,
        status: RegistrationStatus,
        *,
        deadline: datetime | None = None,
        reason: str | None = None,
        detail: dict[str, str] | None = None,
        detail_extra: dict[str, str] | None = None,
        notify: bool = True,
    ) -> StepTaken:
        """The step in the workflow's own state (status, timeline, search attributes), at once; what
        ``_record`` then writes to the read model and sends to the buyer. ``detail_extra`` goes to the
        message only (the payment notice's transfer deadline)."""
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
        record = c.RecordStatus(
            registration_id=self.start.registration_id,
            seq=seq,
            step=step,
            status=status,
            at=now,
            deadline=deadline,
            reason=reason,
            detail=detail or {},
        )
        if not notify:
            return StepTaken(record)
        params = dict(detail or {}) | dict(detail_extra or {})
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
        return StepTaken(record, message)

    async def _record(self, taken: StepTaken) -> None:
        step = taken.record.step
        await call(c.RECORD_STATUS, taken.record, summary=f"record {step.value}")
        if taken.message is not None:
            # Not awaited here: the lifecycle goes on while the message is sent (and retried).
            self._background.append(
                asyncio.ensure_future(call(c.NOTIFY, taken.message, summary=f"notify {step.value}"))
            )

    # ---------------------------------------------------------------- signals

    @workflow.signal(name=c.SIGNAL_UNIT_STATUS)
    def on_unit_status(self, event: c.UnitStatusChanged) -> None:
        self._inbox.append(event)

    @workflow.signal(name=c.SIGNAL_TRANSFER_SUBMITTED)
    def on_transfer_submitted(self, event: c.TransferSubmitted) -> None:
        self._inbox.append(event)

    @workflow.signal(name=c.SIGNAL_TRANSFER_REJECTED)
    def on_transfer_rejected(self, event: c.TransferRejected) -> None:
        self._inbox.append(event)

    @workflow.signal(name=c.SIGNAL_DEADLINES_EXTENDED)
    def on_deadlines_extended(self, deadlines: c.PaymentDeadlines) -> None:
        extended = self.deadlines.extended_by(deadlines)
        if extended != self.deadlines:  # an organiser's announcement delivered twice changes nothing
            self.deadlines = extended
            self._deadlines_changed = True

    @workflow.signal(name=c.SIGNAL_PAYMENT_CONFIRMED)
    async def on_payment_confirmed(self, payment: c.PaymentConfirmed) -> None:
        """Money for this person: taken once, while a payment notice stands; otherwise sent back."""
        if self._payment is not None and payment.order_no == self._payment.order_no:
            return  # the same order's confirmation again
        async with self._lock:
            if self._payment is None and self.status in PAYABLE:
                await self._accept_payment(payment)
                return
            why = (
                f"already paid by order {self._payment.order_no}"
                if self._payment is not None
                else f"the registration was {self.status.value} when the payment arrived"
            )
        await call(
            c.REFUND,
            c.RefundRequest(
                refund_key=unaccepted_refund_key(payment.order_no, self.start.registration_id),
                order_no=payment.order_no,
                registration_id=self.start.registration_id,
                reason=why,
            ),
            summary=f"refund order {payment.order_no}: {why}",
            timeout=timedelta(minutes=2),
        )

    @workflow.signal(name=c.SIGNAL_CERTIFICATE_DELIVERED)
    def on_delivered(self, delivered: c.CertificateDelivered) -> None:
        self._delivered = delivered

    # ---------------------------------------------------------------- updates

    @workflow.update(name=c.UPDATE_DECIDE)
    async def decide(self, decision: c.ReviewDecision) -> c.DecisionResult:
        """The personnel review: a pass starts certificate-making at once; a failure refunds the payment.

        The answer follows the decision taken in the workflow's state (durable in its history from
        then on); the decision and the new status are written to the review log and the read model
        together after it, still under the lock, so the next change waits for them."""
        if not workflow.patched(ANSWER_BEFORE_RECORDS):
            return await self._decide_recording_first(decision)
        await self._lock.acquire()
        try:
            self._validate_decision(decision)  # again: the state may have moved while this waited
        except BaseException:
            self._lock.release()
            raise
        self._decision = decision
        if decision.decision is Decision.APPROVE:
            taken = self._change(c.Step.REVIEW_PASSED, S.APPROVED)
        else:
            taken = self._change(c.Step.REVIEW_FAILED, S.REVIEW_FAILED, reason=decision.reason)
        self._background.append(asyncio.ensure_future(self._write_decision(decision, taken)))
        return c.DecisionResult(status=self.status.value)

    async def _write_decision(self, decision: c.ReviewDecision, taken: StepTaken) -> None:
        try:
            await asyncio.gather(
                record_decision(
                    c.ReviewKind.PERSON, self.start.registration_id, self._review_round, decision
                ),
                self._record(taken),
            )
        finally:
            self._lock.release()

    async def _decide_recording_first(self, decision: c.ReviewDecision) -> c.DecisionResult:
        """Before ANSWER_BEFORE_RECORDS: the answer waited for both writes, one after the other
        (kept so that workflows started before it replay)."""
        async with self._lock:
            self._validate_decision(decision)  # again: the state may have moved while this waited
            await record_decision(
                c.ReviewKind.PERSON, self.start.registration_id, self._review_round, decision
            )
            self._decision = decision
            if decision.decision is Decision.APPROVE:
                await self._enter(c.Step.REVIEW_PASSED, S.APPROVED)
                return c.DecisionResult(status=S.APPROVED.value)
            await self._enter(c.Step.REVIEW_FAILED, S.REVIEW_FAILED, reason=decision.reason)
            return c.DecisionResult(status=S.REVIEW_FAILED.value)

    @decide.validator
    def _validate_decision(self, decision: c.ReviewDecision) -> None:
        if self._decision is not None:
            raise refuse("already_decided", f"already decided: {self._decision.decision.value}")
        if self.status is not S.TO_BE_REVIEWED and not self._entering_review():
            raise refuse(
                "not_awaiting_review", f"not awaiting personnel review (status: {self.status.value})"
            )
        if decision.round is not None and decision.round != self._review_round:
            raise refuse(
                "review_round_superseded",
                f"the person's data changed since round {decision.round}: review round {self._review_round}",
            )
        if decision.decision is Decision.REJECT and not (decision.reason or "").strip():
            raise refuse("reason_required", "a rejection needs a reason")

    @workflow.update(name=c.UPDATE_WITHDRAW)
    async def withdraw(self, request: c.Withdrawal) -> c.DecisionResult:
        """The buyer withdraws: before payment it simply ends; paid and not yet reviewed, it is refunded."""
        async with self._lock:
            self._validate_withdrawal(request)
            paid = self.status is S.TO_BE_REVIEWED
            if paid:
                await self._close_personnel_review("withdrawn")
            await self._enter(c.Step.WITHDRAWN, S.WITHDRAWN, detail={"requested_by": request.requested_by})
            if paid:
                await self._refund(f"withdrawn:{self.start.registration_id}", "withdrawn before the review")
            return c.DecisionResult(status=self.status.value)

    @withdraw.validator
    def _validate_withdrawal(self, request: c.Withdrawal) -> None:
        self._refuse_if_passed_or_ended("withdrawn")
        if self.status is S.AWAITING_TRANSFER_CONFIRMATION:
            raise refuse(
                "transfer_being_confirmed",
                "finance is confirming a bank transfer for this person: wait for it",
            )

    @workflow.update(name=c.UPDATE_CHANGE_PERSON)
    async def change_person(self, change: c.PersonChange) -> c.DecisionResult:
        """New personal data (or another person) before the personnel review; under review, a new round."""
        async with self._lock:
            self._validate_person_change(change)
            await call(
                c.APPLY_REVISION,
                c.ApplyRevision(
                    kind=c.ReviewKind.PERSON,
                    subject_id=self.start.registration_id,
                    revision_id=change.revision_id,
                ),
                summary="apply the changed personal data",
            )
            detail = {"revision_id": change.revision_id, "substitution": str(change.substitution).lower()}
            await self._enter(c.Step.PERSON_CHANGED, self.status, detail=detail)
            if self.status is S.TO_BE_REVIEWED:  # the reviewers must see the new data
                await self._close_personnel_review("personal data changed")
                await self._open_personnel_review()
            return c.DecisionResult(status=self.status.value)

    @change_person.validator
    def _validate_person_change(self, change: c.PersonChange) -> None:
        self._refuse_if_passed_or_ended("changed")
        if change.substitution and self.start.fee_kind is FeeKind.REVALIDATION:
            raise refuse(
                "revalidation_not_transferable",
                "a re-validated certificate belongs to its holder: no substitute",
            )

    def _refuse_if_passed_or_ended(self, what: str) -> None:
        if self.status in PASSED:
            raise refuse(
                "certificate_in_production",
                f"the personnel review has passed and certificate-making has begun: it can no longer be {what},"
                " refunded or given to someone else",
            )
        if self.status in ENDED:
            raise refuse("registration_ended", f"the registration has ended ({self.status.value})")

    # ---------------------------------------------------------------- queries

    @workflow.query(name=c.QUERY_PROGRESS)
    def progress(self) -> c.RegistrationProgress:
        return c.RegistrationProgress(
            status=self.status,
            timeline=self.timeline,
            payment_deadlines=self.deadlines,
            order_no=self._payment.order_no if self._payment else None,
            certificate_no=self._certificate_no,
            refund_no=self._refund_no,
        )


def unaccepted_refund_key(order_no: str, registration_id: str) -> str:
    """One refund of a person's share of an order that could not pay for them, whoever notices first:
    the registration (open) or the order (the registration had closed)."""
    return f"order:{order_no}:unaccepted:{registration_id}"
