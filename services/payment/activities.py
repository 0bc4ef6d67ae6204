"""Activities the workflows call on the payment service: booking payments, bank transfer vouchers
and finance's decisions on them, closing orders, refunds (and the invoices they change), and
telling open orders about extended payment deadlines."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from services.payment import refunds
from services.payment.gateway import PaymentGateway, SandboxGateway
from services.payment.models import OPEN_ORDER_STATUSES, PaymentOrder, TransferDecisionRecord
from shared import contracts as c
from shared.announcements import PAGE_SIZE, announce_deadlines
from shared.metrics import PAYMENT_AMOUNT, PAYMENTS_CONFIRMED
from shared.service import ServiceContext
from shared.temporal import payment_order_workflow_id
from shared.types import Decision, OrderStatus


def gateway_for(ctx: ServiceContext) -> PaymentGateway:
    settings = ctx.settings
    return SandboxGateway(
        ctx.http, settings.gateway_url, settings.gateway_merchant_id, settings.gateway_key.get_secret_value()
    )


class PaymentActivities:
    def __init__(self, ctx: ServiceContext, gateway: PaymentGateway) -> None:
        self.ctx = ctx
        self.gateway = gateway

    @activity.defn(name=c.MARK_ORDER_PAID.name)
    async def mark_order_paid(self, paid: c.MarkOrderPaid) -> None:
        async with self.ctx.db.transaction() as session:
            order = await session.get(PaymentOrder, paid.order_no)
            if order is None:
                raise ApplicationError(f"unknown order {paid.order_no}", non_retryable=True)
            if order.status is OrderStatus.PAID:
                return
            order.status = OrderStatus.PAID
            order.transaction_id = paid.transaction_id
            order.paid_at = paid.paid_at
            method, amount_fen = order.method.value, order.amount_fen
        PAYMENTS_CONFIRMED.labels(method).inc()  # committed, and new: a retry returned above
        PAYMENT_AMOUNT.labels(method).inc(amount_fen)

    @activity.defn(name=c.CLOSE_ORDER.name)
    async def close_order(self, close: c.CloseOrder) -> None:
        async with self.ctx.db.transaction() as session:
            order = await session.get(PaymentOrder, close.order_no)
            if order is not None and order.status in OPEN_ORDER_STATUSES:
                order.status = OrderStatus.CLOSED

    @activity.defn(name=c.RECORD_VOUCHER.name)
    async def record_voucher(self, voucher: c.RecordVoucher) -> None:
        """A bank transfer's remittance voucher was accepted by the order's workflow: finance is to
        confirm it. Repeating it changes nothing; a paid or closed order is left as it is."""
        async with self.ctx.db.transaction() as session:
            order = await session.get(PaymentOrder, voucher.order_no)
            if order is None:
                raise ApplicationError(f"unknown order {voucher.order_no}", non_retryable=True)
            if order.status not in OPEN_ORDER_STATUSES:
                return
            if order.voucher_key != voucher.voucher_key:
                order.voucher_key = voucher.voucher_key
                order.voucher_uploaded_at = voucher.at
            order.status = OrderStatus.AWAITING_CONFIRMATION

    @activity.defn(name=c.RECORD_TRANSFER_DECISION.name)
    async def record_transfer_decision(self, decided: c.RecordTransferDecision) -> None:
        """Finance's decision on a transfer, kept once (by order and instant) in the audit trail. A
        rejection makes the order unpaid again (the buyer may upload another voucher until the
        deadline); an approval is booked by ``mark_order_paid`` with the bank reference."""
        async with self.ctx.db.transaction() as session:
            order = await session.get(PaymentOrder, decided.order_no)
            if order is None:
                raise ApplicationError(f"unknown order {decided.order_no}", non_retryable=True)
            already = await session.scalar(
                select(TransferDecisionRecord.id).where(
                    TransferDecisionRecord.order_no == decided.order_no,
                    TransferDecisionRecord.decided_at == decided.decided_at,
                )
            )
            if already is not None:
                return
            session.add(
                TransferDecisionRecord(
                    order_no=decided.order_no,
                    decision=decided.decision,
                    reason=decided.reason,
                    reviewer=decided.reviewer,
                    bank_reference=decided.bank_reference,
                    voucher_key=order.voucher_key,
                    decided_at=decided.decided_at,
                )
            )
            if decided.decision is Decision.REJECT and order.status is OrderStatus.AWAITING_CONFIRMATION:
                order.status = OrderStatus.AWAITING_PAYMENT

    @activity.defn(name=c.REFUND.name)
    async def refund(self, request: c.RefundRequest) -> c.RefundResult:
        try:
            return await refunds.refund(
                self.ctx.db,
                self.gateway,
                request,
                store=self.ctx.store,
                bucket=self.ctx.settings.bucket_invoices,
            )
        except refunds.RefundError as exc:
            raise ApplicationError(str(exc), non_retryable=not exc.retryable) from exc

    @activity.defn(name=c.ANNOUNCE_DEADLINES_TO_ORDERS.name)
    async def announce_deadlines(self, announcement: c.AnnounceDeadlines) -> c.Announced:
        """Signal every open order of the edition with the extended deadlines, in pages by order
        number (resumed after the last page on a retry); an order whose workflow has closed is skipped."""

        async def next_page(last: str) -> list[tuple[str, str]]:
            async with self.ctx.db.transaction() as session:
                page = (
                    await session.scalars(
                        select(PaymentOrder)
                        .where(
                            PaymentOrder.edition == announcement.edition,
                            PaymentOrder.status.in_(OPEN_ORDER_STATUSES),
                            PaymentOrder.order_no > last,
                        )
                        .order_by(PaymentOrder.order_no)
                        .limit(PAGE_SIZE)
                    )
                ).all()
                for order in page:  # what the buyer sees: the order's deadline, never shortened
                    order.deadline = max(order.deadline, announcement.deadlines.closes(order.method))
            return [(o.order_no, payment_order_workflow_id(announcement.edition, o.order_no)) for o in page]

        return await announce_deadlines(self.ctx.temporal, announcement.deadlines, next_page)


def activities(ctx: ServiceContext) -> Sequence[Callable[..., Any]]:
    acts = PaymentActivities(ctx, gateway_for(ctx))
    return [
        acts.mark_order_paid,
        acts.close_order,
        acts.record_voucher,
        acts.record_transfer_decision,
        acts.refund,
        acts.announce_deadlines,
    ]
