"""Property: no sequence of gateway callbacks, transfer decisions and registration changes charges or
refunds anyone twice.

Each example is a new unit, one or two unpaid people and a payment order (QR code or bank transfer)
on the real workflows, served by the fake services of tests/workflow_env.py on one time-skipping
server shared by every example (hypothesis and function-scoped fixtures do not mix). Events:
gateway confirmations (the full amount, short, too much; transaction ids repeated), a voucher upload
and finance's approval or rejection, a person withdrawing, time passing beyond the order's deadline
or the people's. After each example, what the workflows asked of the payment service is checked:

- the order is marked paid at most once;
- no refund key is asked for twice;
- for every transaction: money kept + money refunded == money received (kept only for the one
  transaction that paid the order, and then the order's amount);
- a person's share is refunded at most once, never unless the order was paid, and a person who took
  the payment is refunded only if they closed afterwards (withdrew), never as "unaccepted".
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack, suppress
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.service import RPCError

from shared.types import Decision, OrderStatus, PaymentMethod, RegistrationStatus
from tests.workflow_env import FakeServices, running_workers, time_skipping_environment
from tests.workflow_world import FEE_FEN, World, approved_unit_with_unpaid
from workflows.registration import unaccepted_refund_key

S = RegistrationStatus


@dataclass(frozen=True)
class Confirm:
    transaction: int  # index into the example's transactions: repeats are the gateway calling again


@dataclass(frozen=True)
class UploadVoucher:
    pass


@dataclass(frozen=True)
class Finance:
    approve: bool
    reference: int = 0


@dataclass(frozen=True)
class Withdraw:
    person: int


@dataclass(frozen=True)
class Wait:
    days: int  # 2: past the order's deadline; 16: past the people's


Event = Confirm | UploadVoucher | Finance | Withdraw | Wait


@dataclass(frozen=True)
class Scenario:
    method: PaymentMethod
    people: int
    amounts: tuple[str, ...]  # per transaction: "full", "short" or "excess"
    events: tuple[Event, ...]


gateway_events = st.one_of(
    st.builds(Confirm, st.integers(0, 2)),
    st.builds(Withdraw, st.integers(0, 1)),
    st.builds(Wait, st.sampled_from([2, 16])),
)
transfer_events = st.one_of(
    gateway_events,
    st.just(UploadVoucher()),
    st.builds(Finance, st.booleans(), st.integers(0, 1)),
    st.builds(Finance, st.just(True), st.integers(0, 1)),
)


@st.composite
def scenarios(draw: st.DrawFn, methods: tuple[PaymentMethod, ...]) -> Scenario:
    method = draw(st.sampled_from(methods))
    gateway = method is not PaymentMethod.TRANSFER
    # Online orders see mostly the gateway's confirmations; transfer orders mostly finance.
    kinds = st.one_of(st.builds(Confirm, st.integers(0, 2)), gateway_events) if gateway else transfer_events
    events = draw(st.lists(kinds, min_size=1, max_size=8))
    if not gateway and draw(st.integers(0, 3)) > 0:
        events.insert(0, UploadVoucher())  # most transfers have a voucher for finance to decide on
    return Scenario(
        method=method,
        people=draw(st.integers(1, 2)),
        amounts=draw(st.tuples(*[st.sampled_from(["full", "short", "excess"])] * 3)),
        events=tuple(events),
    )


Handle = WorkflowHandle[Any, Any]


async def settle(handles: list[Handle], timeout: float = 30.0) -> None:
    """Until none of the workflows has work under way and their histories stopped growing."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + timeout
    last: list[tuple[int, bool]] | None = None
    quiet = 0
    while quiet < 2:
        snapshot = []
        for handle in handles:
            raw = (await handle.describe()).raw_description
            busy = bool(raw.pending_activities) or raw.HasField("pending_workflow_task")
            snapshot.append((raw.workflow_execution_info.history_length, busy))
        idle = not any(busy for _, busy in snapshot)
        quiet = quiet + 1 if idle and snapshot == last else 0
        last = snapshot
        if loop.time() > give_up:
            raise AssertionError(f"the workflows did not settle: {snapshot}")
        await asyncio.sleep(0.02)


