"""Every message that crosses a process boundary through Temporal, in one place.

Activities are called by name on the owning service's task queue, so workflows never import service
code; each service implements the names listed here. Workflow signals and updates are named here too,
so the services that send them and the workflows that handle them agree. Payloads carry ids and
statuses, never personal data: services look people up in the registration service when they need to.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from shared import temporal
from shared.types import (
    Decision,
    DeliveryMethod,
    FeeKind,
    OrderStatus,
    PaymentMethod,
    RegistrationStatus,
    UnitKind,
    UnitStatus,
)


class Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PaymentDeadlines(Message):
    """When each way of paying closes (absolute instants): the edition's, as the organiser extended them."""

    qr: datetime
    b2b: datetime
    transfer: datetime  # the bank transfer and the upload of its voucher

    def closes(self, method: PaymentMethod) -> datetime:
        closes: datetime = getattr(self, method.value)
        return closes

    @property
    def online(self) -> datetime:
        """The later of QR code and B2B: what the payment notice asks for."""
        return max(self.qr, self.b2b)

    @property
    def last(self) -> datetime:
        """Until then an unpaid registration may still pay by some method; at it, it expires."""
        return max(self.qr, self.b2b, self.transfer)

    def extended_by(self, other: PaymentDeadlines) -> PaymentDeadlines:
        """Each deadline as late as either says: an extension never shortens a deadline announced."""
        return PaymentDeadlines(
            qr=max(self.qr, other.qr),
            b2b=max(self.b2b, other.b2b),
            transfer=max(self.transfer, other.transfer),
        )


class Step(StrEnum):
    """A step of a registration's timeline; each has a notification template and a buyer-facing text."""

    REGISTERED = "registered"
    UNIT_APPROVED = "unit_approved"  # doubles as the payment notice
    UNIT_REJECTED = "unit_rejected"
    UNIT_RESUBMITTED = "unit_resubmitted"  # a rejected unit modified its data: reviewed again
    UNIT_CHANGED = "unit_changed"  # an approved unit changed its data: reviewed again, payment waits
    DEADLINE_EXTENDED = "deadline_extended"  # the organiser extended the payment deadlines
    VOUCHER_UPLOADED = "voucher_uploaded"  # a bank transfer's voucher awaits finance's confirmation
    TRANSFER_REJECTED = "transfer_rejected"  # finance rejected the voucher: unpaid again
    PAID = "paid"
    PAYMENT_EXPIRED = "payment_expired"
    PERSON_CHANGED = "person_changed"  # personal data changed, or another person substituted
    REVIEW_PASSED = "review_passed"
    CERTIFICATE_MAKING = "certificate_making"
    REVIEW_FAILED = "review_failed"
    REFUNDED = "refunded"
    CERTIFICATE_MADE = "certificate_made"
    CERTIFICATE_REACTIVATED = "certificate_reactivated"  # re-validation: the old card is valid again
    DISPATCHED = "dispatched"
    DELIVERED = "delivered"
    WITHDRAWN = "withdrawn"


# --------------------------------------------------------------------------------------------------
# Activities

InputT = TypeVar("InputT", bound=Message)
OutputT = TypeVar("OutputT")


@dataclass(frozen=True)
class ActivityRef(Generic[InputT, OutputT]):
    """An activity's name, owner queue and types: what a workflow needs to call it."""

    name: str
    task_queue: str
    input: type[InputT]
    output: type[OutputT]


class RecordStatus(Message):
    registration_id: str
    seq: int  # the step's position in the workflow's timeline: makes the write idempotent
    step: Step
    status: RegistrationStatus
    at: datetime
    deadline: datetime | None = None
    reason: str | None = None
    detail: dict[str, str] = Field(default_factory=dict)


class RecordUnitStatus(Message):
    unit_id: str
    round: int  # review round: a resubmission opens a new one
    status: UnitStatus
    at: datetime
    reason: str | None = None


class ReviewKind(StrEnum):
    UNIT = "unit"
    PERSON = "person"


class OpenReviewTask(Message):
    kind: ReviewKind
    subject_id: str
    round: int
    workflow_id: str
    edition: str
    mission: str
    sub_mission: str | None
    unit_id: str
    opened_at: datetime
    unit_kind: UnitKind | None = None  # staff filter their queues by it


class RecordDecision(Message):
    kind: ReviewKind
    subject_id: str
    round: int
    decision: Decision
    reason: str | None
    reviewer: str
    decided_at: datetime


class MarkOrderPaid(Message):
    order_no: str
    transaction_id: str
    amount_fen: int
    paid_at: datetime


class CloseOrder(Message):
    order_no: str
    at: datetime


class RefundRequest(Message):
    """Refund a person's share of an order (``registration_id``), or money that matches no one
    (``amount_fen`` of ``transaction_id``, a transaction that came twice, short, too much or late)."""

    refund_key: str  # one refund per key, however often the activity runs
    order_no: str
    registration_id: str | None = None
    transaction_id: str | None = None  # default: the transaction that paid the order
    amount_fen: int | None = None
    reason: str


