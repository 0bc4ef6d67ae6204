"""What finance reads besides orders' ledgers: a transfer's remittance voucher, the refunds with their
state, and who paid: an order with its unit as registered (name, credit code or registration number,
mission), and the names of the units a list shows. An ``APIRouter`` the payment app includes; every
route is for finance staff (their mission's orders), administrators and observers
(``services/payment/auth.py``).

The units are the registration service's (its ``/internal/units/{id}``, with the service token); this
service decides who may see one: finance staff see the units of the orders they see.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from enum import StrEnum
from typing import Annotated
from urllib.parse import quote

from botocore.exceptions import BotoCoreError, ClientError
from fastapi import APIRouter, Depends, Query, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from services.payment.auth import CurrentFinance
from services.payment.invoices_api import InvoiceOut, invoice_views
from services.payment.models import GatewayTransaction, PaymentOrder, Refund
from shared.http import ApiError, ErrorBody, not_found
from shared.records import UnitRecord, ask_registration
from shared.service import ServiceContext, context
from shared.types import FeeKind, OrderStatus, PaymentMethod, QrChannel, UnitKind

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
    items = [_refund_out(refund, order) for refund, order in rows]
    return FinanceRefundsOut(total=int(total or 0), limit=limit, offset=offset, items=items)


def _refund_out(refund: Refund, order: PaymentOrder) -> FinanceRefundOut:
    return FinanceRefundOut(
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


# ------------------------------------------------------------------------------------------ who paid

UNITS_LIMIT = 100  # unit ids in one GET /v1/finance/units: a page of a list
UNITS_IN_FLIGHT = 8  # registration lookups sent at once


class FinanceUnitOut(BaseModel):
    """The unit an order is for, as registered: who paid."""

    unit_id: str
    name: str
    kind: UnitKind
    credit_code: str | None = Field(description="unified social credit code (a unit of the Chinese mainland)")
    foreign_registration_no: str | None = Field(description="a unit registered outside the mainland")
    country: str = Field(description="ISO 3166 alpha-2")
    mission: str
    sub_mission: str | None


class FinanceOrderLineOut(BaseModel):
    """One person the order pays for, with their name as the unit registered them."""

    registration_id: str
    name: str | None = Field(description="None: no longer among the unit's people")
    fee_kind: FeeKind
    amount_fen: int


class FinancePaymentOut(BaseModel):
    """Money that came in for the order: a gateway transaction, or the bank transfer finance confirmed."""

    transaction_id: str
    method: PaymentMethod
    amount_fen: int
    paid_at: datetime


class FinanceOrderDetailOut(BaseModel):
    order_no: str
    edition: str
    unit_id: str
    mission: str = Field(description="the mission the order was made under (finance staff's scope)")
    method: PaymentMethod
    qr_channel: QrChannel | None
    status: OrderStatus
    amount_fen: int
    deadline: datetime
    created_at: datetime
    paid_at: datetime | None
    unit: FinanceUnitOut | None = Field(description="None: the registration service does not know the unit")
    lines: list[FinanceOrderLineOut]
    payments: list[FinancePaymentOut] = Field(description="oldest first")
    refunds: list[FinanceRefundOut] = Field(description="oldest first")
    invoices: list[InvoiceOut] = Field(description="blue and red-letter, in the order they were issued")


async def _registered_unit(ctx: ServiceContext, unit_id: str) -> UnitRecord | None:
    """The unit as the registration service has it; None if it does not know it; 503 if it does not
    answer."""
    content = await ask_registration(ctx, f"/internal/units/{quote(unit_id, safe='')}")
    return None if content is None else UnitRecord.model_validate_json(content)


def _unit_out(unit: UnitRecord) -> FinanceUnitOut:
    return FinanceUnitOut.model_validate(unit.model_dump())


@router.get(
    "/v1/finance/orders/{order_no}", response_model=FinanceOrderDetailOut, responses=ERRORS, tags=["finance"]
)
async def finance_order(order_no: str, ctx: Ctx, staff: CurrentFinance) -> FinanceOrderDetailOut:
    """Who paid what: the order, the people it pays for (with their names), the money that came in,
    the refunds (with their state) and the invoices, and the unit as registered (name, credit code or
    registration number, mission). Finance staff of a mission see their mission's orders only
    (another's is a 404); 503 ``registration_unavailable`` if the registration service does not
    answer."""
    async with ctx.db.sessions() as session:
        order = await session.scalar(
            select(PaymentOrder)
            .where(PaymentOrder.order_no == order_no)
            .options(selectinload(PaymentOrder.items), selectinload(PaymentOrder.invoices))
        )
        if order is None or not staff.sees(order.mission):
            raise not_found("order", "订单")  # before asking: nothing of another mission's is read
        transactions = (
            await session.scalars(
                select(GatewayTransaction)
                .where(GatewayTransaction.order_no == order_no)
                .order_by(GatewayTransaction.paid_at, GatewayTransaction.transaction_id)
            )
        ).all()
        refunds = (
            await session.scalars(
                select(Refund)
                .where(Refund.order_no == order_no)
                .order_by(Refund.created_at, Refund.refund_no)
            )
        ).all()
    unit = await _registered_unit(ctx, order.unit_id)
    names = {person.registration_id: person.name for person in unit.people} if unit else {}
    payments = [
        FinancePaymentOut(
            transaction_id=tx.transaction_id,
            method=order.method,
            amount_fen=tx.amount_fen,
            paid_at=tx.paid_at,
        )
        for tx in transactions
    ]
    # A confirmed bank transfer (or a payment taken in without a callback) is the order's own record.
    if (
        order.transaction_id
        and order.paid_at
        and order.transaction_id not in {t.transaction_id for t in transactions}
    ):
        payments.append(
            FinancePaymentOut(
                transaction_id=order.transaction_id,
                method=order.method,
                amount_fen=order.amount_fen,
                paid_at=order.paid_at,
            )
        )
    return FinanceOrderDetailOut(
        order_no=order.order_no,
        edition=order.edition,
        unit_id=order.unit_id,
        mission=order.mission,
        method=order.method,
        qr_channel=order.qr_channel,
        status=order.status,
        amount_fen=order.amount_fen,
        deadline=order.deadline,
        created_at=order.created_at,
        paid_at=order.paid_at,
        unit=_unit_out(unit) if unit else None,
        lines=[
            FinanceOrderLineOut(
                registration_id=item.registration_id,
                name=names.get(item.registration_id),
                fee_kind=item.fee_kind,
                amount_fen=item.amount_fen,
            )
            for item in order.items
        ],
        payments=payments,
        refunds=[_refund_out(refund, order) for refund in refunds],
        invoices=invoice_views(list(order.invoices)),
    )


@router.get("/v1/finance/units", response_model=list[FinanceUnitOut], responses=ERRORS, tags=["finance"])
async def finance_units(
    ctx: Ctx,
    staff: CurrentFinance,
    unit_id: Annotated[
        list[str] | None, Query(max_length=UNITS_LIMIT, description="repeat for each unit")
    ] = None,
) -> list[FinanceUnitOut]:
    """The units a page of orders, transfers or refunds names, as registered, in the order asked: one
    request for a page rather than one per row. Only units with an order the caller sees are answered;
    any other id (another mission's, unknown) is left out. 503 ``registration_unavailable`` if the
    registration service does not answer."""
    wanted = list(dict.fromkeys(unit_id or ()))
    if not wanted:
        return []
    query = select(PaymentOrder.unit_id).where(PaymentOrder.unit_id.in_(wanted)).distinct()
    if (mission := staff.mission_filter()) is not None:
        query = query.where(PaymentOrder.mission == mission)
    async with ctx.db.sessions() as session:
        visible = set(await session.scalars(query))
    in_flight = asyncio.Semaphore(UNITS_IN_FLIGHT)

    async def one(unit: str) -> UnitRecord | None:
        async with in_flight:
            return await _registered_unit(ctx, unit)

    found = await asyncio.gather(*(one(unit) for unit in wanted if unit in visible))
    return [_unit_out(unit) for unit in found if unit is not None]
