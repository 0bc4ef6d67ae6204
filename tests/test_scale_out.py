"""Scaling out: a second workflow worker and second registration and notification activity workers share
the stack's task queues; one of each is stopped in the middle of a batch of registrations, and the
others finish the whole batch with nothing done twice.

Checked where people would look: every registration delivered; each step on each timeline once; one
message per step and channel in the message log, the mail inbox and the SMS outbox; one certificate per
person, numbers unique; one payment per unit's order and no refund; one decision per review. Temporal
shows that the stopped workers had their share: each queue listed both workers' pollers, and the
workflows' histories name the stopped workers among those that completed tasks before the stop, and
the survivors as those that finished the workflows the stopped one had held.

How soon the survivors take over (a real cluster's behaviour, which the dev server has, unlike the
time-skipping test server): the workflows cached by a crashed workflow worker have their next task on
its sticky queue, which goes to the shared queue once the SDK's default
``sticky_queue_schedule_to_start_timeout`` (10 s; production and this test run the same worker) has
passed, or as soon as the server notices that nobody polls that sticky queue; a workflow task it had
started waits for the workflow task timeout (10 s). An activity a crashed activity worker had started
is retried when its start-to-close timeout (30 s, workflows/calls.py) has passed: nothing tells
Temporal sooner, and that wait is most of the crash case's run time. A worker stopped with SIGTERM
stops polling, lets its running activities finish and gives its sticky queue back at once.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta

import httpx
import pytest
from temporalio.api.enums.v1 import EventType, TaskQueueType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from deploy.local.demo import Demo, demo_credit_code, demo_id_number, expo_day
from deploy.local.stack import Stack
from shared.temporal import (
    NOTIFICATION_QUEUE,
    REGISTRATION_QUEUE,
    WORKFLOW_TASK_QUEUE,
    connect,
    registration_workflow_id,
)
from shared.types import RegistrationStatus as S
from tests.test_stack import BUYER_STEPS, NOTIFIED_STEPS, rows

pytestmark = pytest.mark.stack

UNITS, PEOPLE_PER_UNIT = 4, 5
# The busiest queues: every step of every registration is a workflow task, a status record and a message.
SHARED_QUEUES = (WORKFLOW_TASK_QUEUE, REGISTRATION_QUEUE, NOTIFICATION_QUEUE)


@dataclass
class SecondWorker:
    """A worker process started beside the stack's own, serving the same task queue."""

    queue: str
    popen: subprocess.Popen[bytes]

    @property
    def identity(self) -> str:
        """The Temporal SDK's default worker identity, as the server records it on each task."""
        return f"{self.popen.pid}@{socket.gethostname()}"


@contextmanager
def second_workers(stack: Stack, tag: str) -> Iterator[dict[str, SecondWorker]]:
    """One more worker for each of ``SHARED_QUEUES``, started by the production entry points with the
    stack's environment (logs beside the stack's); those still running are stopped at the end."""
    workers: dict[str, SecondWorker] = {}
    try:
        for queue in SHARED_QUEUES:
            module = ["workflows.worker"] if queue == WORKFLOW_TASK_QUEUE else ["services.worker", queue]
            with (stack.logs / f"{queue}-worker-{tag}.log").open("ab") as log:
                popen = subprocess.Popen(
                    [sys.executable, "-m", *module],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env={**os.environ, **stack.env, "PYTHONUNBUFFERED": "1"},
                    cwd=stack.data_dir,
                )
            workers[queue] = SecondWorker(queue, popen)
        yield workers
    finally:
        for worker in workers.values():
            if worker.popen.poll() is None:
                worker.popen.terminate()
                try:
                    worker.popen.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    worker.popen.kill()
                    worker.popen.wait()


async def until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.3)


async def pollers(client: Client, queue: str) -> set[str]:
    """The identities polling ``queue`` lately, as the Temporal UI's task queue page lists them."""
    kind = (
        TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW
        if queue == WORKFLOW_TASK_QUEUE
        else TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY
    )
    response = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace, task_queue=TaskQueue(name=queue), task_queue_type=kind
        )
    )
    return {poller.identity for poller in response.pollers}


def done_by(event: HistoryEvent) -> str | None:
    """Who completed a workflow task, or ran an activity to its end (the started event of an activity
    is written when its last attempt ends, naming that attempt's worker)."""
    if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
        return event.workflow_task_completed_event_attributes.identity
    if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
        return event.activity_task_started_event_attributes.identity
    return None


