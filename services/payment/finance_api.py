"""What finance reads besides orders and their ledgers: a transfer's remittance voucher, and the refunds
with their state. An ``APIRouter`` the payment app includes; every route is for finance staff (their
mission's orders), administrators and observers (``services/payment/auth.py``)."""

from __future__ import annotations

import logging
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from botocore.exceptions import BotoCoreError, ClientError
from fastapi import APIRouter, Depends, Query, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from services.payment.auth import CurrentFinance
from services.payment.models import PaymentOrder, Refund
from shared.http import ApiError, ErrorBody, not_found
from shared.service import ServiceContext, context
from shared.types import PaymentMethod

log = logging.getLogger(__name__)
router = APIRouter()
Ctx = Annotated[ServiceContext, Depends(context)]
ERRORS: dict[int | str, dict[str, object]] = {code: {"model": ErrorBody} for code in (401, 403, 404, 503)}
# A voucher's type by its key's extension, as the upload route names them (api.VOUCHER_TYPES): the
# type the uploader's store entry claims is not trusted with a staff member's browser.
VOUCHER_TYPES = {"pdf": "application/pdf", "jpg": "image/jpeg"}


# ------------------------------------------------------------------------------------------ vouchers


def _no_voucher() -> ApiError:
    return ApiError(404, "no_voucher", "this order has no such remittance voucher", "该订单没有此汇款凭证")


@router.get(
    "/v1/transfers/{order_no}/voucher",
    response_class=Response,
    responses={
        200: {"description": "the voucher", "content": {"application/pdf": {}, "image/jpeg": {}}},
        **ERRORS,
    },
    tags=["transfers"],
)
async def transfer_voucher(
    order_no: str,
    ctx: Ctx,
    staff: CurrentFinance,
    key: Annotated[str | None, Query(max_length=200, description="an earlier voucher of the order")] = None,
) -> StreamingResponse:
    """The bank transfer's remittance voucher (PDF or JPEG) as the unit uploaded it, streamed from the
    store: the latest, or with ``key`` one that finance decided on before (``transfer_decisions``).
    Finance staff of a mission see their mission's orders' only."""
    async with ctx.db.sessions() as session:
        order = await session.scalar(
            select(PaymentOrder)
            .where(PaymentOrder.order_no == order_no)
            .options(selectinload(PaymentOrder.transfer_decisions))
        )
    if order is None or not staff.sees(order.mission):
        raise not_found("order", "订单")
    if order.method is not PaymentMethod.TRANSFER:
        raise _no_voucher()
    known = {order.voucher_key, *(d.voucher_key for d in order.transfer_decisions)} - {None}
    wanted = key or order.voucher_key
    # Only a key the order names: never another order's object by a guessed key.
    if wanted is None or wanted not in known:
        raise _no_voucher()
    media_type = VOUCHER_TYPES.get(wanted.rsplit(".", 1)[-1])
    if media_type is None:
        raise _no_voucher()
    try:
        stored = await ctx.store.open(ctx.settings.bucket_vouchers, wanted)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            raise _no_voucher() from exc
        raise
    except BotoCoreError as exc:
        log.warning("object store unreachable for %s: %s", wanted, exc)
        raise ApiError(
            503, "store_unavailable", "the voucher store did not answer", "凭证存储暂时无法访问"
        ) from exc
    filename = f"{order.order_no}-voucher.{wanted.rsplit('.', 1)[-1]}"
    return StreamingResponse(
        stored.chunks,
        media_type=media_type,
        headers={
            "Content-Length": str(stored.length),
            "Content-Disposition": f'inline; filename="{filename}"',
            # A unit's document, with its bank account: kept by no shared cache.
            "Cache-Control": "private, max-age=300",
            "X-Content-Type-Options": "nosniff",
        },
    )


# ------------------------------------------------------------------------------------------ refunds


class RefundState(StrEnum):
    DONE = "done"  # the gateway paid the money back
    FAILED = "failed"  # the gateway refused (or the last attempt failed); tried again
    PENDING = "pending"  # not answered yet (asked, or its answer timed out)


class FinanceRefundOut(BaseModel):
    refund_no: str
    order_no: str
    unit_id: str
    mission: str
    registration_id: str | None  # a person's share; None: money that matched no one (twice, too late)
    transaction_id: str
    amount_fen: int
    reason: str
    status: RefundState
    attempts: int  # times the gateway was asked
    created_at: datetime
    completed_at: datetime | None  # the gateway's last answer


class FinanceRefundsOut(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[FinanceRefundOut]


def _state(refund: Refund) -> RefundState:
    """As the ledger tells them apart (``invoices_api.order_ledger``)."""
    if refund.succeeded:
        return RefundState.DONE
    return RefundState.FAILED if refund.completed_at else RefundState.PENDING


@router.get("/v1/finance/refunds", response_model=FinanceRefundsOut, responses=ERRORS, tags=["finance"])
async def finance_refunds(
    ctx: Ctx,
    staff: CurrentFinance,
    status: Annotated[RefundState | None, Query()] = None,
    order_no: Annotated[str | None, Query(max_length=32)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> FinanceRefundsOut:
    """Refunds, newest first: their state (``done``, ``failed``: the gateway refused and it is tried
    again, ``pending``: not answered yet), order, amount, reason and how often the gateway was asked.
    ``status`` and ``order_no`` filter. Finance staff of a mission see their mission's orders' only."""
    query = select(Refund, PaymentOrder).join(PaymentOrder, PaymentOrder.order_no == Refund.order_no)
    if (mission := staff.mission_filter()) is not None:
        query = query.where(PaymentOrder.mission == mission)
    if order_no:
        query = query.where(Refund.order_no == order_no)
    if status is RefundState.DONE:
        query = query.where(Refund.succeeded.is_(True))
    elif status is RefundState.FAILED:
        query = query.where(Refund.succeeded.is_(False), Refund.completed_at.is_not(None))
    elif status is RefundState.PENDING:
        query = query.where(Refund.succeeded.is_(False), Refund.completed_at.is_(None))
    async with ctx.db.sessions() as session:
        total = await session.scalar(select(func.count()).select_from(query.subquery()))
        rows = (
            await session.execute(
                query.order_by(Refund.created_at.desc(), Refund.refund_no).limit(limit).offset(offset)
            )
        ).all()
    items = [
        FinanceRefundOut(
            refund_no=refund.refund_no,
            order_no=refund.order_no,
            unit_id=order.unit_id,
            mission=order.mission,
            registration_id=refund.registration_id,
            transaction_id=refund.transaction_id,
            amount_fen=refund.amount_fen,
            reason=refund.reason,
            status=_state(refund),
            attempts=refund.attempts,
            created_at=refund.created_at,
            completed_at=refund.completed_at,
        )
        for refund, order in rows
    ]
    return FinanceRefundsOut(total=int(total or 0), limit=limit, offset=offset, items=items)
