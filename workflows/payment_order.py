"""A payment order: one unit paying for a chosen set of its unpaid people by one method.

Gateway confirmations arrive as signals, possibly repeated and out of order; each transaction id
counts once. The first confirmation that covers the amount pays the order and tells every
registration in it; money that arrives again is refunded.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from shared import contracts as c
    from shared.temporal import registration_workflow_id
    from shared.types import OrderStatus

from workflows.calls import call, signal_if_open
from workflows.visibility import identify, show_status


@workflow.defn(name="PaymentOrder")
class PaymentOrderWorkflow:
    @workflow.init
    def __init__(self, start: c.PaymentOrderStart) -> None:
        self.start = start
        self.status = OrderStatus.AWAITING_PAYMENT
        self._seen: set[str] = set()
        self._arrived: list[c.GatewayConfirmation] = []
        self._paid_by: str | None = None

    @workflow.run
    async def run(self, start: c.PaymentOrderStart) -> c.OrderProgress:
        identify(
            edition=start.edition,
            mission=start.mission,
            unit=start.unit_id,
            payment_method=start.method.value,
            status=self.status.value,
        )
        # Until the method's deadline, handle every confirmation; after it, money is no longer taken.
        while True:
            try:
                await workflow.wait_condition(
                    lambda: bool(self._arrived), timeout=max(start.deadline - workflow.now(), timedelta(0))
                )
            except TimeoutError:
                break
            while self._arrived:
                await self._handle(self._arrived.pop(0))
        if self.status is OrderStatus.AWAITING_PAYMENT:
            self._set_status(OrderStatus.CLOSED)
            await call(c.CLOSE_ORDER, c.CloseOrder(order_no=start.order_no, at=workflow.now()))
        while self._arrived:  # money that came while the order closed goes back (nothing awaited after)
            await self._handle(self._arrived.pop(0))
        return self.progress()

    async def _handle(self, confirmation: c.GatewayConfirmation) -> None:
        if self.status is OrderStatus.AWAITING_PAYMENT and confirmation.amount_fen >= self.start.amount_fen:
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
        self._paid_by = confirmation.transaction_id
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
            workflow_id = registration_workflow_id(self.start.edition, registration_id)
            if not await signal_if_open(workflow_id, c.SIGNAL_PAYMENT_CONFIRMED, paid):
                # The registration closed before the money came (it expired): its share goes back.
                await call(
                    c.REFUND,
                    c.RefundRequest(
                        refund_key=f"order:{self.start.order_no}:closed:{registration_id}",
                        order_no=self.start.order_no,
                        registration_id=registration_id,
                        reason="the registration had closed when the payment arrived",
                    ),
                    summary=f"refund {registration_id}: closed before payment",
                    timeout=timedelta(minutes=2),
                )

    def _set_status(self, status: OrderStatus) -> None:
        self.status = status
        show_status(status.value, f"Order {self.start.order_no}: **{status.value}**")

    @workflow.signal(name=c.SIGNAL_GATEWAY_CONFIRMATION)
    def on_gateway_confirmation(self, confirmation: c.GatewayConfirmation) -> None:
        if confirmation.transaction_id in self._seen:
            return  # the gateway delivered the same callback again
        self._seen.add(confirmation.transaction_id)
        self._arrived.append(confirmation)

    @workflow.query(name=c.QUERY_PROGRESS)
    def progress(self) -> c.OrderProgress:
        return c.OrderProgress(
            paid=self.status is OrderStatus.PAID,
            closed=self.status is OrderStatus.CLOSED,
            transaction_ids=sorted(self._seen),
        )
