"""The lifecycle survives what production does to it: a worker killed mid-lifecycle, and a deadline
that a thousand registrations share."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from shared import contracts as c
from shared.ids import new_id
from shared.types import Decision
from tests.workflow_env import FakeServices, running_workers
from tests.workflow_world import S, Step, World, eventually, until, wait_member, wait_status

ROOT = Path(__file__).resolve().parent.parent


@asynccontextmanager
async def workflow_worker_process(env: WorkflowEnvironment) -> AsyncIterator[None]:
    """The workflow worker in a process of its own, killed with SIGKILL (no goodbye) on exit."""
    address = env.client.service_client.config.target_host
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.workflow_worker_process", address, cwd=ROOT, stdout=subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 60)
        assert line.strip() == b"ready", line
        yield
    finally:
        process.send_signal(signal.SIGKILL)
        await process.wait()


async def test_a_worker_killed_mid_lifecycle_finishes_after_restart_doing_nothing_twice(
    env: WorkflowEnvironment,
) -> None:
    services = FakeServices()
    world = World(env, services)
    making = services.hold(c.MAKE_CERTIFICATE)

    async with running_workers(env.client, services, workflows=False), workflow_worker_process(env):
        unit = await world.start_unit()
        registration = await world.register(unit)
        await wait_member(unit, registration)
        await unit.decide(Decision.APPROVE)
        await wait_status(registration, S.UNPAID)
        order = await world.start_order(unit, [registration])
        paid_by, again = new_id("T"), new_id("T")
        await order.confirm(paid_by, order.start.amount_fen, await world.now())
        await order.confirm(again, order.start.amount_fen, await world.now())  # to be refunded
        await wait_status(registration, S.TO_BE_REVIEWED)
        await until(lambda: len(services.refunds) == 1, "the duplicate's refund")
        await registration.decide(Decision.APPROVE)
        await until(lambda: c.MAKE_CERTIFICATE.name in services.held, "certificate-making in flight")
        # The workflow worker is dead (SIGKILL) with the certificate being made; now the services'
        # workers stop too, abandoning that activity.
    assert services.statuses_of(registration.id)[-1].status is S.CERTIFICATE_IN_PRODUCTION
    making.set()

    # A new worker process and new service workers pick the lifecycle up where it stood.
    async with running_workers(env.client, services, workflows=False), workflow_worker_process(env):
        await order.confirm(paid_by, order.start.amount_fen, await world.now())  # the gateway, again
        result = await registration.handle.result()

    assert result.status is S.SHIPPED
    assert [step for step, _ in [(e.step, e.status) for e in result.timeline]] == [
        Step.REGISTERED,
        Step.UNIT_APPROVED,
        Step.PAID,
        Step.REVIEW_PASSED,
        Step.CERTIFICATE_MAKING,
        Step.CERTIFICATE_MADE,
        Step.DISPATCHED,
    ]
    # The certificate service was asked again after the crash, with the same request, and made one.
    assert len(services.certificate_requests) >= 2
    assert {r.registration_id for r in services.certificate_requests} == {registration.id}
    assert len(services.certificates) == 1
    # One payment, one refund, one record and one message per step, one dispatch.
    assert [p.transaction_id for p in services.orders_paid] == [paid_by]
    assert [r.transaction_id for r in services.refunds] == [again]
    recorded = [s.seq for s in services.statuses_of(registration.id)]
    assert recorded == sorted(set(recorded)) == list(range(1, len(result.timeline) + 1))
    keys = [n.key for n in services.notifications_of(registration.id)]
    assert len(keys) == len(set(keys))
    assert sorted(n.step for n in services.notifications_of(registration.id)) == sorted(
        [Step.REGISTERED, Step.UNIT_APPROVED, Step.PAID, Step.REVIEW_PASSED, Step.DISPATCHED]
    )
    assert len(services.dispatches) == 1
    assert len(services.decisions_on(registration.id)) == 1


async def test_a_thousand_registrations_sharing_a_deadline_all_expire_and_are_told_once(world: World) -> None:
    services = world.services
    count = 1000
    unit = await world.start_unit(expo_closes_in=timedelta(days=60))
    await unit.decide(Decision.APPROVE)
    now = await world.now()
    shared = c.PaymentDeadlines(
        qr=now + timedelta(days=15), b2b=now + timedelta(days=15), transfer=now + timedelta(days=12)
    )
    registrations = []
    for _ in range(count // 100):
        registrations += await asyncio.gather(
            *(world.register(unit, payment_deadlines=shared) for _ in range(100))
        )

    def told(step: c.Step) -> Counter[str]:
        return Counter(n.registration_id for n in services.notifications if n.step is step)

    await until(lambda: len(told(Step.UNIT_APPROVED)) == count, "every payment notice", 300)

    await world.env.sleep(shared.last - await world.now() + timedelta(minutes=1))

    async def expired_told() -> Counter[str]:
        return told(Step.PAYMENT_EXPIRED)

    expired = await eventually(expired_told, lambda seen: len(seen) == count, "every expiry notice", 300)
    assert set(expired) == {r.id for r in registrations}
    assert set(expired.values()) == {1}  # each buyer told exactly once
    expiries = Counter(s.registration_id for s in services.statuses if s.step is Step.PAYMENT_EXPIRED)
    assert len(expiries) == count and set(expiries.values()) == {1}
    assert all(s.at >= shared.last for s in services.statuses if s.step is Step.PAYMENT_EXPIRED)

    async def closed() -> int:
        statuses = await asyncio.gather(*(r.handle.describe() for r in registrations))
        return sum(d.status is WorkflowExecutionStatus.COMPLETED for d in statuses)

    await eventually(closed, lambda done: done == count, "every registration closed", 60)
