"""Money the gateway says arrived, however we learn of it: its signed callback, or the query API when
the callback never came (reconciliation).

``transaction_arrived`` is the one code path for "a gateway transaction arrived": stored once per
transaction id, passed to the order's workflow (which counts each transaction once), and refunded
here if the order's workflow has closed and did not deal with it. ``reconcile`` asks the gateway for
an order's transactions and passes on the ones we never heard of; ``router`` lets finance ask for it.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Protocol

import httpx
from fastapi import APIRouter, Depends
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from temporalio.service import RPCError, RPCStatusCode

from services.payment import refunds
from services.payment.activities import gateway_for
from services.payment.gateway import Callback, GatewayOrder
from services.payment.models import GatewayTransaction, PaymentOrder, Refund
from shared import contracts as c
from shared.http import ApiError, not_found
from shared.service import ServiceContext, context
from shared.temporal import payment_order_workflow_id

log = logging.getLogger(__name__)


async def transaction_arrived(ctx: ServiceContext, order: PaymentOrder, callback: Callback) -> bool:
    """A gateway transaction for ``order`` arrived (callback or query): stored once, signalled to the
    order's workflow every time (it counts each transaction id once), refunded here if the workflow
    has closed. True if the transaction was new to us. Raises ``ApiError(503, "refund_pending")``
    when money for a closed order could not be refunded yet (the gateway, or finance, tries again)."""
    paid_at = datetime.fromisoformat(callback.paid_at)
    new = False
    try:
        async with ctx.db.transaction() as session:
            if await session.get(GatewayTransaction, callback.transaction_id) is None:
                session.add(
                    GatewayTransaction(
                        transaction_id=callback.transaction_id,
                        order_no=callback.order_no,
                        amount_fen=callback.amount_fen,
                        paid_at=paid_at,
                        callback=callback.model_dump(),
                    )
                )
                new = True
    except IntegrityError:  # the same transaction stored by a concurrent delivery
        new = False
    try:
        await ctx.temporal.get_workflow_handle(
            payment_order_workflow_id(order.edition, order.order_no)
        ).signal(
            c.SIGNAL_GATEWAY_CONFIRMATION,
            c.GatewayConfirmation(
                transaction_id=callback.transaction_id, amount_fen=callback.amount_fen, paid_at=paid_at
            ),
        )
    except RPCError as exc:
        if exc.status is not RPCStatusCode.NOT_FOUND:
            raise
        await refund_late(ctx, order, callback)
    return new


async def refund_late(ctx: ServiceContext, order: PaymentOrder, callback: Callback) -> None:
    """Money for an order whose workflow has closed: nobody else will answer it, so it goes back,
    unless the workflow already dealt with that transaction (it paid the order, or was refunded)."""
    async with ctx.db.sessions() as session:
        handled = order.transaction_id == callback.transaction_id or (
            await session.scalar(
                select(Refund.refund_no).where(
                    Refund.transaction_id == callback.transaction_id,
                    Refund.refund_key != f"late:{callback.transaction_id}",
                )
            )
        )
    if handled:
        return
    request = c.RefundRequest(
        refund_key=f"late:{callback.transaction_id}",
        order_no=order.order_no,
        transaction_id=callback.transaction_id,
        amount_fen=callback.amount_fen,
        reason="the order had closed when the payment arrived",
    )
    try:
        result = await refunds.refund(ctx.db, gateway_for(ctx), request)
    except (refunds.RefundError, httpx.HTTPError) as exc:
        log.warning("late payment %s could not be refunded yet: %s", callback.transaction_id, exc)
        raise ApiError(
            503,
            "refund_pending",
            "the late payment could not be refunded yet; try again",
            "退款暂未完成，请稍后重试",
        ) from exc
    log.info(
        "late payment %s for closed order %s refunded as %s",
        callback.transaction_id,
        order.order_no,
        result.refund_no,
    )


async def reconcile(ctx: ServiceContext, order: PaymentOrder) -> list[str]:
    """Ask the gateway for the order's transactions; each we have no record of (its callback was lost,
    or is still on its way) is handled as if its callback had come. The ids of those, in the
    gateway's order."""
    return await _take_in(ctx, order, await gateway_for(ctx).query_order(order.order_no))


async def _take_in(ctx: ServiceContext, order: PaymentOrder, known: GatewayOrder | None) -> list[str]:
    if known is None:
        return []
    async with ctx.db.sessions() as session:
        recorded = set(
            await session.scalars(
                select(GatewayTransaction.transaction_id).where(GatewayTransaction.order_no == order.order_no)
            )
        )
    found: list[str] = []
    for transaction in known.transactions:
        if transaction.order_no != order.order_no or transaction.transaction_id in recorded:
            continue
        if transaction.merchant_id != ctx.settings.gateway_merchant_id:
            continue
        if await transaction_arrived(ctx, order, transaction):
            found.append(transaction.transaction_id)
    return found


# ------------------------------------------------------------------------------------------ route


class MissionScope(Protocol):
    def sees(self, mission: str) -> bool: ...


def finance_placeholder() -> MissionScope:
    """Finance's authentication (a staff member who may decide, and the missions they see), overridden
    (``app.dependency_overrides``) by the app. Until then the route is closed."""
    raise ApiError(403, "finance_only", "only finance may reconcile an order", "仅财务人员可对账")


class ReconcileOut(BaseModel):
    order_no: str
    gateway_knows_order: bool
    gateway_transactions: list[str]  # every transaction the gateway reports for the order
    found: list[str]  # those we had no record of: now recorded and passed to the order's workflow


router = APIRouter(tags=["gateway"])


@router.post("/v1/orders/{order_no}/reconcile", response_model=ReconcileOut)
async def reconcile_order(
    order_no: str,
    ctx: Annotated[ServiceContext, Depends(context)],
    finance: Annotated[MissionScope, Depends(finance_placeholder)],
) -> ReconcileOut:
    """Finance: ask the gateway what it has for the order, and take in any payment whose callback
    never came. Safe to repeat: a transaction already recorded is not passed on again."""
    async with ctx.db.sessions() as session:
        order = await session.get(PaymentOrder, order_no)
    if order is None or not finance.sees(order.mission):  # another mission's: as if it did not exist
        raise not_found("order", "订单")
    known = await gateway_for(ctx).query_order(order_no)
    found = await _take_in(ctx, order, known)
    return ReconcileOut(
        order_no=order_no,
        gateway_knows_order=known is not None,
        gateway_transactions=[t.transaction_id for t in known.transactions] if known else [],
        found=found,
    )
