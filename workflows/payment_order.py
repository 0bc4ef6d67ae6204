"""A payment order: one unit paying for a chosen set of its unpaid people by one method.

QR code and B2B: the gateway's confirmations arrive as signals, possibly repeated and out of order;
each transaction id counts once. The first that covers the amount pays the order and tells every
registration in it; any other money goes back.

Bank transfer: the unit uploads its remittance voucher before the transfer deadline (an update), the
people in the order await finance's confirmation, and finance confirms (paid) or rejects with a reason
(an update; the people are unpaid again, their deadline unchanged). A voucher uploaded in time is
never closed by the deadline while finance looks at it.

The order takes money until its method's deadline (an organiser may extend it), then closes if
unpaid, and keeps answering money that still comes with a refund until the expo closes.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from functools import partial

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from shared import contracts as c
    from shared.temporal import registration_workflow_id
    from shared.types import Decision, OrderStatus, PaymentMethod

from workflows.calls import call, signal_if_open
from workflows.refusal import refuse
from workflows.registration import unaccepted_refund_key
from workflows.visibility import identify, show_status


@workflow.defn(name="PaymentOrder")
class PaymentOrderWorkflow:
    @workflow.init
    def __init__(self, start: c.PaymentOrderStart) -> None:
        self.start = start
        self.status = OrderStatus.AWAITING_PAYMENT
        self.deadline = start.deadline
        self.voucher_key: str | None = None
        self._lock = asyncio.Lock()  # one change of the order's state at a time
        self._seen: set[str] = set()  # transaction ids counted (gateway transactions, confirmed transfers)
        self._arrived: list[c.GatewayConfirmation] = []
        self._deadline_moved = False

    @workflow.run
    async def run(self, start: c.PaymentOrderStart) -> c.OrderProgress:
        identify(
            edition=start.edition,
            mission=start.mission,
            unit=start.unit_id,
            payment_method=start.method.value,
            status=self.status.value,
        )
        while True:
            taking_money = self.status is OrderStatus.AWAITING_PAYMENT
            wake_at = self.deadline if taking_money else start.expo_closes
            try:
                await workflow.wait_condition(
                    partial(self._woken, taking_money), timeout=max(wake_at - workflow.now(), timedelta(0))
                )
            except TimeoutError:
                if workflow.now() >= start.expo_closes:
                    break
                async with self._lock:
                    if self.status is OrderStatus.AWAITING_PAYMENT:
                        await self._deadline_reached()
                continue
            self._deadline_moved = False
            async with self._lock:
                while self._arrived:
                    await self._handle(self._arrived.pop(0))
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.progress()

    def _woken(self, taking_money: bool) -> bool:
        if self._arrived:
            return True
        if taking_money:  # an extension moves the deadline; a voucher or a payment stops the clock
            return self._deadline_moved or self.status is not OrderStatus.AWAITING_PAYMENT
        return self.status is OrderStatus.AWAITING_PAYMENT  # a rejected transfer: the clock runs again

    async def _deadline_reached(self) -> None:
        """Close an unpaid order at its deadline, unless an organiser has extended it since."""
        current = await call(
            c.CURRENT_PAYMENT_DEADLINES, c.EditionRef(edition=self.start.edition), summary="re-read deadlines"
        )
        if current.closes(self.start.method) > self.deadline:
            self.deadline = current.closes(self.start.method)
            return
        self._set_status(OrderStatus.CLOSED)
        await call(c.CLOSE_ORDER, c.CloseOrder(order_no=self.start.order_no, at=workflow.now()))

    async def _handle(self, confirmation: c.GatewayConfirmation) -> None:
        payable = (
            self.status is OrderStatus.AWAITING_PAYMENT and self.start.method is not PaymentMethod.TRANSFER
        )
        if payable and confirmation.amount_fen >= self.start.amount_fen:
            await self._pay(confirmation)
            excess = confirmation.amount_fen - self.start.amount_fen
            if excess:
                await self._refund(confirmation, excess, "paid more than the order", key_suffix=":excess")
        elif self.status is OrderStatus.PAID:
            await self._refund(confirmation, confirmation.amount_fen, "duplicate payment")
        elif self.status is OrderStatus.CLOSED:
            await self._refund(confirmation, confirmation.amount_fen, "the order had closed")
        else:
            await self._refund(confirmation, confirmation.amount_fen, "amount does not match the order")

    async def _refund(
        self, confirmation: c.GatewayConfirmation, amount_fen: int, reason: str, key_suffix: str = ""
    ) -> None:
        """Money that pays no one goes back to where it came from."""
        await call(
            c.REFUND,
            c.RefundRequest(
                refund_key=f"order:{self.start.order_no}:txn:{confirmation.transaction_id}{key_suffix}",
                order_no=self.start.order_no,
                transaction_id=confirmation.transaction_id,
                amount_fen=amount_fen,
                reason=reason,
            ),
            summary=f"refund transaction {confirmation.transaction_id}: {reason}",
            timeout=timedelta(minutes=2),
        )

    async def _pay(self, confirmation: c.GatewayConfirmation) -> None:
        await call(
            c.MARK_ORDER_PAID,
            c.MarkOrderPaid(
                order_no=self.start.order_no,
                transaction_id=confirmation.transaction_id,
                amount_fen=confirmation.amount_fen,
                paid_at=confirmation.paid_at,
            ),
            summary="mark the order paid",
        )
        self._set_status(OrderStatus.PAID)
        paid = c.PaymentConfirmed(
            order_no=self.start.order_no,
            method=self.start.method,
            transaction_id=confirmation.transaction_id,
            paid_at=confirmation.paid_at,
        )
        for registration_id in self.start.registration_ids:
            # An open registration takes the money or refunds its share itself; a closed one cannot.
            if not await self._tell(registration_id, c.SIGNAL_PAYMENT_CONFIRMED, paid):
                await call(
                    c.REFUND,
                    c.RefundRequest(
                        refund_key=unaccepted_refund_key(self.start.order_no, registration_id),
                        order_no=self.start.order_no,
                        registration_id=registration_id,
                        reason="the registration had closed when the payment arrived",
                    ),
                    summary=f"refund {registration_id}: closed before payment",
                    timeout=timedelta(minutes=2),
                )

    async def _tell(self, registration_id: str, signal: str, arg: c.Message) -> bool:
        return await signal_if_open(
            registration_workflow_id(self.start.edition, registration_id), signal, arg
        )

    def _set_status(self, status: OrderStatus) -> None:
        self.status = status
        show_status(status.value, f"Order {self.start.order_no}: **{status.value}**")

    # ---------------------------------------------------------------- signals

    @workflow.signal(name=c.SIGNAL_GATEWAY_CONFIRMATION)
    def on_gateway_confirmation(self, confirmation: c.GatewayConfirmation) -> None:
        if confirmation.transaction_id in self._seen:
            return  # the gateway delivered the same callback again
        self._seen.add(confirmation.transaction_id)
        self._arrived.append(confirmation)

    @workflow.signal(name=c.SIGNAL_DEADLINES_EXTENDED)
    def on_deadlines_extended(self, deadlines: c.PaymentDeadlines) -> None:
        if (
            self.status is OrderStatus.AWAITING_PAYMENT
            and deadlines.closes(self.start.method) > self.deadline
        ):
            self.deadline = deadlines.closes(self.start.method)
            self._deadline_moved = True

    # ---------------------------------------------------------------- updates: bank transfer

    @workflow.update(name=c.UPDATE_UPLOAD_VOUCHER)
    async def upload_voucher(self, upload: c.VoucherUpload) -> c.DecisionResult:
        """The unit's remittance voucher: the people in the order now await finance's confirmation."""
        async with self._lock:
            self._validate_voucher(upload)
            uploaded_at = workflow.now()
            await call(
                c.RECORD_VOUCHER,
                c.RecordVoucher(order_no=self.start.order_no, voucher_key=upload.voucher_key, at=uploaded_at),
                summary="record the remittance voucher",
            )
            self.voucher_key = upload.voucher_key
            self._set_status(OrderStatus.AWAITING_CONFIRMATION)
            submitted = c.TransferSubmitted(order_no=self.start.order_no)
            for registration_id in self.start.registration_ids:
                await self._tell(registration_id, c.SIGNAL_TRANSFER_SUBMITTED, submitted)
        return c.DecisionResult(status=self.status.value)

    @upload_voucher.validator
    def _validate_voucher(self, upload: c.VoucherUpload) -> None:
        if self.start.method is not PaymentMethod.TRANSFER:
            raise refuse("not_transfer_order", "only a bank-transfer order takes a remittance voucher")
        self._refuse_unless_awaiting(OrderStatus.AWAITING_PAYMENT)
        if workflow.now() >= self.deadline:
            raise refuse(
                "voucher_deadline_passed", f"the voucher upload closed at {self.deadline.isoformat()}"
            )

    @workflow.update(name=c.UPDATE_CONFIRM_TRANSFER)
    async def confirm_transfer(self, decision: c.TransferDecision) -> c.DecisionResult:
        """Finance: the money is on the account (paid), or the voucher is rejected with a reason."""
        async with self._lock:
            self._validate_transfer_decision(decision)
            decided_at = workflow.now()
            await call(
                c.RECORD_TRANSFER_DECISION,
                c.RecordTransferDecision(
                    order_no=self.start.order_no,
                    decision=decision.decision,
                    reason=decision.reason,
                    reviewer=decision.reviewer,
                    bank_reference=decision.bank_reference,
                    decided_at=decided_at,
                ),
                summary=f"transfer {decision.decision.value}",
            )
            if decision.decision is Decision.APPROVE:
                assert decision.bank_reference is not None
                self._seen.add(decision.bank_reference)
                await self._pay(
                    c.GatewayConfirmation(
                        transaction_id=decision.bank_reference,
                        amount_fen=self.start.amount_fen,
                        paid_at=decided_at,
                    )
                )
            else:
                # Unpaid again with the deadline unchanged: if it has passed, the order closes next.
                self.voucher_key = None
                self._set_status(OrderStatus.AWAITING_PAYMENT)
                rejected = c.TransferRejected(order_no=self.start.order_no, reason=decision.reason or "")
                for registration_id in self.start.registration_ids:
                    await self._tell(registration_id, c.SIGNAL_TRANSFER_REJECTED, rejected)
        return c.DecisionResult(status=self.status.value)

    @confirm_transfer.validator
    def _validate_transfer_decision(self, decision: c.TransferDecision) -> None:
        if self.start.method is not PaymentMethod.TRANSFER:
            raise refuse("not_transfer_order", "only a bank-transfer order is confirmed by finance")
        if self.status is OrderStatus.AWAITING_PAYMENT:
            raise refuse("no_voucher", "no remittance voucher awaits confirmation")
        self._refuse_unless_awaiting(OrderStatus.AWAITING_CONFIRMATION)
        if decision.decision is Decision.REJECT and not (decision.reason or "").strip():
            raise refuse("reason_required", "a rejection needs a reason")
        if decision.decision is Decision.APPROVE and not (decision.bank_reference or "").strip():
            raise refuse("bank_reference_required", "a confirmation needs the bank's transaction reference")

    def _refuse_unless_awaiting(self, expected: OrderStatus) -> None:
        if self.status is expected:
            return
        match self.status:
            case OrderStatus.PAID:
                raise refuse("order_paid", "the order is paid")
            case OrderStatus.CLOSED:
                raise refuse("order_closed", "the order has closed")
            case _:
                raise refuse("voucher_pending", "a remittance voucher already awaits finance's confirmation")

    # ---------------------------------------------------------------- queries

    @workflow.query(name=c.QUERY_PROGRESS)
    def progress(self) -> c.OrderProgress:
        return c.OrderProgress(
            status=self.status,
            deadline=self.deadline,
            transaction_ids=sorted(self._seen),
            voucher_key=self.voucher_key,
        )
