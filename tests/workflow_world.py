"""The world the workflow tests run in: a time-skipping server, fake services, and handles through
which a test acts as a buyer, a reviewer, finance, the organiser and the payment gateway.

Not a test module. Time skips while a test awaits a workflow's result, for every workflow on the
server, and may run on to the next timer before the result comes back: a test that must stop at an
instant uses ``env.sleep`` instead. Set EXPO_RECORD_HISTORIES=1 to (re)record ``tests/histories``.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import (
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowHistory,
    WorkflowUpdateFailedError,
)
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from shared import contracts as c
from shared.ids import new_id
from shared.temporal import (
    WORKFLOW_TASK_QUEUE,
    payment_order_workflow_id,
    registration_workflow_id,
    unit_workflow_id,
)
from shared.types import (
    Decision,
    DeliveryMethod,
    FeeKind,
    OrderStatus,
    PaymentMethod,
    RegistrationStatus,
    UnitStatus,
)
from tests.workflow_env import WORKFLOWS, FakeServices
from workflows.deadline_extension import PaymentDeadlineExtensionWorkflow
from workflows.payment_order import PaymentOrderWorkflow
from workflows.registration import BuyerRegistrationWorkflow
from workflows.unit import UnitWorkflow

S = RegistrationStatus
Step = c.Step
T = TypeVar("T")

EDITION = "ciie6"
MISSION = "shanghai"
FEE_FEN = 50_000
HISTORIES = Path(__file__).parent / "histories"
RECORD_HISTORIES = os.environ.get("EXPO_RECORD_HISTORIES") == "1"

RegistrationHandle = WorkflowHandle[BuyerRegistrationWorkflow, c.RegistrationProgress]
UnitHandle = WorkflowHandle[UnitWorkflow, c.UnitProgress]
OrderHandle = WorkflowHandle[PaymentOrderWorkflow, c.OrderProgress]


# --------------------------------------------------------------------------------------------------
# The world a test runs in: a server of its own, the fakes, and handles on the workflows it starts


@dataclass
class Unit:
    handle: UnitHandle
    start: c.UnitStart

    @property
    def id(self) -> str:
        return self.start.unit_id

    async def progress(self) -> c.UnitProgress:
        progress: c.UnitProgress = await self.handle.query(c.QUERY_PROGRESS, result_type=c.UnitProgress)
        return progress

    async def decide(self, decision: Decision, reason: str | None = None) -> c.DecisionResult:
        """The mission's affiliation review, by the update's contract name (as the review service)."""
        review = c.ReviewDecision(decision=decision, reason=reason, reviewer="mission-reviewer")
        result: c.DecisionResult = await self.handle.execute_update(
            c.UPDATE_DECIDE, review, result_type=c.DecisionResult
        )
        return result

    async def change(self) -> c.DecisionResult:
        """The buyer changed the unit's data (saved as a revision): resubmitted or reviewed again."""
        change = c.UnitChange(revision_id=new_id("V"))
        result: c.DecisionResult = await self.handle.execute_update(
            c.UPDATE_CHANGE_UNIT, change, result_type=c.DecisionResult
        )
        return result


@dataclass
class Registration:
    handle: RegistrationHandle
    start: c.RegistrationStart
    services: FakeServices

    @property
    def id(self) -> str:
        return self.start.registration_id

    async def progress(self) -> c.RegistrationProgress:
        progress: c.RegistrationProgress = await self.handle.query(
            c.QUERY_PROGRESS, result_type=c.RegistrationProgress
        )
        return progress

    async def decide(self, decision: Decision, reason: str | None = None) -> c.DecisionResult:
        """The personnel review, by the update's contract name."""
        review = c.ReviewDecision(decision=decision, reason=reason, reviewer="personnel-reviewer")
        result: c.DecisionResult = await self.handle.execute_update(
            c.UPDATE_DECIDE, review, result_type=c.DecisionResult
        )
        return result

    async def withdraw(self) -> c.DecisionResult:
        result: c.DecisionResult = await self.handle.execute_update(
            c.UPDATE_WITHDRAW, c.Withdrawal(requested_by="buyer"), result_type=c.DecisionResult
        )
        return result

    async def change(self, *, substitution: bool = False) -> c.DecisionResult:
        """The buyer changed personal data, or put another person in this place (saved as a revision)."""
        change = c.PersonChange(revision_id=new_id("V"), substitution=substitution)
        result: c.DecisionResult = await self.handle.execute_update(
            c.UPDATE_CHANGE_PERSON, change, result_type=c.DecisionResult
        )
        return result

    async def delivered(self, at: datetime) -> None:
        await self.handle.signal(c.SIGNAL_CERTIFICATE_DELIVERED, c.CertificateDelivered(at=at))


