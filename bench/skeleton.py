"""The raw limit's skeleton: a registration lifecycle's messages and activities with no service work.

Three workflows mirror the real ones (workflows/registration.py, unit.py, payment_order.py) message for
message: the same starts, the same activities (by the same names, answered by a no-op), the same
signals between workflows and from the client, the same updates, search-attribute upserts and waits
with a timeout (a timer each), in the same order. What they leave out is what the services do: no
database, no object store, no e-mail, no HTTP, no queue polling. A unit of K people is one unit
workflow, K registrations and one payment order, as in the real run.

The client drives a unit as the services would (``drive_unit``): start the unit's workflow, then each
person's, the unit decision (an update), the order's start and its gateway confirmation (a signal),
each person's decision (an update); it needs no polling, since an update waits in its workflow until
the state it decides on is reached (the staff, in the real run, decide once the queue shows it).

    python -m bench.skeleton --role workflows|activities   # a worker process (bench/lifecycle.py starts them)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
from collections.abc import Sequence
from datetime import timedelta

from pydantic import BaseModel
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.common import RawValue
from temporalio.worker import Worker

with workflow.unsafe.imports_passed_through():
    from shared import contracts as c
    from shared.temporal import SA_EDITION, SA_PAYMENT_METHOD, SA_STATUS, SA_UNIT

SKELETON_QUEUE = "bench-skeleton"  # workflows
SKELETON_ACTIVITY_QUEUE = "bench-skeleton-activities"  # every no-op activity, whatever its name
EDITION = "bench-skeleton"  # its search attribute: the skeleton's workflows never mix with the real ones
LONG = timedelta(days=30)  # the real waits run to a deadline or the expo's end: they never fire here


class SkeletonStart(BaseModel):
    unit_id: str
    unit_workflow_id: str = ""
    registration_workflow_ids: list[str] = []


class Nothing(BaseModel):
    """A message's body: the skeleton carries no data."""

    status: str = ""


@activity.defn(dynamic=True)
async def no_op(args: Sequence[RawValue]) -> None:
    """Any activity the skeleton schedules (under the real activity's name): it returns at once."""


async def _noop(name: str) -> None:
    await workflow.execute_activity(
        name,
        Nothing(),
        task_queue=SKELETON_ACTIVITY_QUEUE,
        start_to_close_timeout=timedelta(seconds=30),
    )


async def _last_wait() -> None:
    """A real workflow ends the lifecycle waiting (for the delivery, the expo's end) on a timer that
    does not fire during a run; the skeleton completes instead, after a short timer that stands for it."""
    await workflow.sleep(0.01)


def _identify(unit_id: str) -> None:
    workflow.upsert_search_attributes([SA_EDITION.value_set(EDITION), SA_UNIT.value_set(unit_id)])


def _show_status(status: str) -> None:
    workflow.upsert_search_attributes([SA_STATUS.value_set(status)])
    workflow.set_current_details(status)