@dataclass
class Batch:
    """Registrations driven through the real APIs, as the units' buyers and the organiser's staff."""

    demo: Demo
    tag: str
    buyers: dict[str, dict[str, str]] = field(default_factory=dict)  # unit id -> its account's login
    people: dict[str, str] = field(default_factory=dict)  # registration id -> unit id
    emails: dict[str, str] = field(default_factory=dict)  # registration id -> the buyer's email
    orders: dict[str, str] = field(default_factory=dict)  # unit id -> order no

    def as_buyer_of(self, unit_id: str) -> None:
        self.demo.buyer = self.buyers[unit_id]

    def wait_for(self, registration_id: str, status: S) -> None:
        """Until the registration shows ``status`` to its unit's buyer."""
        self.as_buyer_of(self.people[registration_id])
        self.demo.wait_for(registration_id, {status})

    def register(self, first_birth: date) -> None:
        reg, n = self.demo.s.registration_url, 0
        for u in range(UNITS):
            self.demo.sign_up()
            unit = self.demo.call("POST", f"{reg}/v1/units", json={
                "kind": "enterprise", "name": f"上海扩容贸易{self.tag}{u}有限公司",
                "credit_code": demo_credit_code(), "address": "上海市浦东新区世纪大道100号",
                "industry": "批发和零售业 Wholesale and retail",
                "contact": {"name": "王芳", "mobile": "13812345678", "email": f"unit{u}@scale-out.example"},
                "mission": {"affiliation": "residence"},
            })  # fmt: skip
            self.buyers[unit["id"]] = self.demo.buyer
            for _ in range(PEOPLE_PER_UNIT):
                n += 1
                mobile, email = f"139{n:08d}", f"buyer{n}-{self.tag}@scale-out.example"
                birth = (first_birth + timedelta(days=n)).strftime("%Y%m%d")  # ID numbers never collide
                person = self.demo.call("POST", f"{reg}/v1/units/{unit['id']}/people", json={
                    "name": f"采购{n}", "id_type": "resident_id", "id_number": demo_id_number(birth),
                    "mobile": mobile, "email": email, "job_title": "Buyer", "personnel_label": "purchaser",
                    "delivery_method": "express", "entrance_date": expo_day(self.demo.s),
                    "delivery_address": {
                        "recipient": f"采购{n}", "mobile": mobile, "province": "上海市", "city": "上海市",
                        "district": "浦东新区", "detail": "世纪大道100号15楼", "postal_code": "200120",
                        "valid_for_six_months": True,
                    },
                })  # fmt: skip
                self.people[person["registration_id"]] = unit["id"]
                self.emails[person["registration_id"]] = email

    def approve_units_and_pay(self) -> None:
        review, pay = self.demo.s.review_url, self.demo.s.payment_url
        for unit_id in self.buyers:
            self.demo.wait_in_queue("unit", unit_id)
            self.demo.call("POST", f"{review}/v1/units/{unit_id}/decision", json={"decision": "approve"})
        for rid in self.people:
            self.wait_for(rid, S.UNPAID)
        for unit_id in self.buyers:
            self.as_buyer_of(unit_id)
            members = [rid for rid, unit in self.people.items() if unit == unit_id]
            order = self.demo.call(
                "POST", f"{pay}/v1/orders",
                json={"unit_id": unit_id, "registration_ids": members, "qr_channel": "wechat"},
                headers={"Idempotency-Key": f"scale-out-{unit_id}"},
            )  # fmt: skip
            self.orders[unit_id] = order["order_no"]
            self.demo.call("POST", order["qr_payload"])  # the buyer's phone scans and pays
        for rid in self.people:
            self.wait_for(rid, S.TO_BE_REVIEWED)

    def pass_review(self, registration_ids: list[str]) -> None:
        for rid in registration_ids:
            self.demo.call(
                "POST",
                f"{self.demo.s.review_url}/v1/registrations/{rid}/decision",
                json={"decision": "approve"},
            )


async def histories(client: Client, batch: Batch) -> dict[str, list[HistoryEvent]]:
    """Each registration workflow's history events."""
    edition = batch.demo.s.edition

    async def events(rid: str) -> list[HistoryEvent]:
        history = await client.get_workflow_handle(registration_workflow_id(edition, rid)).fetch_history()
        return list(history.events)

    found = await asyncio.gather(*(events(rid) for rid in batch.people))
    return dict(zip(batch.people, found, strict=True))


@pytest.fixture(scope="module")
def scaled_stack(own_stack: Stack) -> Stack:
    """The module's own stack, its courier sandbox quick: parcels are delivered within seconds."""
    httpx.post(
        f"{own_stack.url('courier')}/v1/sandbox/behaviour", json={"pace": 0.3}, timeout=10
    ).raise_for_status()
    return own_stack