async def run_scenario(world: World, scenario: Scenario) -> None:
    services = world.services
    unit, people = await approved_unit_with_unpaid(world, scenario.people)
    order = await world.start_order(unit, people, method=scenario.method)
    amount = order.start.amount_fen
    value = {"full": amount, "short": amount - FEE_FEN // 2, "excess": amount + FEE_FEN // 2}
    handles: list[Handle] = [unit.handle, order.handle, *(p.handle for p in people)]
    received: dict[str, int] = {}  # transaction id -> money that arrived (gateway or bank)
    waited = 0
    for event in scenario.events:
        match event:
            case Confirm(transaction=index):
                transaction_id = f"{order.no}-T{index}"
                received[transaction_id] = value[scenario.amounts[index]]
                await order.confirm(transaction_id, received[transaction_id], await world.now())
            case UploadVoucher():
                # Refused unless a transfer order awaiting payment before its deadline.
                with suppress(WorkflowUpdateFailedError):
                    await order.upload_voucher()
            case Finance(approve=True, reference=index):
                reference = f"{order.no}-BANK{index}"
                try:
                    await order.finance(Decision.APPROVE, bank_reference=reference)
                except WorkflowUpdateFailedError:
                    pass
                else:
                    received[reference] = amount  # the money was on the account
            case Finance(approve=False):
                with suppress(WorkflowUpdateFailedError):
                    await order.finance(Decision.REJECT, reason="no such remittance")
            case Withdraw(person=index):
                # Refused (or the registration's workflow has ended) unless it may withdraw.
                with suppress(WorkflowUpdateFailedError, RPCError):
                    await people[index % len(people)].withdraw()
            case Wait(days=days):
                if waited + days >= 25:  # the expo closes at 30 days: the workflows would end
                    continue
                waited += days
                await world.env.sleep(timedelta(days=days))
        await settle(handles)

    # ---------------------------------------------------------------- what the workflows asked for
    paid = [p for p in services.orders_paid if p.order_no == order.no]
    assert len(paid) <= 1, f"order marked paid {len(paid)} times: {paid}"
    refunds = services.refunds_of_order(order.no)
    keys = [r.refund_key for r in refunds]
    assert len(keys) == len(set(keys)), f"a refund key asked for twice: {keys}"
    paying = paid[0].transaction_id if paid else None
    assert paying is None or paying in received, f"paid by {paying}, which never arrived"
    if paid:
        assert paid[0].amount_fen == received[paying or ""]
    for transaction_id, arrived in received.items():
        kept = amount if transaction_id == paying else 0
        back = sum(r.amount_fen or 0 for r in refunds if r.transaction_id == transaction_id)
        assert kept + back == arrived, (
            f"{transaction_id}: {arrived} arrived, {kept} kept, {back} refunded ({refunds})"
        )
    shares = [r for r in refunds if r.registration_id is not None]
    assert not shares or paid, f"shares refunded from an unpaid order: {shares}"
    for person in people:
        mine = [r for r in shares if r.registration_id == person.id]
        assert len(mine) <= 1, f"{person.id} refunded {len(mine)} times: {mine}"
        took_it = any(s.status is S.TO_BE_REVIEWED for s in services.statuses_of(person.id))
        if took_it and mine:
            assert mine[0].refund_key != unaccepted_refund_key(order.no, person.id), (
                f"{person.id} was paid and refunded as unaccepted"
            )
            status = (await person.progress()).status
            assert status in {S.WITHDRAWN, S.REFUNDED}, f"{person.id} paid and refunded while {status}"
    if paid:
        progress = await order.progress()
        assert progress.status is OrderStatus.PAID

    for handle in handles:
        with suppress(RPCError):  # unless it had ended
            await handle.terminate("example done")


def check(strategy: st.SearchStrategy[Scenario]) -> None:
    """Run every example the strategy draws as a new order on one server (its own event loop: the
    examples are run synchronously by hypothesis)."""
    loop = asyncio.new_event_loop()
    stack = AsyncExitStack()
    try:
        env = loop.run_until_complete(stack.enter_async_context(time_skipping_environment()))
        world = World(env, FakeServices())
        loop.run_until_complete(stack.enter_async_context(running_workers(env.client, world.services)))

        @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(scenario=strategy)
        def example(scenario: Scenario) -> None:
            loop.run_until_complete(run_scenario(world, scenario))

        example()
    finally:
        loop.run_until_complete(stack.aclose())
        loop.close()


def test_no_sequence_of_gateway_callbacks_and_withdrawals_charges_or_refunds_anyone_twice() -> None:
    check(scenarios((PaymentMethod.QR, PaymentMethod.B2B)))


def test_no_sequence_of_transfer_decisions_and_callbacks_charges_or_refunds_anyone_twice() -> None:
    check(scenarios((PaymentMethod.TRANSFER,)))