@workflow.defn(name="SkeletonRegistration")
class SkeletonRegistration:
    """BuyerRegistration's messages: a step is an upsert, ``record_status`` and (mostly) a background
    ``notify``; the unit's status and the payment arrive as signals, the decision as an update."""

    def __init__(self) -> None:
        self.unit_id = ""
        self.status = "submitted"
        self.steps = 0
        self._lock = asyncio.Lock()
        self._inbox: list[str] = []
        self._background: list[asyncio.Task[None]] = []

    @workflow.run
    async def run(self, start: SkeletonStart) -> str:
        self.unit_id = start.unit_id
        async with self._lock:
            await self._enter("submitted")
        await workflow.get_external_workflow_handle(start.unit_workflow_id).signal(
            c.SIGNAL_MEMBER_JOINED, Nothing(status=workflow.info().workflow_id)
        )
        while self.status in ("submitted", "unpaid"):
            try:
                await workflow.wait_condition(
                    lambda: bool(self._inbox) or self.status not in ("submitted", "unpaid"), timeout=LONG
                )
            except TimeoutError:
                continue
            async with self._lock:
                while self._inbox and self.status in ("submitted", "unpaid"):
                    self._inbox.pop(0)  # the unit's approval, or the same again (the real one ignores it)
                    if self.status == "submitted":
                        await self._enter("unpaid")
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(lambda: self.status != "to_be_reviewed", timeout=LONG)
        async with self._lock:
            await self._enter("certificate_in_production", notify=False)
            await _noop(c.MAKE_CERTIFICATE.name)
            await self._enter("certificate_issued", notify=False)
            await _noop(c.DISPATCH_CERTIFICATE.name)
            await self._enter("awaiting_collection")
        await workflow.wait_condition(workflow.all_handlers_finished)
        await asyncio.gather(*self._background)
        await _last_wait()  # the real one waits for the delivery
        return self.status

    async def _enter(self, status: str, *, notify: bool = True) -> None:
        self.status = status
        self.steps += 1
        if self.steps == 1:
            _identify(self.unit_id)
        _show_status(status)
        await _noop(c.RECORD_STATUS.name)
        if notify:
            self._background.append(asyncio.ensure_future(_noop(c.NOTIFY.name)))

    @workflow.signal(name=c.SIGNAL_UNIT_STATUS)
    def on_unit_status(self, event: Nothing) -> None:
        self._inbox.append(event.status)

    @workflow.signal(name=c.SIGNAL_PAYMENT_CONFIRMED)
    async def on_payment_confirmed(self, payment: Nothing) -> None:
        await workflow.wait_condition(lambda: self.status == "unpaid")  # the real order comes only then
        async with self._lock:
            workflow.upsert_search_attributes([SA_PAYMENT_METHOD.value_set("qr")])
            await _noop(c.OPEN_REVIEW_TASK.name)
            await self._enter("to_be_reviewed")

    @workflow.update(name=c.UPDATE_DECIDE)
    async def decide(self, decision: Nothing) -> str:
        await workflow.wait_condition(lambda: self.status == "to_be_reviewed")  # staff: once queued
        async with self._lock:
            await _noop(c.RECORD_DECISION.name)
            await self._enter("approved")
        return self.status


@workflow.defn(name="SkeletonUnit")
class SkeletonUnit:
    """UnitReview's messages: members join by signal, the decision is an update, and each member is
    told of it by a signal."""

    def __init__(self) -> None:
        self.status = "under_review"
        self.opened = False
        self.members: list[str] = []
        self._pending: list[str] = []
        self._told: set[str] = set()

    @workflow.run
    async def run(self, start: SkeletonStart) -> str:
        _identify(start.unit_id)
        _show_status(self.status)
        await _noop(c.RECORD_UNIT_STATUS.name)
        await _noop(c.OPEN_REVIEW_TASK.name)
        self.opened = True
        wanted = set(start.registration_workflow_ids)
        while self._told != wanted:  # the real one goes on until the expo closes
            try:
                await workflow.wait_condition(lambda: bool(self._pending), timeout=LONG)
            except TimeoutError:
                continue
            while self._pending:
                member = self._pending.pop(0)
                await workflow.get_external_workflow_handle(member).signal(
                    c.SIGNAL_UNIT_STATUS, Nothing(status=self.status)
                )
                self._told.add(member)
        await _last_wait()  # the real one waits for the expo's end
        return self.status

    @workflow.signal(name=c.SIGNAL_MEMBER_JOINED)
    def on_member_joined(self, member: Nothing) -> None:
        self.members.append(member.status)
        if self.status == "approved":
            self._pending.append(member.status)

    @workflow.update(name=c.UPDATE_DECIDE)
    async def decide(self, decision: Nothing) -> str:
        await workflow.wait_condition(lambda: self.opened)  # staff: once queued
        await _noop(c.RECORD_DECISION.name)
        self.status = "approved"
        _show_status(self.status)
        await _noop(c.RECORD_UNIT_STATUS.name)
        self._pending.extend(self.members)
        return self.status


