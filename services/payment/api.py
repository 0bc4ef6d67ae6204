"""The payment service's HTTP API: payment orders, and the gateway's callbacks."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import httpx
from fastapi import Depends, Header, Request
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from services.payment import signing
from services.payment.activities import gateway_for
from services.payment.gateway import Callback
from services.payment.models import GatewayTransaction, OrderItem, PaymentOrder
from shared import contracts as c
from shared.db import utcnow
from shared.http import ApiError, ErrorBody, internal_headers, not_found
from shared.ids import new_id
from shared.records import UnitMembersRecord
from shared.service import ServiceContext, context, create_service_app
from shared.temporal import payment_order_workflow_id, start_workflow
from shared.types import FeeKind, OrderStatus, PaymentMethod, QrChannel, RegistrationStatus

app = create_service_app(
    "payment",
    title="Payment",
    description="A unit pays for its unpaid people: QR code (UnionPay, WeChat Pay, Alipay) through the gateway.",
)
Ctx = Annotated[ServiceContext, Depends(context)]
ERRORS: dict[int | str, dict[str, object]] = {code: {"model": ErrorBody} for code in (404, 409, 422)}


class OrderIn(BaseModel):
    unit_id: str
    registration_ids: list[str] = Field(min_length=1, max_length=500)
    method: Literal[PaymentMethod.QR] = PaymentMethod.QR
    qr_channel: QrChannel = QrChannel.UNIONPAY


class OrderItemOut(BaseModel):
    registration_id: str
    fee_kind: str
    amount_fen: int


class OrderOut(BaseModel):
    order_no: str
    unit_id: str
    method: PaymentMethod
    qr_channel: QrChannel | None
    amount_fen: int
    status: OrderStatus
    deadline: datetime
    qr_payload: str | None
    transaction_id: str | None
    paid_at: datetime | None
    items: list[OrderItemOut]


def _order_out(order: PaymentOrder) -> OrderOut:
    return OrderOut(
        order_no=order.order_no,
        unit_id=order.unit_id,
        method=order.method,
        qr_channel=order.qr_channel,
        amount_fen=order.amount_fen,
        status=order.status,
        deadline=order.deadline,
        qr_payload=order.qr_payload,
        transaction_id=order.transaction_id,
        paid_at=order.paid_at,
        items=[
            OrderItemOut(registration_id=i.registration_id, fee_kind=i.fee_kind, amount_fen=i.amount_fen)
            for i in order.items
        ],
    )


async def _load(ctx: ServiceContext, **where: str) -> PaymentOrder | None:
    async with ctx.db.sessions() as session:
        query = select(PaymentOrder).options(selectinload(PaymentOrder.items))
        for column, value in where.items():
            query = query.where(getattr(PaymentOrder, column) == value)
        return await session.scalar(query)


async def _unpaid_members(ctx: ServiceContext, unit_id: str) -> tuple[str, dict[str, FeeKind]]:
    """The unit's mission and its people who may be paid for now (registration id -> fee kind),
    asked of the registration service."""
    response = await ctx.http.get(
        f"{ctx.settings.registration_url}/internal/units/{unit_id}/registrations",
        params={"status": RegistrationStatus.UNPAID.value},
        headers=internal_headers(ctx.settings),
    )
    if response.status_code == 404:
        raise not_found("unit", "单位")
    response.raise_for_status()
    unit = UnitMembersRecord.model_validate_json(response.content)
    return unit.mission, {member.registration_id: member.fee_kind for member in unit.members}


@app.post("/v1/orders", status_code=201, response_model=OrderOut, responses=ERRORS, tags=["orders"])
async def create_order(
    body: OrderIn,
    ctx: Ctx,
    idempotency_key: Annotated[str | None, Header(max_length=100)] = None,
) -> OrderOut:
    """Pay for a chosen set of the unit's unpaid people in one order. The same Idempotency-Key
    returns the same order, so a double click pays once."""
    if idempotency_key and (existing := await _load(ctx, idempotency_key=idempotency_key)):
        return _order_out(existing)
    edition = ctx.edition
    deadline = edition.payment_deadline(body.method)
    if utcnow() >= deadline:
        closed = edition.local(deadline)
        raise ApiError(
            409,
            "payment_closed",
            f"Payment by {body.method.value} closed at {closed:%Y-%m-%d %H:%M} Beijing time",
            f"该缴费方式已于北京时间{closed:%Y-%m-%d %H:%M}截止",
        )
    mission, unpaid = await _unpaid_members(ctx, body.unit_id)
    not_payable = sorted(set(body.registration_ids) - set(unpaid))
    if not_payable:
        raise ApiError(
            409,
            "not_unpaid",
            f"not unpaid members of the unit: {', '.join(not_payable)}",
            f"以下人员不属于该单位或不在待缴费状态：{', '.join(not_payable)}",
            field="registration_ids",
        )
    async with ctx.db.sessions() as session:
        in_open_order = (
            await session.scalars(
                select(OrderItem.registration_id)
                .join(PaymentOrder)
                .where(
                    OrderItem.registration_id.in_(body.registration_ids),
                    PaymentOrder.status == OrderStatus.AWAITING_PAYMENT,
                )
            )
        ).all()
    if in_open_order:
        raise ApiError(
            409,
            "already_in_open_order",
            f"already in an open order: {', '.join(sorted(in_open_order))}",
            "部分人员已在待支付订单中",
            field="registration_ids",
        )
    items = [
        OrderItem(registration_id=rid, fee_kind=unpaid[rid], amount_fen=edition.fee(unpaid[rid]))
        for rid in sorted(set(body.registration_ids))
    ]
    order_no = new_id("P")
    order = PaymentOrder(
        order_no=order_no,
        edition=edition.code,
        unit_id=body.unit_id,
        mission=mission,
        method=body.method,
        qr_channel=body.qr_channel,
        amount_fen=sum(item.amount_fen for item in items),
        deadline=deadline,
        idempotency_key=idempotency_key,
        items=items,
    )
    try:
        qr = await gateway_for(ctx).create_qr(
            order_no=order_no,
            amount_fen=order.amount_fen,
            channel=body.qr_channel,
            notify_url=f"{ctx.settings.payment_url}/v1/gateway/notify",
        )
    except httpx.HTTPError as exc:
        raise ApiError(
            503,
            "gateway_unavailable",
            "the payment gateway is not answering; try again",
            "支付网关暂时无法访问，请稍后重试",
        ) from exc
    order.qr_payload = qr.payload
    try:
        async with ctx.db.transaction() as session:
            session.add(order)
            await session.flush()
            await start_workflow(
                ctx.temporal,
                "PaymentOrder",
                c.PaymentOrderStart(
                    edition=edition.code,
                    order_no=order_no,
                    unit_id=body.unit_id,
                    mission=order.mission,
                    method=body.method,
                    amount_fen=order.amount_fen,
                    registration_ids=[item.registration_id for item in items],
                    deadline=deadline,
                ),
                id=payment_order_workflow_id(edition.code, order_no),
                summary=f"Order {order_no} · unit {body.unit_id} · {len(items)} people · {order.amount_fen} fen",
            )
    except IntegrityError:
        # The same Idempotency-Key in a concurrent request (a double click): that order stands.
        existing = await _load(ctx, idempotency_key=idempotency_key) if idempotency_key else None
        if existing is None:
            raise
        return _order_out(existing)
    return _order_out(order)


@app.get("/v1/orders/{order_no}", response_model=OrderOut, responses=ERRORS, tags=["orders"])
async def get_order(order_no: str, ctx: Ctx) -> OrderOut:
    order = await _load(ctx, order_no=order_no)
    if order is None:
        raise not_found("order", "订单")
    return _order_out(order)


@app.post("/v1/gateway/notify", response_class=PlainTextResponse, tags=["gateway"])
async def gateway_notify(request: Request, ctx: Ctx) -> str:
    """The gateway's signed payment notice. Verified, stored once per transaction, passed to the
    order's workflow (which counts each transaction once), acknowledged with ``success``."""
    body = await request.body()
    try:
        signing.verify(ctx.settings.gateway_key.get_secret_value(), dict(request.headers), body, utcnow())
        callback = Callback.model_validate_json(body)
    except signing.SignatureError as exc:
        raise ApiError(401, exc.code, str(exc)) from exc
    except ValidationError as exc:
        raise ApiError(422, "invalid_callback", "the callback body is not understood") from exc
    if callback.merchant_id != ctx.settings.gateway_merchant_id:
        raise ApiError(403, "unknown_merchant", "the callback is for another merchant")
    order = await _load(ctx, order_no=callback.order_no)
    if order is None:
        raise not_found("order", "订单")
    paid_at = datetime.fromisoformat(callback.paid_at)
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
    await ctx.temporal.get_workflow_handle(payment_order_workflow_id(order.edition, order.order_no)).signal(
        c.SIGNAL_GATEWAY_CONFIRMATION,
        c.GatewayConfirmation(
            transaction_id=callback.transaction_id, amount_fen=callback.amount_fen, paid_at=paid_at
        ),
    )
    return "success"
