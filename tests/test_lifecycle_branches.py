"""Every branch of the lifecycle beyond the main path, on the time-skipping server.

Each test plays one rule of the buyer Q&A as the people involved would (buyer, mission staff,
finance, the organiser, the gateway), checks what they would notice (statuses, the timeline, the
messages, money going back), and keeps the workflows' histories for the replay test.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import WorkflowUpdateStage

from shared import contracts as c
from shared.ids import new_id
from shared.temporal import SA_PAYMENT_METHOD, SA_STATUS, registration_workflow_id
from shared.types import Decision, FeeKind, OrderStatus, PaymentMethod, UnitStatus
from tests.workflow_world import (
    EDITION,
    Registration,
    S,
    Step,
    World,
    approved_unit_with_unpaid,
    completed,
    order_status,
    paid_for,
    refusal,
    steps,
    until,
    wait_member,
    wait_status,
)


def notified(world: World, registration: Registration) -> list[c.Step]:
    return [n.step for n in world.services.notifications_of(registration.id)]


async def told(world: World, registration: Registration, step: c.Step) -> c.Notify:
    """Until the buyer's message for ``step`` has gone out; that message."""
    await until(lambda: step in notified(world, registration), f"{registration.id} told of {step}")
    return next(n for n in world.services.notifications_of(registration.id) if n.step is step)


# --------------------------------------------------------------------------------------------------
# The unit review


async def test_changing_an_approved_unit_sends_it_back_to_review(world: World) -> None:
    services = world.services
    unit, (waiting, paying) = await approved_unit_with_unpaid(world, count=2)
    await paid_for(world, unit, paying)
    deadlines = waiting.start.payment_deadlines

    # The unit corrects its address: the mission must look again; nobody unpaid may pay meanwhile.
    assert (await unit.change()).status == UnitStatus.UNDER_REVIEW
    back = await wait_status(waiting, S.SUBMITTED)
    assert steps(back)[-1] == (Step.UNIT_CHANGED, S.SUBMITTED)
    await told(world, waiting, Step.UNIT_CHANGED)
    assert (await paying.progress()).status is S.TO_BE_REVIEWED  # paid people are past the unit review
    assert (await unit.progress()).round == 2
    assert [r.kind for r in services.revisions_applied] == [c.ReviewKind.UNIT]
    assert [t.round for t in services.review_tasks if t.subject_id == unit.id] == [1, 2]

    # Approved again: the payment notice again, with the deadline it always had.
    await unit.decide(Decision.APPROVE)
    again = await wait_status(waiting, S.UNPAID)
    assert steps(again)[-3:] == [
        (Step.UNIT_APPROVED, S.UNPAID),
        (Step.UNIT_CHANGED, S.SUBMITTED),
        (Step.UNIT_APPROVED, S.UNPAID),
    ]
    assert again.timeline[-1].deadline == deadlines.online
    await until(lambda: notified(world, waiting).count(Step.UNIT_APPROVED) == 2, "a second payment notice")
    await world.keep("unit-changed-after-approval", waiting.handle, unit.handle)


async def test_a_member_joining_a_rejected_unit_learns_why(world: World) -> None:
    unit = await world.start_unit()
    await unit.decide(Decision.REJECT, "not a buyer of the exhibition's industries")
    registration = await world.register(unit)
    rejected = await wait_status(registration, S.UNIT_REJECTED)
    assert rejected.timeline[-1].reason == "not a buyer of the exhibition's industries"
    assert (await told(world, registration, Step.UNIT_REJECTED)).params["reason"].startswith("not a buyer")


# --------------------------------------------------------------------------------------------------
# Payment deadlines by method, extensions, expiry


async def test_transfer_closes_first_and_qr_payment_is_taken_until_its_own_deadline(world: World) -> None:
    unit, (registration,) = await approved_unit_with_unpaid(world)
    deadlines = registration.start.payment_deadlines
    transfer_order = await world.start_order(
        unit,
        [registration],
        method=PaymentMethod.TRANSFER,
        deadline_in=deadlines.transfer - await world.now(),
    )

    # Past the transfer deadline: the voucher is refused, but the person is still unpaid.
    await world.env.sleep(deadlines.transfer - await world.now() + timedelta(hours=1))
    assert await refusal(transfer_order.upload_voucher()) in {"voucher_deadline_passed", "order_closed"}
    await order_status(transfer_order, OrderStatus.CLOSED)
    assert (await registration.progress()).status is S.UNPAID

    # QR code still pays until its own (later) deadline.
    await paid_for(world, unit, registration)
    assert Step.PAYMENT_EXPIRED not in notified(world, registration)
    await registration.decide(Decision.APPROVE)
    await world.keep("transfer-closed-qr-paid", registration.handle, transfer_order.handle)