@workflow.defn(name="SkeletonOrder")
class SkeletonOrder:
    """PaymentOrder's messages for a QR payment: the gateway's confirmation (a client signal), then a
    signal to each person paid for."""

    def __init__(self) -> None:
        self.confirmed = False

    @workflow.run
    async def run(self, start: SkeletonStart) -> str:
        workflow.upsert_search_attributes(  # the real order's identity and status: one upsert
            [SA_EDITION.value_set(EDITION), SA_UNIT.value_set(start.unit_id), SA_STATUS.value_set("awaiting")]
        )
        try:
            await workflow.wait_condition(lambda: self.confirmed, timeout=LONG)
        except TimeoutError:
            return "closed"
        await _noop(c.MARK_ORDER_PAID.name)
        _show_status("paid")
        for registration in start.registration_workflow_ids:
            await workflow.get_external_workflow_handle(registration).signal(
                c.SIGNAL_PAYMENT_CONFIRMED, Nothing()
            )
        await _last_wait()  # the real one waits for the expo's end
        return "paid"

    @workflow.signal(name=c.SIGNAL_GATEWAY_CONFIRMATION)
    def on_gateway_confirmation(self, confirmation: Nothing) -> None:
        self.confirmed = True


SKELETON_WORKFLOWS = [SkeletonRegistration, SkeletonUnit, SkeletonOrder]


async def drive_unit(client: Client, unit_id: str, people: int) -> None:
    """One unit's lifecycle as the services drive the real one, in the same order of messages; returns
    when every person has reached "dispatched" (their workflows have completed)."""
    unit_wf = f"skeleton-unit-{unit_id}"
    people_wf = [f"skeleton-registration-{unit_id}-{n}" for n in range(people)]

    async def start(workflow_name: str, workflow_id: str, arg: SkeletonStart) -> None:
        await client.start_workflow(workflow_name, arg, id=workflow_id, task_queue=SKELETON_QUEUE)

    await start("SkeletonUnit", unit_wf, SkeletonStart(unit_id=unit_id, registration_workflow_ids=people_wf))
    for person in people_wf:
        await start("SkeletonRegistration", person, SkeletonStart(unit_id=unit_id, unit_workflow_id=unit_wf))
    await client.get_workflow_handle(unit_wf).execute_update(c.UPDATE_DECIDE, Nothing(), result_type=str)
    order_wf = f"skeleton-order-{unit_id}"
    await start(
        "SkeletonOrder", order_wf, SkeletonStart(unit_id=unit_id, registration_workflow_ids=people_wf)
    )
    await client.get_workflow_handle(order_wf).signal(c.SIGNAL_GATEWAY_CONFIRMATION, Nothing())
    await asyncio.gather(
        *(
            client.get_workflow_handle(person).execute_update(c.UPDATE_DECIDE, Nothing(), result_type=str)
            for person in people_wf
        )
    )
    await asyncio.gather(*(client.get_workflow_handle(person).result() for person in people_wf))


async def serve(role: str) -> None:
    """A skeleton worker process: its workflows, or the no-op activity (as many at once as it is asked)."""
    from shared.process import run_until_stopped
    from shared.settings import get_settings
    from shared.temporal import connect

    client = await connect(get_settings(), worker=True)
    if role == "workflows":
        worker = Worker(client, task_queue=SKELETON_QUEUE, workflows=SKELETON_WORKFLOWS)
    else:
        worker = Worker(client, task_queue=SKELETON_ACTIVITY_QUEUE, activities=[no_op])
    await run_until_stopped(worker)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--role", choices=["workflows", "activities"], required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(serve(args.role))


if __name__ == "__main__":
    main()