@pytest.mark.parametrize(
    ("stop", "first_birth"),
    [(signal.SIGKILL, date(1970, 1, 1)), (signal.SIGTERM, date(1980, 1, 1))],
    ids=["crash", "graceful"],
)
async def test_a_second_worker_stopped_mid_batch_leaves_the_batch_finished_once(
    scaled_stack: Stack, stop: signal.Signals, first_birth: date
) -> None:
    stack, settings = scaled_stack, scaled_stack.settings
    client = await connect(settings)
    demo = Demo(settings, timeout=120)
    demo.staff_login()
    demo.finance_login()
    batch = Batch(demo, tag=stop.name)
    assert not stack.dead()  # the stack's own workers run: they are the ones to survive

    with second_workers(stack, stop.name.lower()) as second:
        # Two processes on each queue before any work: the stack's own and the second.
        for queue, worker in second.items():

            async def both_poll(queue: str = queue, worker: SecondWorker = worker) -> bool:
                seen = await pollers(client, queue)
                return worker.identity in seen and len(seen) >= 2

            await until(both_poll, f"two pollers on {queue}")

        batch.register(first_birth)
        batch.approve_units_and_pay()
        ids = list(batch.people)
        before, after = ids[: len(ids) // 2], ids[len(ids) // 2 :]
        batch.pass_review(before)  # certificates being made for half the batch

        # The second workers have completed tasks of this batch: a share of the work is theirs.
        identities = {worker.identity for worker in second.values()}

        async def second_did_work() -> bool:
            done = {done_by(e) for events in (await histories(client, batch)).values() for e in events}
            return identities <= done

        await until(second_did_work, "the second workers to complete tasks of the batch")
        for worker in second.values():
            worker.popen.send_signal(stop)
        for worker in second.values():
            worker.popen.wait(timeout=60)  # a graceful stop lets running activities finish

        batch.pass_review(after)
        for rid in ids:
            batch.wait_for(rid, S.DELIVERED)

    # The survivors finished the workflows the stopped workflow worker had been running.
    stopped = second[WORKFLOW_TASK_QUEUE].identity
    workflow_tasks = {
        rid: [done_by(e) for e in events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED]
        for rid, events in (await histories(client, batch)).items()
    }
    handed_over = [rid for rid, by in workflow_tasks.items() if stopped in by and by[-1] != stopped]
    assert handed_over, workflow_tasks

    check_done_once(stack, batch)


def check_done_once(stack: Stack, batch: Batch) -> None:
    """Every registration delivered, and nothing of it done twice, as buyers, staff and finance see it."""
    demo, ids = batch.demo, list(batch.people)
    for rid in ids:
        batch.as_buyer_of(batch.people[rid])
        timeline = demo.call("GET", f"{demo.s.registration_url}/v1/registrations/{rid}/timeline")
        assert [step["step"] for step in timeline["steps"]] == BUYER_STEPS, rid

    # Messages go out beside the lifecycle: wait for the log to show them sent, then count.
    expected = Counter(
        {(rid, step, channel): 1 for rid in ids for step in NOTIFIED_STEPS for channel in ("sms", "email")}
    )

    def logged() -> Counter[tuple[str, str, str]]:
        messages = rows(
            stack, "notification", "SELECT registration_id, step, channel, status FROM notification_messages"
        )
        return Counter(
            (m["registration_id"], m["step"], m["channel"])
            for m in messages
            if m["registration_id"] in batch.people and m["status"] == "sent"
        )

    demo.wait_until(lambda: sum(logged().values()) >= sum(expected.values()), "every message sent")
    assert logged() == expected
    outbox = httpx.get(
        f"{stack.url('notification')}/v1/sms-outbox", params={"limit": 1000}, timeout=10
    ).json()
    keys = [m["key"].split(":") for m in outbox]  # a step's message: registration:seq:step
    texts = Counter((key[0], key[-1]) for key in keys if key[0] in batch.people)
    assert texts == Counter({(rid, step): 1 for rid in ids for step in NOTIFIED_STEPS})
    for rid, email in batch.emails.items():
        inbox = httpx.get(f"{stack.url('mail_web')}/api/messages", params={"to": email}, timeout=10).json()
        subjects = [m["subject"] for m in inbox]
        assert len(subjects) == len(set(subjects)) == len(NOTIFIED_STEPS), (rid, subjects)
        assert all(rid in subject for subject in subjects)

    certificates = [
        c
        for c in rows(stack, "certificate", "SELECT certificate_no, registration_id FROM certificates")
        if c["registration_id"] in batch.people
    ]
    assert sorted(c["registration_id"] for c in certificates) == sorted(ids)
    assert len({c["certificate_no"] for c in certificates}) == len(ids)

    decisions = Counter(
        d["subject_id"] for d in rows(stack, "review", "SELECT subject_id FROM review_decisions")
    )
    assert all(decisions[subject] == 1 for subject in [*batch.buyers, *ids])

    orders = [
        o
        for o in rows(stack, "payment", "SELECT order_no, unit_id FROM payment_orders")
        if o["unit_id"] in batch.buyers
    ]
    assert sorted((o["unit_id"], o["order_no"]) for o in orders) == sorted(batch.orders.items())
    for order_no in batch.orders.values():
        ledger = demo.call("GET", f"{demo.s.payment_url}/v1/orders/{order_no}/ledger", headers=demo.finance)
        assert ledger["status"] == "paid"
        assert [e["kind"] for e in ledger["entries"] if e["kind"] != "invoice"] == [
            "order_created",
            "payment",
        ]
        assert ledger["received_fen"] == ledger["order_amount_fen"] and ledger["refunded_fen"] == 0