async def test_an_organisers_extension_reaches_waiting_registrations_and_orders(world: World) -> None:
    services = world.services
    unit, (unpaid,) = await approved_unit_with_unpaid(world)
    pending_unit = await world.start_unit()
    submitted = await world.register(pending_unit)
    await wait_member(pending_unit, submitted)
    order = await world.start_order(unit, [unpaid], deadline_in=timedelta(days=15))
    old = unpaid.start.payment_deadlines
    new = c.PaymentDeadlines(
        qr=old.qr + timedelta(days=5),
        b2b=old.b2b + timedelta(days=5),
        transfer=old.transfer + timedelta(days=2),
    )
    services.waiting_workflows["registration"] += [unpaid.handle.id, submitted.handle.id]
    services.waiting_workflows["payment"].append(order.handle.id)

    announcement = await world.extend_deadlines(new)

    assert (await announcement.result()).signalled == 3
    extended = await wait_status(unpaid, S.UNPAID)
    await until(lambda: Step.DEADLINE_EXTENDED in notified(world, unpaid), "the extension notice")
    extended = await unpaid.progress()
    assert extended.payment_deadlines == new
    assert steps(extended)[-1] == (Step.DEADLINE_EXTENDED, S.UNPAID)
    assert extended.timeline[-1].deadline == new.online
    notice = await told(world, unpaid, Step.DEADLINE_EXTENDED)
    assert notice.params["deadline"] == new.online.isoformat()
    assert notice.params["transfer_deadline"] == new.transfer.isoformat()
    # Not yet asked to pay: the new deadline waits silently for the payment notice.
    assert (await submitted.progress()).payment_deadlines == new
    assert Step.DEADLINE_EXTENDED not in notified(world, submitted)
    assert (await order.progress()).deadline == new.qr  # the open QR order takes money longer too

    # Announced twice (a retried announcement): nothing more.
    await unpaid.handle.signal(c.SIGNAL_DEADLINES_EXTENDED, new)
    # The old deadline passes: nobody expires. At the new one the unpaid person does, told once.
    await world.env.sleep(old.last - await world.now() + timedelta(hours=1))
    assert (await unpaid.progress()).status is S.UNPAID
    result = await unpaid.handle.result()
    assert result.status is S.EXPIRED
    assert result.timeline[-1].at >= new.last
    assert notified(world, unpaid).count(Step.DEADLINE_EXTENDED) == 1
    assert notified(world, unpaid).count(Step.PAYMENT_EXPIRED) == 1
    await world.keep("deadline-extended", unpaid.handle, order.handle, announcement)


async def test_a_registration_the_announcement_missed_rereads_the_deadline_before_expiring(
    world: World,
) -> None:
    _, (registration,) = await approved_unit_with_unpaid(world)
    old = registration.start.payment_deadlines
    # The organiser extended, but this workflow was not signalled (it started as the extension went out).
    world.services.current_deadlines = c.PaymentDeadlines(
        qr=old.qr + timedelta(days=3), b2b=old.b2b + timedelta(days=3), transfer=old.transfer
    )

    result = await registration.handle.result()

    assert result.status is S.EXPIRED
    assert [step for step, _ in steps(result)][-2:] == [Step.DEADLINE_EXTENDED, Step.PAYMENT_EXPIRED]
    assert result.timeline[-2].at >= old.last  # it woke at the old deadline and read the new one
    assert result.timeline[-1].at >= old.last + timedelta(days=3)
    assert notified(world, registration).count(Step.PAYMENT_EXPIRED) == 1
    await world.keep("deadline-reread", registration.handle)


# --------------------------------------------------------------------------------------------------
# Money that cannot pay for anyone goes back


