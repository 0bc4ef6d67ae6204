"""The three lifecycle workflows as a buyer, a reviewer and the payment gateway see them.

Every test runs the real workflow code on a time-skipping Temporal server, with fake services
(``tests/workflow_env.py``) standing in for the five services: deadlines of weeks pass in
milliseconds, and the fakes show what the workflows asked of the services. Each test has its own
server, workers, fakes and random ids (``tests/workflow_world.py``). More branches are in
``test_lifecycle_branches.py``; crashes and deadline storms in ``test_lifecycle_resilience.py``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowExecutionStatus

from shared import contracts as c
from shared.ids import new_id
from shared.temporal import SA_EDITION, SA_MISSION, SA_PAYMENT_METHOD, SA_STATUS, SA_SUB_MISSION, SA_UNIT
from shared.types import Decision, DeliveryMethod, FeeKind, OrderStatus, UnitStatus
from tests.workflow_env import FakeServices
from tests.workflow_world import (
    EDITION,
    FEE_FEN,
    HISTORIES,
    MISSION,
    Order,
    Registration,
    S,
    Step,
    Unit,
    World,
    approved_unit_with_unpaid,
    completed,
    order_status,
    paid_for,
    recorded_histories,
    refusal,
    replayer,
    signals_received,
    steps,
    until,
    wait_member,
    wait_status,
)

# --------------------------------------------------------------------------------------------------
# The happy path


@dataclass
class HappyPath:
    unit: Unit
    registration: Registration
    order: Order
    transaction_id: str
    shipped: c.RegistrationProgress  # the progress query once shipped
    result: c.RegistrationProgress


async def run_happy_path(world: World) -> HappyPath:
    """Submitted → unit approved → paid → personnel review passed → certificate made and shipped."""
    unit = await world.start_unit(sub_mission="shanghai-pudong")
    registration = await world.register(unit)
    await wait_member(unit, registration)  # the registration told its unit itself
    assert (await registration.progress()).status is S.SUBMITTED

    assert (await unit.decide(Decision.APPROVE)).status == UnitStatus.APPROVED
    unpaid = await wait_status(registration, S.UNPAID)
    assert unpaid.payment_deadlines == registration.start.payment_deadlines
    assert unpaid.timeline[-1].deadline == registration.start.payment_deadlines.online

    order = await world.start_order(unit, [registration])
    transaction_id = new_id("T")
    await order.confirm(transaction_id, FEE_FEN, await world.now())
    reviewing = await wait_status(registration, S.TO_BE_REVIEWED)
    assert reviewing.order_no == order.no

    assert (await registration.decide(Decision.APPROVE)).status == S.APPROVED
    shipped = await wait_status(registration, S.SHIPPED)
    # After dispatch the workflow waits for delivery until the expo closes: let time skip there.
    result = await registration.handle.result()
    return HappyPath(unit, registration, order, transaction_id, shipped, result)


HAPPY_TIMELINE = [
    (Step.REGISTERED, S.SUBMITTED),
    (Step.UNIT_APPROVED, S.UNPAID),
    (Step.PAID, S.TO_BE_REVIEWED),
    (Step.REVIEW_PASSED, S.APPROVED),
    (Step.CERTIFICATE_MAKING, S.CERTIFICATE_IN_PRODUCTION),
    (Step.CERTIFICATE_MADE, S.CERTIFICATE_ISSUED),
    (Step.DISPATCHED, S.SHIPPED),
]
BUYER_FACING = {Step.REGISTERED, Step.UNIT_APPROVED, Step.PAID, Step.REVIEW_PASSED, Step.DISPATCHED}


async def test_happy_path_from_submission_to_a_shipped_certificate(world: World) -> None:
    path = await run_happy_path(world)
    services, registration, rid = world.services, path.registration, path.registration.id

    # The buyer's timeline, every step in order: as queried, and as the workflow's result.
    assert steps(path.shipped) == HAPPY_TIMELINE
    assert path.result.status is S.SHIPPED
    assert steps(path.result) == HAPPY_TIMELINE
    assert path.shipped.certificate_no == path.result.certificate_no
    assert path.result.order_no == path.order.no
    assert path.result.certificate_no is not None

    # The read model was written step by step, each write with the next seq.
    recorded = services.statuses_of(rid)
    assert [(s.step, s.status) for s in recorded] == HAPPY_TIMELINE
    assert [s.seq for s in recorded] == list(range(1, len(HAPPY_TIMELINE) + 1))
    by_step = {s.step: s for s in recorded}
    assert by_step[Step.UNIT_APPROVED].deadline == registration.start.payment_deadlines.online
    assert by_step[Step.PAID].detail == {"order_no": path.order.no}
    dispatched = by_step[Step.DISPATCHED].detail
    assert dispatched["certificate_no"] == path.result.certificate_no
    assert dispatched["delivery_method"] == "express"
    assert dispatched["tracking_no"].startswith("SX")
    assert dispatched["carrier"] == "SANDBOX-EXPRESS"

    # The buyer heard of each buyer-facing step once, under a key naming the step's seq.
    notes = services.notifications_of(rid)
    assert sorted(n.step for n in notes) == sorted(BUYER_FACING)
    assert len({n.key for n in notes}) == len(notes)
    seq_of = {s.step: s.seq for s in recorded}
    assert all(n.key == f"{rid}:{seq_of[n.step]}:{n.step.value}" for n in notes)
    unit_approved = next(n for n in notes if n.step is Step.UNIT_APPROVED)
    # The payment notice names both deadlines: QR code / B2B, and the earlier bank transfer.
    deadlines = registration.start.payment_deadlines
    assert unit_approved.params["deadline"] == deadlines.online.isoformat()
    assert unit_approved.params["transfer_deadline"] == deadlines.transfer.isoformat()
    assert deadlines.transfer < deadlines.online

    # The services were asked once for each piece of work.
    assert [(t.kind, t.subject_id, t.round) for t in services.review_tasks] == [
        (c.ReviewKind.UNIT, path.unit.id, 1),
        (c.ReviewKind.PERSON, rid, 1),
    ]
    assert services.review_tasks[1].workflow_id == registration.handle.id
    assert [(d.kind, d.decision) for d in services.decisions] == [
        (c.ReviewKind.UNIT, Decision.APPROVE),
        (c.ReviewKind.PERSON, Decision.APPROVE),
    ]
    assert services.certificates == [
        c.MakeCertificate(registration_id=rid, edition=EDITION, fee_kind=FeeKind.STANDARD)
    ]
    assert services.dispatches == [
        c.DispatchCertificate(
            registration_id=rid,
            certificate_no=path.result.certificate_no,
            delivery_method=DeliveryMethod.EXPRESS,
        )
    ]
    assert [(p.order_no, p.transaction_id, p.amount_fen) for p in services.orders_paid] == [
        (path.order.no, path.transaction_id, FEE_FEN)
    ]
    assert services.refunds == []
    assert services.orders_closed == []

    # Operators find the registration by its search attributes.
    attributes = (await registration.handle.describe()).typed_search_attributes
    assert attributes.get(SA_STATUS) == "shipped"
    assert attributes.get(SA_EDITION) == EDITION
    assert attributes.get(SA_MISSION) == MISSION
    assert attributes.get(SA_SUB_MISSION) == "shanghai-pudong"
    assert attributes.get(SA_UNIT) == path.unit.id
    assert attributes.get(SA_PAYMENT_METHOD) == "qr"

    # The order and the unit close on their own deadlines.
    assert await path.order.handle.result() == c.OrderProgress(
        status=OrderStatus.PAID, deadline=path.order.start.deadline, transaction_ids=[path.transaction_id]
    )
    assert (await path.order.handle.describe()).typed_search_attributes.get(SA_STATUS) == "paid"
    assert await path.unit.handle.result() == c.UnitProgress(
        status=UnitStatus.APPROVED, round=1, reason=None, members=[rid]
    )


async def test_member_joining_an_approved_unit_goes_straight_to_unpaid(world: World) -> None:
    unit = await world.start_unit()
    assert (await unit.decide(Decision.APPROVE)).status == UnitStatus.APPROVED

    registration = await world.register(unit)
    progress = await wait_status(registration, S.UNPAID)

    assert steps(progress) == [(Step.REGISTERED, S.SUBMITTED), (Step.UNIT_APPROVED, S.UNPAID)]
    assert progress.timeline[-1].deadline == registration.start.payment_deadlines.online
    assert (await unit.progress()).members == [registration.id]
    # The unit was reviewed once, before this member joined.
    assert len(world.services.decisions_on(unit.id)) == 1


async def test_certificate_collected_by_the_mission_is_reported_delivered(world: World) -> None:
    services = world.services
    unit = await world.start_unit()
    await unit.decide(Decision.APPROVE)
    registration = await world.register(unit, delivery_method=DeliveryMethod.MISSION_COLLECTION)
    await wait_status(registration, S.UNPAID)
    await paid_for(world, unit, registration)
    await registration.decide(Decision.APPROVE)
    awaiting = await wait_status(registration, S.AWAITING_COLLECTION)
    assert awaiting.timeline[-1].step is Step.DISPATCHED
    dispatched = services.statuses_of(registration.id)[-1]
    assert dispatched.detail == {
        "certificate_no": awaiting.certificate_no,
        "delivery_method": "mission_collection",
    }  # no carrier, no tracking number

    # The mission hands the certificate over: the registration is done before the expo closes.
    await registration.delivered(await world.now())
    await completed(registration.handle)
    result = await registration.progress()
    assert steps(result)[-2:] == [(Step.DISPATCHED, S.AWAITING_COLLECTION), (Step.DELIVERED, S.DELIVERED)]
    assert await world.now() < registration.start.expo_closes
    assert Step.DELIVERED not in {n.step for n in services.notifications_of(registration.id)}
    assert (await registration.handle.describe()).typed_search_attributes.get(SA_STATUS) == "delivered"
    await world.keep("collected-by-mission", registration.handle)


# --------------------------------------------------------------------------------------------------
# The unit review


async def test_unit_rejection_resubmission_and_approval(world: World) -> None:
    services = world.services
    unit = await world.start_unit()
    registration = await world.register(unit)
    await wait_member(unit, registration)

    # A rejection needs a reason: the validator refuses it and nothing is recorded.
    assert await refusal(unit.decide(Decision.REJECT)) == "reason_required"
    assert await refusal(unit.decide(Decision.REJECT, "   ")) == "reason_required"
    assert services.decisions_on(unit.id) == []
    # Data changed while under review: the reviewers see it in the same round.
    assert (await unit.change()).status == UnitStatus.UNDER_REVIEW
    assert (await unit.progress()).round == 1

    reason = "营业执照副本不清晰 (business licence unreadable)"
    assert (await unit.decide(Decision.REJECT, reason)).status == UnitStatus.REJECTED
    rejected = await wait_status(registration, S.UNIT_REJECTED)
    assert rejected.timeline[-1].step is Step.UNIT_REJECTED
    assert rejected.timeline[-1].reason == reason
    await until(
        lambda: any(n.step is Step.UNIT_REJECTED for n in services.notifications_of(registration.id)),
        "the rejection notice",
    )
    notice = next(n for n in services.notifications_of(registration.id) if n.step is Step.UNIT_REJECTED)
    assert notice.params["reason"] == reason

    assert (await unit.change()).status == UnitStatus.UNDER_REVIEW
    resubmitted = await wait_status(registration, S.SUBMITTED)
    assert resubmitted.timeline[-1].step is Step.UNIT_RESUBMITTED
    assert (await unit.progress()).round == 2

    assert (await unit.decide(Decision.APPROVE)).status == UnitStatus.APPROVED
    unpaid = await wait_status(registration, S.UNPAID)
    assert steps(unpaid) == [
        (Step.REGISTERED, S.SUBMITTED),
        (Step.UNIT_REJECTED, S.UNIT_REJECTED),
        (Step.UNIT_RESUBMITTED, S.SUBMITTED),
        (Step.UNIT_APPROVED, S.UNPAID),
    ]

    # An approved unit is not decided again.
    assert await refusal(unit.decide(Decision.REJECT, "changed my mind")) == "not_under_review"
    assert await refusal(unit.decide(Decision.APPROVE)) == "not_under_review"

    assert [(d.round, d.decision, d.reason) for d in services.decisions_on(unit.id)] == [
        (1, Decision.REJECT, reason),
        (2, Decision.APPROVE, None),
    ]
    assert [(s.round, s.status) for s in services.unit_statuses if s.unit_id == unit.id] == [
        (1, UnitStatus.UNDER_REVIEW),
        (1, UnitStatus.REJECTED),
        (2, UnitStatus.UNDER_REVIEW),
        (2, UnitStatus.APPROVED),
    ]
    assert [t.round for t in services.review_tasks if t.subject_id == unit.id] == [1, 2]
    assert [s.seq for s in services.statuses_of(registration.id)] == [1, 2, 3, 4]
    await world.keep("unit-rejected-resubmitted", registration.handle, unit.handle)


async def test_rejected_unit_cannot_resubmit_after_registration_closes(world: World) -> None:
    unit = await world.start_unit(registration_closes_in=timedelta(days=10))
    assert (await unit.decide(Decision.REJECT, "wrong trade mission")).status == UnitStatus.REJECTED

    await world.env.sleep(timedelta(days=11))

    assert await refusal(unit.change()) == "registration_closed"
    assert (await unit.progress()).status is UnitStatus.REJECTED
    assert (await unit.progress()).round == 1


# --------------------------------------------------------------------------------------------------
# Payment deadline and personnel review


async def test_unpaid_registration_expires_at_the_payment_deadline(world: World) -> None:
    _, (registration,) = await approved_unit_with_unpaid(world)

    result = await registration.handle.result()  # nobody pays: time skips to the deadline

    assert result.status is S.EXPIRED
    assert steps(result)[-1] == (Step.PAYMENT_EXPIRED, S.EXPIRED)
    expired = world.services.statuses_of(registration.id)[-1]
    assert expired.step is Step.PAYMENT_EXPIRED
    assert expired.at >= registration.start.payment_deadlines.last
    assert [
        n.step for n in world.services.notifications_of(registration.id) if n.step is Step.PAYMENT_EXPIRED
    ] == [Step.PAYMENT_EXPIRED]
    description = await registration.handle.describe()
    assert description.status is WorkflowExecutionStatus.COMPLETED
    assert description.close_time is not None
    assert description.close_time >= registration.start.payment_deadlines.last
    assert description.typed_search_attributes.get(SA_STATUS) == "expired"
    assert world.services.review_tasks[-1].kind is c.ReviewKind.UNIT  # never queued for personnel review
    await world.keep("expired", registration.handle)


async def test_failed_personnel_review_refunds_the_person(world: World) -> None:
    services = world.services
    unit, (registration,) = await approved_unit_with_unpaid(world)
    order = await paid_for(world, unit, registration)

    assert await refusal(registration.decide(Decision.REJECT)) == "reason_required"
    assert services.decisions_on(registration.id) == []

    refund_released = services.hold(c.REFUND)  # keep the workflow at review_failed for a moment
    reason = "证件信息与本人不符 (ID does not match the person)"
    assert (await registration.decide(Decision.REJECT, reason)).status == S.REVIEW_FAILED
    assert await refusal(registration.decide(Decision.APPROVE)) in {"already_decided", "not_awaiting_review"}
    refund_released.set()

    result = await registration.handle.result()
    assert result.status is S.REFUNDED
    assert steps(result)[-2:] == [(Step.REVIEW_FAILED, S.REVIEW_FAILED), (Step.REFUNDED, S.REFUNDED)]
    assert result.timeline[-2].reason == reason

    # One refund of this person's share of the order (the payment service knows the amount).
    assert services.refunds == [
        c.RefundRequest(
            refund_key=f"review-failed:{registration.id}",
            order_no=order.no,
            registration_id=registration.id,
            reason="personnel review failed",
        )
    ]
    refunded = services.statuses_of(registration.id)[-1]
    assert refunded.step is Step.REFUNDED
    assert refunded.detail["refund_no"].startswith("F")
    assert [(d.decision, d.reason) for d in services.decisions_on(registration.id)] == [
        (Decision.REJECT, reason)
    ]
    assert services.certificates == []
    notified = {n.step: n for n in services.notifications_of(registration.id)}
    assert notified[Step.REVIEW_FAILED].params["reason"] == reason
    assert Step.REFUNDED in notified
    await world.keep("review-failed", registration.handle)


# --------------------------------------------------------------------------------------------------
# Payment orders


async def test_repeated_gateway_confirmation_pays_once_and_a_second_payment_is_refunded(world: World) -> None:
    services = world.services
    unit, registrations = await approved_unit_with_unpaid(world, count=2)
    order = await world.start_order(unit, registrations)
    paid_at = await world.now()

    first = new_id("T")
    for _ in range(3):  # the gateway delivers its callback again and again
        await order.confirm(first, order.start.amount_fen, paid_at)
    second = new_id("T")  # the unit's accountant pays the same order a second time
    await order.confirm(second, order.start.amount_fen, paid_at)
    await until(lambda: bool(services.refunds_of_order(order.no)), "the second payment's refund")

    assert [(p.order_no, p.transaction_id) for p in services.orders_paid] == [(order.no, first)]
    assert services.refunds_of_order(order.no) == [
        c.RefundRequest(
            refund_key=f"order:{order.no}:txn:{second}",
            order_no=order.no,
            transaction_id=second,  # the duplicate goes back, not the payment that counted
            amount_fen=order.start.amount_fen,
            reason="duplicate payment",
        )
    ]
    assert second in services.refunds[0].refund_key
    for registration in registrations:
        progress = await wait_status(registration, S.TO_BE_REVIEWED)
        assert [step for step, _ in steps(progress)].count(Step.PAID) == 1
        assert progress.order_no == order.no
        assert [s.step for s in services.statuses_of(registration.id)].count(Step.PAID) == 1
        assert await signals_received(registration.handle, c.SIGNAL_PAYMENT_CONFIRMED) == 1

    assert await order.progress() == c.OrderProgress(
        status=OrderStatus.PAID, deadline=order.start.deadline, transaction_ids=sorted([first, second])
    )
    # The deadline passes: a paid order is not closed.
    assert (await order.handle.result()).status is OrderStatus.PAID
    assert services.orders_closed == []


async def test_unpaid_order_is_closed_at_its_deadline(world: World) -> None:
    services = world.services
    unit, (registration,) = await approved_unit_with_unpaid(world)
    order = await world.start_order(unit, [registration], deadline_in=timedelta(days=1))

    # A part payment does not pay the order: the money goes back.
    part = new_id("T")
    await order.confirm(part, FEE_FEN // 2, await world.now())
    await until(lambda: bool(services.refunds_of_order(order.no)), "the part payment's refund")
    assert services.refunds_of_order(order.no)[0].reason == "amount does not match the order"
    assert services.refunds_of_order(order.no)[0].amount_fen == FEE_FEN // 2

    # Skip exactly past the order's deadline: awaiting its result would let time run on, up to
    # the person's own payment deadline.
    await world.env.sleep(order.start.deadline - await world.now() + timedelta(minutes=1))
    result = await order_status(order, OrderStatus.CLOSED)

    assert result == c.OrderProgress(
        status=OrderStatus.CLOSED, deadline=order.start.deadline, transaction_ids=[part]
    )
    assert [closed.order_no for closed in services.orders_closed] == [order.no]
    assert services.orders_closed[0].at >= order.start.deadline
    assert services.orders_paid == []
    assert (await order.handle.describe()).typed_search_attributes.get(SA_STATUS) == "closed"
    # The person is still unpaid: the unit may pay with a new order until the payment deadline.
    assert (await registration.progress()).status is S.UNPAID
    await world.keep("order-closed-unpaid", order.handle)


async def test_overpayment_pays_the_order_and_refunds_the_excess(world: World) -> None:
    services = world.services
    unit, (registration,) = await approved_unit_with_unpaid(world)
    order = await world.start_order(unit, [registration])
    transaction = new_id("T")
    await order.confirm(transaction, order.start.amount_fen + 5000, await world.now())
    await wait_status(registration, S.TO_BE_REVIEWED)
    await until(lambda: bool(services.refunds_of_order(order.no)), "the excess's refund")
    assert services.refunds_of_order(order.no) == [
        c.RefundRequest(
            refund_key=f"order:{order.no}:txn:{transaction}:excess",
            order_no=order.no,
            transaction_id=transaction,
            amount_fen=5000,
            reason="paid more than the order",
        )
    ]
    await world.keep("overpaid", order.handle)


async def test_money_arriving_as_the_order_closes_is_refunded(world: World) -> None:
    services = world.services
    unit, (registration,) = await approved_unit_with_unpaid(world)
    order = await world.start_order(unit, [registration], deadline_in=timedelta(days=1))
    closing = services.hold(c.CLOSE_ORDER)
    await world.env.sleep(order.start.deadline - await world.now() - timedelta(minutes=1))
    past_deadline = asyncio.create_task(world.env.sleep(timedelta(minutes=2)))  # the close is held
    await until(lambda: c.CLOSE_ORDER.name in services.held, "the order closing")
    late = new_id("T")
    await order.confirm(late, order.start.amount_fen, await world.now())
    closing.set()
    await past_deadline
    await order_status(order, OrderStatus.CLOSED)
    await until(lambda: bool(services.refunds_of_order(order.no)), "the late payment's refund")
    assert services.orders_paid == []
    assert [(r.transaction_id, r.reason) for r in services.refunds_of_order(order.no)] == [
        (late, "the order had closed")
    ]
    assert (await registration.progress()).status is S.UNPAID
    await world.keep("money-as-order-closes", order.handle)


async def test_an_approval_is_answered_before_it_is_written_and_the_lifecycle_waits_for_the_writes(
    world: World,
) -> None:
    services = world.services
    unit, (registration,) = await approved_unit_with_unpaid(world)
    await paid_for(world, unit, registration)
    writing = services.hold(c.RECORD_DECISION)  # the review service is slow (or down) for a while

    # The reviewer's answer does not wait for the review log.
    assert (await registration.decide(Decision.APPROVE)).status == S.APPROVED.value
    assert await refusal(registration.decide(Decision.REJECT, "changed my mind")) == "already_decided"
    # The status is written beside the decision; certificate-making waits for both.
    await until(
        lambda: services.statuses_of(registration.id)[-1].step is Step.REVIEW_PASSED, "the approval recorded"
    )
    await asyncio.sleep(0.5)  # certificate-making would have begun by now
    assert services.certificate_requests == []
    assert (await registration.progress()).status is S.APPROVED

    writing.set()
    await wait_status(registration, S.SHIPPED)
    assert [d.decision for d in services.decisions_on(registration.id)] == [Decision.APPROVE]


async def test_a_unit_approval_is_answered_and_its_members_told_before_it_is_written(world: World) -> None:
    services = world.services
    unit = await world.start_unit()
    members = [await world.register(unit) for _ in range(3)]
    writing = services.hold(c.RECORD_DECISION)

    assert (await unit.decide(Decision.APPROVE)).status == UnitStatus.APPROVED
    for member in members:
        await wait_status(member, S.UNPAID)  # told at once, not one signal at a time after the writes
    second = unit.decide(Decision.REJECT, "a second decision while the first is written")
    assert await refusal(second) == "not_under_review"

    writing.set()
    await until(lambda: bool(services.decisions_on(unit.id)), "the unit's decision written")
    assert [d.decision for d in services.decisions_on(unit.id)] == [Decision.APPROVE]


async def test_payment_arriving_after_a_registration_expired_refunds_only_that_person(world: World) -> None:
    services = world.services
    unit = await world.start_unit()
    await unit.decide(Decision.APPROVE)
    late = await world.register(
        unit, payment_deadline_in=timedelta(days=2), transfer_deadline_in=timedelta(days=1)
    )
    on_time = await world.register(unit, payment_deadline_in=timedelta(days=15))
    for registration in (late, on_time):
        await wait_status(registration, S.UNPAID)
    order = await world.start_order(unit, [late, on_time], deadline_in=timedelta(days=5))

    await world.env.sleep(timedelta(days=3))  # past one person's deadline, within the order's
    await completed(late.handle)
    assert (await late.progress()).status is S.EXPIRED

    transaction_id = new_id("T")
    await order.confirm(transaction_id, order.start.amount_fen, await world.now())
    await wait_status(on_time, S.TO_BE_REVIEWED)
    await until(lambda: bool(services.refunds_of_order(order.no)), "the expired person's refund")

    assert [(p.order_no, p.transaction_id) for p in services.orders_paid] == [(order.no, transaction_id)]
    assert services.refunds_of_order(order.no) == [
        c.RefundRequest(
            refund_key=f"order:{order.no}:unaccepted:{late.id}",
            order_no=order.no,
            registration_id=late.id,
            reason="the registration had closed when the payment arrived",
        )
    ]
    assert (await order.progress()).status is OrderStatus.PAID
    await world.keep("money-after-expiry", late.handle, order.handle)


# --------------------------------------------------------------------------------------------------
# Notifications


async def test_failing_notifications_neither_stop_the_lifecycle_nor_get_lost(world: World) -> None:
    services = world.services
    services.fail_notify(Step.REGISTERED)  # the SMS gateway is down until we say so
    services.fail_notify(Step.PAYMENT_EXPIRED, times=2)

    _, (registration,) = await approved_unit_with_unpaid(world)
    # The lifecycle went on while the first message kept failing.
    await until(lambda: bool(services.notify_attempts_of(registration.id, Step.REGISTERED)), "an attempt")
    assert not any(n.step is Step.REGISTERED for n in services.notifications_of(registration.id))
    await until(
        lambda: any(n.step is Step.UNIT_APPROVED for n in services.notifications_of(registration.id)),
        "the payment notice",
    )
    services.stop_failing(Step.REGISTERED)

    result = await registration.handle.result()

    assert result.status is S.EXPIRED
    # Every message was sent exactly once, and the workflow waited for the last one.
    assert sorted(n.step for n in services.notifications_of(registration.id)) == sorted(
        [Step.REGISTERED, Step.UNIT_APPROVED, Step.PAYMENT_EXPIRED]
    )
    assert services.notify_attempts_of(registration.id, Step.PAYMENT_EXPIRED) == [1, 2, 3]
    assert len(services.notify_attempts_of(registration.id, Step.REGISTERED)) >= 2
    history = await registration.handle.fetch_history()
    kinds = [event.event_type for event in history.events]
    assert kinds.count(EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED) == kinds.count(
        EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
    )  # nothing was left in flight when it completed
    assert kinds[-1] == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED
    await world.keep("notifications-retried", registration.handle)


# --------------------------------------------------------------------------------------------------
# Replay: today's workflow code must replay the histories of workflows already running


def contract_activities() -> set[c.ActivityRef[Any, Any]]:
    return {value for value in vars(c).values() if isinstance(value, c.ActivityRef)}


def test_every_contract_activity_has_a_fake_on_its_queue() -> None:
    fakes = FakeServices()
    assert set(fakes.activities()) == contract_activities()
    queues = fakes.activities_by_queue()
    for ref, fake in fakes.activities().items():
        assert fake in queues[ref.task_queue]


async def test_happy_path_history_replays(world: World) -> None:
    path = await run_happy_path(world)
    await world.keep("happy-path", path.registration.handle, path.unit.handle, path.order.handle)


async def test_recorded_histories_replay() -> None:
    histories = recorded_histories()
    assert histories, f"no history in {HISTORIES}: run with EXPO_RECORD_HISTORIES=1 to record one"
    for history in histories:
        await replayer().replay_workflow(history)