class RefundResult(Message):
    refund_no: str
    succeeded: bool
    # A refund from an invoiced order voids its invoice and issues one for what remains paid (FAQ XI).
    invoice_voided: str | None = None
    invoice_issued: str | None = None


class EditionRef(Message):
    edition: str


class ApplyRevision(Message):
    """Apply data the buyer saved as a pending revision (the payload names it, never its content)."""

    kind: ReviewKind  # a unit's data or a person's
    subject_id: str
    revision_id: str


class AnnounceDeadlines(Message):
    """Tell every waiting registration (or open order) of the edition about extended deadlines."""

    edition: str
    deadlines: PaymentDeadlines


class Announced(Message):
    signalled: int


class CloseReviewTask(Message):
    """Take a subject off the review queue without a decision (withdrawn, or superseded by new data)."""

    kind: ReviewKind
    subject_id: str
    round: int
    reason: str
    at: datetime


class RecordVoucher(Message):
    order_no: str
    voucher_key: str  # the remittance voucher in the vouchers bucket
    at: datetime


class RecordTransferDecision(Message):
    order_no: str
    decision: Decision
    reason: str | None
    reviewer: str
    bank_reference: str | None
    decided_at: datetime


class MakeCertificate(Message):
    registration_id: str
    edition: str
    fee_kind: FeeKind


class CertificateMade(Message):
    certificate_no: str


class ReactivateCertificate(Message):
    """Re-validation: last edition's card, unchanged, becomes valid for this edition."""

    registration_id: str
    edition: str
    previous_certificate_no: str


class DispatchCertificate(Message):
    registration_id: str
    certificate_no: str
    delivery_method: DeliveryMethod


class Dispatched(Message):
    status: RegistrationStatus  # shipped, awaiting_collection or onsite_pickup
    carrier: str | None = None
    tracking_no: str | None = None


class Notify(Message):
    registration_id: str
    step: Step
    key: str  # one message per key and channel, however often the activity runs
    params: dict[str, str] = Field(default_factory=dict)


class Notified(Message):
    sms_sent: bool
    email_sent: bool


RECORD_STATUS = ActivityRef(
    "registration.record_status", temporal.REGISTRATION_QUEUE, RecordStatus, type(None)
)
RECORD_UNIT_STATUS = ActivityRef(
    "registration.record_unit_status", temporal.REGISTRATION_QUEUE, RecordUnitStatus, type(None)
)
CURRENT_PAYMENT_DEADLINES = ActivityRef(
    "registration.current_payment_deadlines", temporal.REGISTRATION_QUEUE, EditionRef, PaymentDeadlines
)
APPLY_REVISION = ActivityRef(
    "registration.apply_revision", temporal.REGISTRATION_QUEUE, ApplyRevision, type(None)
)
ANNOUNCE_DEADLINES_TO_REGISTRATIONS = ActivityRef(
    "registration.announce_deadlines", temporal.REGISTRATION_QUEUE, AnnounceDeadlines, Announced
)
OPEN_REVIEW_TASK = ActivityRef("review.open_task", temporal.REVIEW_QUEUE, OpenReviewTask, type(None))
CLOSE_REVIEW_TASK = ActivityRef("review.close_task", temporal.REVIEW_QUEUE, CloseReviewTask, type(None))
RECORD_DECISION = ActivityRef("review.record_decision", temporal.REVIEW_QUEUE, RecordDecision, type(None))
MARK_ORDER_PAID = ActivityRef("payment.mark_order_paid", temporal.PAYMENT_QUEUE, MarkOrderPaid, type(None))
CLOSE_ORDER = ActivityRef("payment.close_order", temporal.PAYMENT_QUEUE, CloseOrder, type(None))
RECORD_VOUCHER = ActivityRef("payment.record_voucher", temporal.PAYMENT_QUEUE, RecordVoucher, type(None))
RECORD_TRANSFER_DECISION = ActivityRef(
    "payment.record_transfer_decision", temporal.PAYMENT_QUEUE, RecordTransferDecision, type(None)
)
REFUND = ActivityRef("payment.refund", temporal.PAYMENT_QUEUE, RefundRequest, RefundResult)
ANNOUNCE_DEADLINES_TO_ORDERS = ActivityRef(
    "payment.announce_deadlines", temporal.PAYMENT_QUEUE, AnnounceDeadlines, Announced
)
MAKE_CERTIFICATE = ActivityRef(
    "certificate.make", temporal.CERTIFICATE_QUEUE, MakeCertificate, CertificateMade
)
REACTIVATE_CERTIFICATE = ActivityRef(
    "certificate.reactivate", temporal.CERTIFICATE_QUEUE, ReactivateCertificate, CertificateMade
)
DISPATCH_CERTIFICATE = ActivityRef(
    "certificate.dispatch", temporal.CERTIFICATE_QUEUE, DispatchCertificate, Dispatched
)
NOTIFY = ActivityRef("notification.notify", temporal.NOTIFICATION_QUEUE, Notify, Notified)