async def test_confirmations_in_any_order_and_number_pay_once(world: World) -> None:
    services = world.services
    unit, (registration,) = await approved_unit_with_unpaid(world)
    order = await world.start_order(unit, [registration])
    now = await world.now()
    first, second = new_id("T"), new_id("T")
    # The gateway's callbacks of two payments of the same order, repeated and interleaved.
    for transaction_id in (second, first, second, first, first):
        await order.confirm(transaction_id, order.start.amount_fen, now)
    await wait_status(registration, S.TO_BE_REVIEWED)
    await until(lambda: len(services.refunds_of_order(order.no)) == 1, "one refund")

    paid = services.orders_paid
    assert len(paid) == 1 and paid[0].transaction_id == second  # the first to arrive counts
    assert [r.transaction_id for r in services.refunds_of_order(order.no)] == [first]
    await told(world, registration, Step.PAID)  # messages go out beside the lifecycle: wait for it
    assert notified(world, registration).count(Step.PAID) == 1
    await world.keep("confirmations-interleaved", order.handle, registration.handle)


async def test_a_person_paid_for_by_two_orders_gets_the_second_share_back(world: World) -> None:
    services = world.services
    unit, (registration,) = await approved_unit_with_unpaid(world)
    first = await paid_for(world, unit, registration)
    second = await world.start_order(unit, [registration])  # a colleague pays for the same person again
    await second.confirm(new_id("T"), second.start.amount_fen, await world.now())
    await until(lambda: bool(services.refunds_of_order(second.no)), "the second share's refund")

    refund = services.refunds_of_order(second.no)[0]
    assert refund.registration_id == registration.id
    assert refund.refund_key == f"order:{second.no}:unaccepted:{registration.id}"
    assert refund.reason == f"already paid by order {first.no}"
    progress = await registration.progress()
    assert progress.order_no == first.no
    assert [step for step, _ in steps(progress)].count(Step.PAID) == 1
    await registration.decide(Decision.APPROVE)
    await world.keep("paid-twice-across-orders", registration.handle, second.handle)


# --------------------------------------------------------------------------------------------------
# Bank transfer


async def test_transfer_voucher_awaits_finance_past_the_deadline_then_is_confirmed(world: World) -> None:
    services = world.services
    unit, people = await approved_unit_with_unpaid(world, count=2)
    deadlines = people[0].start.payment_deadlines
    qr_order = await world.start_order(unit, people)
    assert await refusal(qr_order.upload_voucher()) == "not_transfer_order"
    order = await world.start_order(
        unit, people, method=PaymentMethod.TRANSFER, deadline_in=deadlines.transfer - await world.now()
    )
    assert await refusal(order.finance(Decision.APPROVE, bank_reference="B1")) == "no_voucher"

    assert (await order.upload_voucher("ciie6/P1/voucher.pdf")).status == OrderStatus.AWAITING_CONFIRMATION
    for person in people:
        awaiting = await wait_status(person, S.AWAITING_TRANSFER_CONFIRMATION)
        assert steps(awaiting)[-1] == (Step.VOUCHER_UPLOADED, S.AWAITING_TRANSFER_CONFIRMATION)
        assert (await told(world, person, Step.VOUCHER_UPLOADED)).params["order_no"] == order.no
    assert await refusal(order.upload_voucher()) == "voucher_pending"
    attributes = (await people[0].handle.describe()).typed_search_attributes
    assert attributes.get(SA_PAYMENT_METHOD) == "transfer"  # finance's filter in the Temporal UI
    assert [v.voucher_key for v in services.vouchers] == ["ciie6/P1/voucher.pdf"]

    # Finance takes its time: past every payment deadline, nothing closes or expires.
    await world.env.sleep(deadlines.last - await world.now() + timedelta(days=1))
    assert (await order.progress()).status is OrderStatus.AWAITING_CONFIRMATION
    for person in people:
        assert (await person.progress()).status is S.AWAITING_TRANSFER_CONFIRMATION

    assert await refusal(order.finance(Decision.APPROVE)) == "bank_reference_required"
    assert await refusal(order.finance(Decision.REJECT)) == "reason_required"
    assert services.transfer_decisions == []
    confirmed = await order.finance(Decision.APPROVE, bank_reference="ICBC20231013-0042")
    assert confirmed.status == OrderStatus.PAID
    for person in people:
        paid = await wait_status(person, S.TO_BE_REVIEWED)
        assert paid.order_no == order.no
    assert [(p.order_no, p.transaction_id) for p in services.orders_paid] == [(order.no, "ICBC20231013-0042")]
    assert [(d.decision, d.reviewer) for d in services.transfer_decisions] == [
        (Decision.APPROVE, "finance-clerk")
    ]
    assert await refusal(order.finance(Decision.REJECT, reason="late")) == "order_paid"
    for person in people:
        await person.decide(Decision.APPROVE)
    await world.keep("transfer-confirmed", order.handle, *(p.handle for p in people))