@dataclass
class Order:
    handle: OrderHandle
    start: c.PaymentOrderStart

    @property
    def no(self) -> str:
        return self.start.order_no

    async def confirm(self, transaction_id: str, amount_fen: int, paid_at: datetime) -> None:
        """The gateway's callback, as the payment service relays it."""
        await self.handle.signal(
            c.SIGNAL_GATEWAY_CONFIRMATION,
            c.GatewayConfirmation(transaction_id=transaction_id, amount_fen=amount_fen, paid_at=paid_at),
        )

    async def progress(self) -> c.OrderProgress:
        progress: c.OrderProgress = await self.handle.query(c.QUERY_PROGRESS, result_type=c.OrderProgress)
        return progress

    async def upload_voucher(self, key: str = "ciie6/voucher.pdf") -> c.DecisionResult:
        result: c.DecisionResult = await self.handle.execute_update(
            c.UPDATE_UPLOAD_VOUCHER, c.VoucherUpload(voucher_key=key), result_type=c.DecisionResult
        )
        return result

    async def finance(
        self, decision: Decision, *, reason: str | None = None, bank_reference: str | None = None
    ) -> c.DecisionResult:
        """Finance confirms (with the bank's reference) or rejects (with a reason) the transfer."""
        verdict = c.TransferDecision(
            decision=decision, reason=reason, reviewer="finance-clerk", bank_reference=bank_reference
        )
        result: c.DecisionResult = await self.handle.execute_update(
            c.UPDATE_CONFIRM_TRANSFER, verdict, result_type=c.DecisionResult
        )
        return result


class World:
    def __init__(self, env: WorkflowEnvironment, services: FakeServices) -> None:
        self.env = env
        self.client = env.client
        self.services = services

    async def extend_deadlines(
        self, deadlines: c.PaymentDeadlines
    ) -> WorkflowHandle[PaymentDeadlineExtensionWorkflow, c.Announced]:
        """The organiser extends the edition's payment deadlines; the services announce them to the
        workflows they find waiting (``services.waiting_workflows``). The announcement, done."""
        self.services.current_deadlines = deadlines
        handle = await self.client.start_workflow(
            PaymentDeadlineExtensionWorkflow.run,
            c.DeadlineExtensionStart(edition=EDITION, extension_id=new_id("X"), deadlines=deadlines),
            id=f"deadline-extension-{new_id('X')}",
            task_queue=WORKFLOW_TASK_QUEUE,
        )
        await completed(handle)
        return handle

    async def keep(self, branch: str, *handles: WorkflowHandle[Any, Any]) -> None:
        """Replay the workflows' histories with today's code; with EXPO_RECORD_HISTORIES=1 also keep
        them in ``tests/histories`` as ``<branch>.<workflow>.json``, which every later run replays."""
        for handle in handles:
            await handle.result()  # time skips to the workflow's end (the expo closing, say)
            history = await handle.fetch_history()
            await replayer().replay_workflow(history)
            if RECORD_HISTORIES:
                kind = (await handle.describe()).workflow_type
                save_history(HISTORIES / f"{branch}.{kind}.json", history)

    async def now(self) -> datetime:
        return await self.env.get_current_time()

    async def start_unit(
        self,
        *,
        sub_mission: str | None = None,
        registration_closes_in: timedelta = timedelta(days=10),
        expo_closes_in: timedelta = timedelta(days=30),
    ) -> Unit:
        now = await self.now()
        start = c.UnitStart(
            edition=EDITION,
            unit_id=new_id("U"),
            mission=MISSION,
            sub_mission=sub_mission,
            registration_closes=now + registration_closes_in,
            expo_closes=now + expo_closes_in,
        )
        handle = await self.client.start_workflow(
            UnitWorkflow.run,
            start,
            id=unit_workflow_id(EDITION, start.unit_id),
            task_queue=WORKFLOW_TASK_QUEUE,
        )
        return Unit(handle, start)

    async def register(
        self,
        unit: Unit,
        *,
        payment_deadline_in: timedelta = timedelta(days=15),
        transfer_deadline_in: timedelta | None = None,
        delivery_method: DeliveryMethod = DeliveryMethod.EXPRESS,
        previous_certificate_no: str | None = None,
        payment_deadlines: c.PaymentDeadlines | None = None,
    ) -> Registration:
        """A person of ``unit`` registers. QR code and B2B close after ``payment_deadline_in``, bank
        transfer three days earlier unless ``transfer_deadline_in`` says otherwise (as in the 6th CIIE);
        or at ``payment_deadlines``."""
        now = await self.now()
        online = now + payment_deadline_in
        transfer = now + transfer_deadline_in if transfer_deadline_in else online - timedelta(days=3)
        start = c.RegistrationStart(
            edition=EDITION,
            registration_id=new_id("R"),
            unit_id=unit.id,
            unit_workflow_id=unit.handle.id,
            mission=unit.start.mission,
            sub_mission=unit.start.sub_mission,
            fee_kind=FeeKind.REVALIDATION if previous_certificate_no else FeeKind.STANDARD,
            delivery_method=delivery_method,
            payment_deadlines=payment_deadlines
            or c.PaymentDeadlines(qr=online, b2b=online, transfer=transfer),
            expo_closes=unit.start.expo_closes,
            previous_certificate_no=previous_certificate_no,
        )
        handle = await self.client.start_workflow(
            BuyerRegistrationWorkflow.run,
            start,
            id=registration_workflow_id(EDITION, start.registration_id),
            task_queue=WORKFLOW_TASK_QUEUE,
        )
        return Registration(handle, start, self.services)

    async def start_order(
        self,
        unit: Unit,
        registrations: list[Registration],
        *,
        deadline_in: timedelta = timedelta(days=1),
        method: PaymentMethod = PaymentMethod.QR,
    ) -> Order:
        now = await self.now()
        start = c.PaymentOrderStart(
            edition=EDITION,
            order_no=new_id("P"),
            unit_id=unit.id,
            mission=unit.start.mission,
            method=method,
            amount_fen=FEE_FEN * len(registrations),
            registration_ids=[r.id for r in registrations],
            deadline=now + deadline_in,
            expo_closes=unit.start.expo_closes,
        )
        handle = await self.client.start_workflow(
            PaymentOrderWorkflow.run,
            start,
            id=payment_order_workflow_id(EDITION, start.order_no),
            task_queue=WORKFLOW_TASK_QUEUE,
        )
        return Order(handle, start)