# --------------------------------------------------------------------------------------------------
# Workflows: inputs, signals, updates, queries


class UnitStart(Message):
    edition: str
    unit_id: str
    mission: str
    sub_mission: str | None
    registration_closes: datetime
    expo_closes: datetime
    unit_kind: UnitKind | None = None


class RegistrationStart(Message):
    edition: str
    registration_id: str
    unit_id: str
    unit_workflow_id: str
    mission: str
    sub_mission: str | None
    fee_kind: FeeKind
    delivery_method: DeliveryMethod
    payment_deadlines: PaymentDeadlines  # as they stood at registration; extensions reach the workflow
    expo_closes: datetime
    previous_certificate_no: str | None = None  # re-validation of last edition's card (fee_kind)
    unit_kind: UnitKind | None = None


class PaymentOrderStart(Message):
    edition: str
    order_no: str
    unit_id: str
    mission: str
    method: PaymentMethod
    amount_fen: int
    registration_ids: list[str]
    deadline: datetime  # the method's: until then the order takes money (a transfer: its voucher)
    expo_closes: datetime  # until then money that comes late is still answered with a refund


class DeadlineExtensionStart(Message):
    edition: str
    extension_id: str
    deadlines: PaymentDeadlines


class MemberJoined(Message):
    registration_id: str
    workflow_id: str


class UnitStatusChanged(Message):
    """The unit workflow tells each member's registration where the unit review stands."""

    status: UnitStatus
    round: int
    at: datetime
    reason: str | None = None


class TransferSubmitted(Message):
    """The order's remittance voucher was uploaded: finance will confirm the transfer."""

    order_no: str


class TransferRejected(Message):
    order_no: str
    reason: str


class Withdrawal(Message):
    """The buyer withdraws: before payment, or after it and before the personnel review (refunded)."""

    requested_by: str


class PersonChange(Message):
    """Personal data saved as a pending revision, to apply before the personnel review."""

    revision_id: str
    substitution: bool = False  # another person takes the place: a new person, reviewed anew


class UnitChange(Message):
    """A unit's data saved as a pending revision: a rejected unit resubmits, an approved one is reviewed again."""

    revision_id: str


class VoucherUpload(Message):
    voucher_key: str


class TransferDecision(Message):
    """Finance's confirmation of a bank transfer: confirmed (paid), or rejected with a reason."""

    decision: Decision
    reason: str | None = None
    reviewer: str
    bank_reference: str | None = None  # the bank's transaction reference, when confirmed


class ReviewDecision(Message):
    decision: Decision
    reason: str | None = None
    reviewer: str
    round: int | None = None  # the round the reviewer looked at: refused if new data opened another


class DecisionResult(Message):
    status: str  # the subject's status after the decision


class GatewayConfirmation(Message):
    transaction_id: str
    amount_fen: int
    paid_at: datetime


class PaymentConfirmed(Message):
    order_no: str
    method: PaymentMethod
    transaction_id: str
    paid_at: datetime


class CertificateDelivered(Message):
    at: datetime


class TimelineEntry(Message):
    step: Step
    status: RegistrationStatus
    at: datetime
    deadline: datetime | None = None
    reason: str | None = None


class RegistrationProgress(Message):
    status: RegistrationStatus
    timeline: list[TimelineEntry]
    payment_deadlines: PaymentDeadlines
    order_no: str | None
    certificate_no: str | None
    refund_no: str | None = None


class UnitProgress(Message):
    status: UnitStatus
    round: int
    reason: str | None
    members: list[str]


class OrderProgress(Message):
    status: OrderStatus
    deadline: datetime
    transaction_ids: list[str]  # every gateway transaction or confirmed transfer, once each
    voucher_key: str | None = None


# Signal, update and query names.
SIGNAL_MEMBER_JOINED = "member_joined"
SIGNAL_UNIT_STATUS = "unit_status_changed"
SIGNAL_PAYMENT_CONFIRMED = "payment_confirmed"
SIGNAL_GATEWAY_CONFIRMATION = "gateway_confirmation"
SIGNAL_CERTIFICATE_DELIVERED = "certificate_delivered"
SIGNAL_DEADLINES_EXTENDED = "payment_deadlines_extended"
SIGNAL_TRANSFER_SUBMITTED = "transfer_submitted"
SIGNAL_TRANSFER_REJECTED = "transfer_rejected"
UPDATE_DECIDE = "decide"  # staff: the unit review, the personnel review
UPDATE_CHANGE_UNIT = "change_unit"  # buyer: resubmit a rejected unit, or change an approved one
UPDATE_CHANGE_PERSON = "change_person"  # buyer: personal data or a substitute, before the pass
UPDATE_WITHDRAW = "withdraw"  # buyer
UPDATE_UPLOAD_VOUCHER = "upload_voucher"  # buyer: a bank transfer's voucher
UPDATE_CONFIRM_TRANSFER = "confirm_transfer"  # finance
QUERY_PROGRESS = "progress"