async def test_rejected_transfer_is_unpaid_again_with_the_deadline_unchanged(world: World) -> None:
    unit, (registration,) = await approved_unit_with_unpaid(world)
    deadlines = registration.start.payment_deadlines
    order = await world.start_order(
        unit,
        [registration],
        method=PaymentMethod.TRANSFER,
        deadline_in=deadlines.transfer - await world.now(),
    )
    await order.upload_voucher()
    await wait_status(registration, S.AWAITING_TRANSFER_CONFIRMATION)

    reason = "汇款金额与订单不符 (the amount differs from the order)"
    assert (await order.finance(Decision.REJECT, reason=reason)).status == OrderStatus.AWAITING_PAYMENT
    unpaid = await wait_status(registration, S.UNPAID)
    assert steps(unpaid)[-1] == (Step.TRANSFER_REJECTED, S.UNPAID)
    assert unpaid.timeline[-1].reason == reason
    assert unpaid.timeline[-1].deadline == deadlines.online
    assert unpaid.payment_deadlines == deadlines
    notice = await told(world, registration, Step.TRANSFER_REJECTED)
    assert notice.params["reason"] == reason
    assert notice.params["transfer_deadline"] == deadlines.transfer.isoformat()

    # A corrected voucher, before the transfer deadline, is taken again.
    assert (await order.upload_voucher("ciie6/second.pdf")).status == OrderStatus.AWAITING_CONFIRMATION
    await wait_status(registration, S.AWAITING_TRANSFER_CONFIRMATION)
    # Rejected again after every deadline: unpaid with the same deadline, which has passed: expired.
    await world.env.sleep(deadlines.last - await world.now() + timedelta(hours=2))
    await order.finance(Decision.REJECT, reason="still wrong")
    result = await registration.handle.result()
    assert [step for step, _ in steps(result)][-2:] == [Step.TRANSFER_REJECTED, Step.PAYMENT_EXPIRED]
    assert result.status is S.EXPIRED
    await order_status(order, OrderStatus.CLOSED)
    await world.keep("transfer-rejected", registration.handle, order.handle)


# --------------------------------------------------------------------------------------------------
# Personnel review


async def test_a_pass_starts_certificate_making_at_once_and_refuses_refunds_and_substitutes(
    world: World,
) -> None:
    services = world.services
    unit, (registration,) = await approved_unit_with_unpaid(world)
    await paid_for(world, unit, registration)
    making = services.hold(c.MAKE_CERTIFICATE)

    assert (await registration.decide(Decision.APPROVE)).status == S.APPROVED
    # From this instant: no refund (withdrawal), no substitute, no change of personal data.
    assert await refusal(registration.withdraw()) == "certificate_in_production"
    assert await refusal(registration.change(substitution=True)) == "certificate_in_production"
    assert await refusal(registration.change()) == "certificate_in_production"
    await until(lambda: c.MAKE_CERTIFICATE.name in services.held, "certificate-making")
    assert (await registration.progress()).status is S.CERTIFICATE_IN_PRODUCTION
    making.set()
    await wait_status(registration, S.SHIPPED)
    assert services.refunds == [] and services.revisions_applied == []
    await world.keep("review-passed-refusals", registration.handle)


async def test_a_decision_made_as_the_person_enters_the_queue_waits_instead_of_being_refused(
    world: World,
) -> None:
    services = world.services
    unit, (registration,) = await approved_unit_with_unpaid(world)
    order = await world.start_order(unit, [registration])
    opening = services.hold(c.OPEN_REVIEW_TASK)  # paid, and on its way into the review queue
    await order.confirm(new_id("T"), order.start.amount_fen, await world.now())
    await until(lambda: c.OPEN_REVIEW_TASK.name in services.held, "the review being opened")

    # Accepted (not refused as "unpaid") while the review opens; it waits until the person is to be reviewed.
    review = c.ReviewDecision(decision=Decision.APPROVE, reviewer="personnel-reviewer")
    decision = await registration.handle.start_update(
        c.UPDATE_DECIDE, review, wait_for_stage=WorkflowUpdateStage.ACCEPTED, result_type=c.DecisionResult
    )
    opening.set()
    assert (await decision.result()).status == S.APPROVED.value
    taken = [step for step, _ in steps(await wait_status(registration, S.SHIPPED))]
    assert taken.index(Step.PAID) < taken.index(Step.REVIEW_PASSED)


