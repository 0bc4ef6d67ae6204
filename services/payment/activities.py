"""Activities the workflows call on the payment service: booking payments, closing orders, refunds."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from services.payment.gateway import PaymentGateway, SandboxGateway
from services.payment.models import OrderItem, PaymentOrder, Refund
from shared import contracts as c
from shared.db import utcnow
from shared.ids import new_id
from shared.service import ServiceContext
from shared.types import OrderStatus


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
            if order.status is not OrderStatus.PAID:
                order.status = OrderStatus.PAID
                order.transaction_id = paid.transaction_id
                order.paid_at = paid.paid_at

    @activity.defn(name=c.CLOSE_ORDER.name)
    async def close_order(self, close: c.CloseOrder) -> None:
        async with self.ctx.db.transaction() as session:
            order = await session.get(PaymentOrder, close.order_no)
            if order is not None and order.status is OrderStatus.AWAITING_PAYMENT:
                order.status = OrderStatus.CLOSED

    @activity.defn(name=c.REFUND.name)
    async def refund(self, request: c.RefundRequest) -> c.RefundResult:
        """Refund once per key: the row is written first, then the gateway is asked (idempotent by
        refund number on its side too), so a retry after a crash never pays out twice."""
        async with self.ctx.db.transaction() as session:
            refund = await session.scalar(select(Refund).where(Refund.refund_key == request.refund_key))
            if refund is None:
                order = await session.get(PaymentOrder, request.order_no)
                transaction_id = request.transaction_id or (order.transaction_id if order else None)
                if order is None or transaction_id is None:
                    raise ApplicationError(
                        f"order {request.order_no} has no payment to refund", non_retryable=True
                    )
                if request.registration_id is not None:  # that person's share of the order
                    item = await session.get(OrderItem, (request.order_no, request.registration_id))
                    if item is None:
                        raise ApplicationError("the person is not in the order", non_retryable=True)
                    amount = item.amount_fen
                elif request.amount_fen is not None:
                    amount = request.amount_fen
                else:
                    raise ApplicationError("a refund needs a person or an amount", non_retryable=True)
                refund = Refund(
                    refund_no=new_id("F"),
                    refund_key=request.refund_key,
                    order_no=request.order_no,
                    registration_id=request.registration_id,
                    transaction_id=transaction_id,
                    amount_fen=amount,
                    reason=request.reason,
                )
                session.add(refund)
        if not refund.succeeded:
            outcome = await self.gateway.refund(
                refund_no=refund.refund_no, transaction_id=refund.transaction_id, amount_fen=refund.amount_fen
            )
            async with self.ctx.db.transaction() as session:
                stored = await session.get(Refund, refund.refund_no)
                assert stored is not None
                stored.succeeded = outcome.succeeded
                stored.completed_at = utcnow()
            if not outcome.succeeded:
                raise ApplicationError("the gateway refused the refund; retrying")
        return c.RefundResult(refund_no=refund.refund_no, succeeded=True)


def activities(ctx: ServiceContext) -> Sequence[Callable[..., Any]]:
    acts = PaymentActivities(ctx, gateway_for(ctx))
    return [acts.mark_order_paid, acts.close_order, acts.refund]
