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
    PaymentMethod,
    RegistrationStatus,
    UnitStatus,
)


class Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Step(StrEnum):
    """A step of a registration's timeline; each has a notification template and a buyer-facing text."""

    REGISTERED = "registered"
    UNIT_APPROVED = "unit_approved"  # doubles as the payment notice
    UNIT_REJECTED = "unit_rejected"
    UNIT_RESUBMITTED = "unit_resubmitted"
    PAID = "paid"
    PAYMENT_EXPIRED = "payment_expired"
    REVIEW_PASSED = "review_passed"
    CERTIFICATE_MAKING = "certificate_making"
    REVIEW_FAILED = "review_failed"
    REFUNDED = "refunded"
    CERTIFICATE_MADE = "certificate_made"
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


class MakeCertificate(Message):
    registration_id: str
    edition: str
    fee_kind: FeeKind


class CertificateMade(Message):
    certificate_no: str


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
OPEN_REVIEW_TASK = ActivityRef("review.open_task", temporal.REVIEW_QUEUE, OpenReviewTask, type(None))
RECORD_DECISION = ActivityRef("review.record_decision", temporal.REVIEW_QUEUE, RecordDecision, type(None))
MARK_ORDER_PAID = ActivityRef("payment.mark_order_paid", temporal.PAYMENT_QUEUE, MarkOrderPaid, type(None))
CLOSE_ORDER = ActivityRef("payment.close_order", temporal.PAYMENT_QUEUE, CloseOrder, type(None))
REFUND = ActivityRef("payment.refund", temporal.PAYMENT_QUEUE, RefundRequest, RefundResult)
MAKE_CERTIFICATE = ActivityRef(
    "certificate.make", temporal.CERTIFICATE_QUEUE, MakeCertificate, CertificateMade
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


class RegistrationStart(Message):
    edition: str
    registration_id: str
    unit_id: str
    unit_workflow_id: str
    mission: str
    sub_mission: str | None
    fee_kind: FeeKind
    delivery_method: DeliveryMethod
    payment_deadline: datetime  # the latest deadline of any payment method
    expo_closes: datetime


class PaymentOrderStart(Message):
    edition: str
    order_no: str
    unit_id: str
    mission: str
    method: PaymentMethod
    amount_fen: int
    registration_ids: list[str]
    deadline: datetime


class MemberJoined(Message):
    registration_id: str
    workflow_id: str


class UnitStatusChanged(Message):
    """The unit workflow tells each member's registration where the unit review stands."""

    status: UnitStatus
    round: int
    at: datetime
    reason: str | None = None


class ReviewDecision(Message):
    decision: Decision
    reason: str | None = None
    reviewer: str


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
    payment_deadline: datetime | None
    order_no: str | None
    certificate_no: str | None


class UnitProgress(Message):
    status: UnitStatus
    round: int
    reason: str | None
    members: list[str]


class OrderProgress(Message):
    paid: bool
    closed: bool
    transaction_ids: list[str]


# Signal, update and query names.
SIGNAL_MEMBER_JOINED = "member_joined"
SIGNAL_UNIT_STATUS = "unit_status_changed"
SIGNAL_PAYMENT_CONFIRMED = "payment_confirmed"
SIGNAL_GATEWAY_CONFIRMATION = "gateway_confirmation"
SIGNAL_CERTIFICATE_DELIVERED = "certificate_delivered"
UPDATE_DECIDE = "decide"
UPDATE_RESUBMIT = "resubmit"
QUERY_PROGRESS = "progress"