async def test_a_failed_review_voids_the_invoice_and_issues_a_new_one(world: World) -> None:
    services = world.services
    unit, (registration,) = await approved_unit_with_unpaid(world)
    order = await paid_for(world, unit, registration)
    services.invoice_of_order[order.no] = "INV-2023-000123"  # the unit asked for its invoice after paying

    await registration.decide(Decision.REJECT, "not an industry professional")
    result = await registration.handle.result()

    assert result.status is S.REFUNDED
    refunded = services.statuses_of(registration.id)[-1]
    assert refunded.detail["invoice_voided"] == "INV-2023-000123"
    assert refunded.detail["invoice_issued"].startswith("I")
    message = (await told(world, registration, Step.REFUNDED)).params
    assert message["invoice_voided"] == "INV-2023-000123"
    assert result.refund_no == refunded.detail["refund_no"]
    await world.keep("review-failed-invoice", registration.handle)


# --------------------------------------------------------------------------------------------------
# Withdrawal, and changes of personal data


async def test_withdrawal_before_payment_ends_it_and_late_money_goes_back(world: World) -> None:
    services = world.services
    unit, (registration,) = await approved_unit_with_unpaid(world)
    order = await world.start_order(unit, [registration])

    assert (await registration.withdraw()).status == S.WITHDRAWN
    await completed(registration.handle)
    result = await registration.progress()
    assert steps(result)[-1] == (Step.WITHDRAWN, S.WITHDRAWN)
    assert Step.WITHDRAWN in notified(world, registration)
    assert (await registration.handle.describe()).typed_search_attributes.get(SA_STATUS) == "withdrawn"

    # The unit's accountant pays the old QR code anyway: the money goes back.
    await order.confirm(new_id("T"), order.start.amount_fen, await world.now())
    await until(lambda: bool(services.refunds_of_order(order.no)), "the refund")
    assert services.refunds_of_order(order.no)[0].registration_id == registration.id
    await world.keep("withdrawn-before-payment", registration.handle, order.handle)


async def test_withdrawal_while_submitted_and_refused_while_a_transfer_is_confirmed(world: World) -> None:
    unit = await world.start_unit()
    submitted = await world.register(unit)
    await wait_member(unit, submitted)
    assert (await submitted.withdraw()).status == S.WITHDRAWN

    unit2, (person,) = await approved_unit_with_unpaid(world)
    deadlines = person.start.payment_deadlines
    order = await world.start_order(
        unit2, [person], method=PaymentMethod.TRANSFER, deadline_in=deadlines.transfer - await world.now()
    )
    await order.upload_voucher()
    await wait_status(person, S.AWAITING_TRANSFER_CONFIRMATION)
    assert await refusal(person.withdraw()) == "transfer_being_confirmed"
    await world.keep("withdrawn-while-submitted", submitted.handle)


async def test_withdrawal_after_payment_before_the_review_refunds(world: World) -> None:
    services = world.services
    unit, (registration,) = await approved_unit_with_unpaid(world)
    order = await paid_for(world, unit, registration)
    services.fail_notify(Step.REFUNDED)  # keeps the workflow open while the test talks to it

    assert (await registration.withdraw()).status == S.REFUNDED
    # Taken off the reviewers' queue; a decision that comes anyway is refused, nothing recorded.
    assert [(t.subject_id, t.round, t.reason) for t in services.review_tasks_closed] == [
        (registration.id, 1, "withdrawn")
    ]
    assert await refusal(registration.decide(Decision.APPROVE)) == "not_awaiting_review"
    services.stop_failing(Step.REFUNDED)
    result = await registration.handle.result()
    assert [step for step, _ in steps(result)][-2:] == [Step.WITHDRAWN, Step.REFUNDED]
    assert [(r.order_no, r.registration_id, r.refund_key) for r in services.refunds] == [
        (order.no, registration.id, f"withdrawn:{registration.id}")
    ]
    assert services.decisions_on(registration.id) == []
    assert Step.REFUNDED in notified(world, registration)
    await world.keep("withdrawn-after-payment", registration.handle)