# --------------------------------------------------------------------------------------------------
# Waiting and asserting


async def eventually(
    probe: Callable[[], Awaitable[T]], accept: Callable[[T], bool], what: str, timeout: float = 20.0
) -> T:
    """Poll ``probe`` until ``accept`` holds (time is not skipped while nobody awaits a result)."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + timeout
    while True:
        value = await probe()
        if accept(value):
            return value
        if loop.time() > give_up:
            raise AssertionError(f"timed out waiting for {what}; last seen: {value!r}")
        await asyncio.sleep(0.02)


async def wait_status(registration: Registration, status: RegistrationStatus) -> c.RegistrationProgress:
    """Until the registration is in ``status`` and the registration service has recorded it.

    The workflow takes a status as it enters the step and then records it (an activity): tests
    that look at the fakes wait for both.
    """
    services = registration.services

    def reached(progress: c.RegistrationProgress) -> bool:
        return progress.status is status and len(services.statuses_of(registration.id)) >= len(
            progress.timeline
        )

    return await eventually(registration.progress, reached, f"{registration.id} {status}, recorded")


async def wait_member(unit: Unit, registration: Registration) -> None:
    await eventually(unit.progress, lambda p: registration.id in p.members, f"{registration.id} joined")


async def until(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    async def probe() -> bool:
        return condition()

    await eventually(probe, bool, what, timeout)


async def refusal(update: Awaitable[object]) -> str:
    """The code a validator refused an update with (the ApplicationError's type)."""
    with pytest.raises(WorkflowUpdateFailedError) as failed:
        await update
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError), cause
    assert cause.type is not None
    return cause.type


def steps(progress: c.RegistrationProgress) -> list[tuple[c.Step, RegistrationStatus]]:
    return [(entry.step, entry.status) for entry in progress.timeline]


async def signals_received(handle: WorkflowHandle[Any, Any], name: str) -> int:
    history = await handle.fetch_history()
    return sum(
        1
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
        and event.workflow_execution_signaled_event_attributes.signal_name == name
    )


async def approved_unit_with_unpaid(world: World, count: int = 1) -> tuple[Unit, list[Registration]]:
    """A unit approved by its mission, and ``count`` members who joined it and are unpaid."""
    unit = await world.start_unit()
    assert (await unit.decide(Decision.APPROVE)).status == UnitStatus.APPROVED
    registrations = [await world.register(unit) for _ in range(count)]
    for registration in registrations:
        await wait_status(registration, S.UNPAID)
    return unit, registrations


async def paid_for(world: World, unit: Unit, registration: Registration) -> Order:
    """The unit pays for ``registration`` by QR code: it is then to be reviewed."""
    order = await world.start_order(unit, [registration])
    await order.confirm(new_id("T"), order.start.amount_fen, await world.now())
    await wait_status(registration, S.TO_BE_REVIEWED)
    return order


async def order_status(order: Order, status: OrderStatus) -> c.OrderProgress:
    return await eventually(order.progress, lambda p: p.status is status, f"order {order.no} {status}")


async def completed(handle: WorkflowHandle[Any, Any]) -> None:
    """Wait for a workflow to close without awaiting its result (which would let time run on)."""
    await eventually(
        handle.describe, lambda d: d.status is WorkflowExecutionStatus.COMPLETED, f"{handle.id} done"
    )


# --------------------------------------------------------------------------------------------------
# Recorded histories


def replayer() -> Replayer:
    return Replayer(workflows=list(WORKFLOWS), data_converter=pydantic_data_converter)


def save_history(path: Path, history: WorkflowHistory) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(history.to_json() + "\n", encoding="utf-8")


def recorded_histories() -> list[WorkflowHistory]:
    return [
        WorkflowHistory.from_json(path.stem, path.read_text(encoding="utf-8"))
        # Also the older histories kept in sub-folders (workflows/patches.py: the branches they replay).
        for path in sorted(HISTORIES.rglob("*.json"))
    ]