async def test_personal_data_changes_before_the_review_and_a_substitute_is_reviewed_anew(
    world: World,
) -> None:
    services = world.services
    unit, (registration,) = await approved_unit_with_unpaid(world)

    assert (await registration.change()).status == S.UNPAID  # a new mobile number, say
    changed = await wait_status(registration, S.UNPAID)
    assert steps(changed)[-1] == (Step.PERSON_CHANGED, S.UNPAID)
    await paid_for(world, unit, registration)

    # Under review, a colleague takes the place: the reviewers get the new person in a new round.
    assert (await registration.change(substitution=True)).status == S.TO_BE_REVIEWED
    substituted = await wait_status(registration, S.TO_BE_REVIEWED)
    assert steps(substituted)[-1] == (Step.PERSON_CHANGED, S.TO_BE_REVIEWED)
    assert services.statuses_of(registration.id)[-1].detail["substitution"] == "true"
    assert [(t.round, t.reason) for t in services.review_tasks_closed] == [(1, "personal data changed")]
    assert [t.round for t in services.review_tasks if t.subject_id == registration.id] == [1, 2]
    assert [r.subject_id for r in services.revisions_applied] == [registration.id, registration.id]

    # A reviewer who looked at round 1 is told the data changed; round 2 is decided.
    stale = c.ReviewDecision(decision=Decision.APPROVE, reviewer="personnel-reviewer", round=1)
    assert (
        await refusal(registration.handle.execute_update(c.UPDATE_DECIDE, stale)) == "review_round_superseded"
    )
    await registration.decide(Decision.APPROVE)
    await until(lambda: bool(services.decisions_on(registration.id)), "the decision written")
    assert [d.round for d in services.decisions_on(registration.id)] == [2]
    await until(lambda: notified(world, registration).count(Step.PERSON_CHANGED) >= 2, "both change messages")
    assert notified(world, registration).count(Step.PERSON_CHANGED) == 2
    await world.keep("personal-data-changed", registration.handle)


async def test_an_expired_registration_takes_no_change(world: World) -> None:
    _, (registration,) = await approved_unit_with_unpaid(world)
    world.services.fail_notify(Step.PAYMENT_EXPIRED)  # keeps the workflow open while it retries
    await world.env.sleep(registration.start.payment_deadlines.last - await world.now() + timedelta(hours=1))
    await wait_status(registration, S.EXPIRED)
    assert await refusal(registration.change()) == "registration_ended"
    assert await refusal(registration.withdraw()) == "registration_ended"
    assert world.services.revisions_applied == []
    world.services.stop_failing(Step.PAYMENT_EXPIRED)


# --------------------------------------------------------------------------------------------------
# Re-validation of last edition's certificate


async def test_revalidation_passes_the_same_reviews_and_reactivates_the_old_card(world: World) -> None:
    services = world.services
    unit = await world.start_unit()
    registration = await world.register(unit, previous_certificate_no="B05-0012345")
    assert registration.start.fee_kind is FeeKind.REVALIDATION
    await wait_member(unit, registration)
    await unit.decide(Decision.APPROVE)  # the same unit review
    await wait_status(registration, S.UNPAID)
    assert await refusal(registration.change(substitution=True)) == "revalidation_not_transferable"
    await paid_for(world, unit, registration)
    await registration.decide(Decision.APPROVE)  # the same personnel review

    result = await registration.handle.result()

    assert result.status is S.CERTIFICATE_REACTIVATED
    assert steps(result)[-2:] == [
        (Step.REVIEW_PASSED, S.APPROVED),
        (Step.CERTIFICATE_REACTIVATED, S.CERTIFICATE_REACTIVATED),
    ]
    assert result.certificate_no == "B05-0012345"
    assert services.reactivations == [
        c.ReactivateCertificate(
            registration_id=registration.id, edition=EDITION, previous_certificate_no="B05-0012345"
        )
    ]
    assert services.certificates == [] and services.dispatches == []  # no new card, nothing sent
    assert (await told(world, registration, Step.CERTIFICATE_REACTIVATED)).params[
        "certificate_no"
    ] == "B05-0012345"
    assert registration.handle.id == registration_workflow_id(EDITION, registration.id)
    await world.keep("revalidation", registration.handle)
