"""The payment service's HTTP API: payment orders (QR code, B2B gateway, bank transfer), transfer
vouchers and finance's confirmation of them, invoices, and the gateway's callbacks."""

from __future__ import annotations

import logging
import secrets
from datetime import datetime
from typing import Annotated, Literal

import httpx
from fastapi import Body, Depends, Header, Query, Request
from fastapi.responses import PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from services.payment import finance_api, invoices_api, pages, reconcile
from services.payment.activities import gateway_for
from services.payment.auth import (
    CurrentBuyer,
    CurrentFinance,
    FinanceStaff,
    buyer_bearer,
    buyer_for_token,
    finance_for_token,
    owns_unit,
    require_finance_decider,
)
from services.payment.gateway import B2BNotOpened, Callback, QrCode
from services.payment.models import (
    OPEN_ORDER_STATUSES,
    OrderItem,
    PaymentOrder,
)
from services.payment.reconcile import transaction_arrived
from shared import contracts as c
from shared import signing, web
from shared.catalogue import Edition
from shared.db import utcnow
from shared.http import ApiError, ErrorBody, execute_update, internal_headers, not_found
from shared.ids import new_id
from shared.records import BuyerSession, UnitMembersRecord
from shared.service import ServiceContext, context, create_service_app
from shared.signing import NonceCache
from shared.temporal import payment_order_workflow_id, start_workflow
from shared.types import Decision, FeeKind, OrderStatus, PaymentMethod, QrChannel, RegistrationStatus

log = logging.getLogger(__name__)

app = create_service_app(
    "payment",
    title="Payment",
    description=(
        "A unit pays for its unpaid people: QR code (UnionPay, WeChat Pay, Alipay) or B2B through the "
        "gateway, or by bank transfer with a remittance voucher that finance confirms. Paid orders get "
        "electronic VAT invoices."
    ),
)
Ctx = Annotated[ServiceContext, Depends(context)]
app.include_router(invoices_api.router)
app.include_router(reconcile.router)
app.include_router(finance_api.router)
app.include_router(pages.router)
web.mount_static(app)


async def caller_scope(
    ctx: Ctx, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(buyer_bearer)]
) -> invoices_api.OrderScope:
    """Whose orders the caller sees: a buyer their unit's; finance staff their mission's (or all)."""
    token = credentials.credentials if credentials else None
    try:
        buyer = await buyer_for_token(ctx, token)
    except ApiError as refused:
        if refused.status != 401:
            raise
    else:
        return invoices_api.OrderScope(unit_id=buyer.unit_id or "")
    staff = await finance_for_token(ctx, token)
    own = staff.mission_filter()
    return invoices_api.OrderScope(missions={own} if own else None)


app.dependency_overrides[invoices_api.order_scope] = caller_scope


def finance_decider(staff: CurrentFinance) -> FinanceStaff:
    require_finance_decider(staff)
    return staff


app.dependency_overrides[reconcile.finance_placeholder] = finance_decider
# Nonces of the gateway's signed callbacks seen within the signature window: a replay is refused (the
# gateway signs every delivery, a repeated one too, afresh).
REPLAYS = NonceCache()
ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorBody} for code in (401, 403, 404, 409, 422, 503)
}
VOUCHER_UPLOAD_SECONDS = 900
VOUCHER_MAX_BYTES = 10 * 1024 * 1024
VOUCHER_TYPES = {"application/pdf": "pdf", "image/jpeg": "jpg"}


# ------------------------------------------------------------------------------------------ schemas


class OrderIn(BaseModel):
    unit_id: str
    registration_ids: list[str] = Field(min_length=1, max_length=500)
    method: PaymentMethod = PaymentMethod.QR
    qr_channel: QrChannel | None = None  # QR codes only; default UnionPay


class OrderItemOut(BaseModel):
    registration_id: str
    fee_kind: str
    amount_fen: int


class TransferDecisionOut(BaseModel):
    decision: Decision
    reason: str | None
    reviewer: str
    bank_reference: str | None
    voucher_key: str | None
    decided_at: datetime


class OrderOut(BaseModel):
    order_no: str
    unit_id: str
    method: PaymentMethod
    qr_channel: QrChannel | None
    amount_fen: int
    status: OrderStatus
    deadline: datetime  # the method's: a transfer's is also the last moment to upload its voucher
    qr_payload: str | None  # QR code or B2B: where to pay
    transaction_id: str | None  # the gateway transaction, or the bank reference of a confirmed transfer
    paid_at: datetime | None
    voucher_key: str | None
    voucher_uploaded_at: datetime | None
    items: list[OrderItemOut]
    invoices: list[invoices_api.InvoiceOut]  # blue and red-letter, as GET .../invoices shows them
    transfer_decisions: list[TransferDecisionOut]


class VoucherUploadIn(BaseModel):
    content_type: Literal["application/pdf", "image/jpeg"] = "application/pdf"


class VoucherUploadOut(BaseModel):
    voucher_key: str  # send it to POST /v1/orders/{order_no}/voucher once uploaded
    url: str
    headers: dict[str, str]
    expires_in: int


class VoucherIn(BaseModel):
    voucher_key: str = Field(min_length=1, max_length=200)


class TransferDecisionIn(BaseModel):
    decision: Decision
    reason: str | None = Field(default=None, max_length=500)
    # Accepted for older clients and ignored: the reviewer recorded is the logged-in staff member.
    reviewer: str | None = Field(default=None, max_length=100, deprecated=True)
    bank_reference: str | None = Field(default=None, max_length=64)


class TransferStatusOut(BaseModel):
    order_no: str
    status: str  # the order's status as its workflow answered


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
        voucher_key=order.voucher_key,
        voucher_uploaded_at=order.voucher_uploaded_at,
        items=[
            OrderItemOut(registration_id=i.registration_id, fee_kind=i.fee_kind, amount_fen=i.amount_fen)
            for i in order.items
        ],
        invoices=invoices_api.invoice_views(list(order.invoices)),
        transfer_decisions=[
            TransferDecisionOut(
                decision=d.decision,
                reason=d.reason,
                reviewer=d.reviewer,
                bank_reference=d.bank_reference,
                voucher_key=d.voucher_key,
                decided_at=d.decided_at,
            )
            for d in order.transfer_decisions
        ],
    )


_WITH_DETAILS = (
    selectinload(PaymentOrder.items),
    selectinload(PaymentOrder.invoices),
    selectinload(PaymentOrder.transfer_decisions),
)


async def _load(ctx: ServiceContext, **where: str) -> PaymentOrder | None:
    async with ctx.db.sessions() as session:
        query = select(PaymentOrder).options(*_WITH_DETAILS)
        for column, value in where.items():
            query = query.where(getattr(PaymentOrder, column) == value)
        return await session.scalar(query)


async def _order(ctx: ServiceContext, order_no: str) -> PaymentOrder:
    order = await _load(ctx, order_no=order_no)
    if order is None:
        raise not_found("order", "订单")
    return order


async def _buyers_order(ctx: ServiceContext, buyer: BuyerSession, order_no: str) -> PaymentOrder:
    """The order, if it is the buyer's unit's; otherwise 404, as if it did not exist."""
    order = await _load(ctx, order_no=order_no)
    if order is None or not owns_unit(buyer, order.unit_id):
        raise not_found("order", "订单")
    return order


# ------------------------------------------------------------------------------------------ deadlines


def edition_deadlines(edition: Edition) -> c.PaymentDeadlines:
    """The deadlines as the edition file states them, before any extension."""
    return c.PaymentDeadlines(**{method.value: edition.payment_deadline(method) for method in PaymentMethod})


async def current_deadlines(ctx: ServiceContext, edition: str) -> c.PaymentDeadlines:
    """The edition's payment deadlines as they stand now (an organiser may have extended them), from
    the registration service; if it knows of none (404), the edition file's."""
    response = await ctx.http.get(
        f"{ctx.settings.registration_url}/internal/editions/{edition}/payment-deadlines",
        headers=internal_headers(ctx.settings),
    )
    if response.status_code == 404:
        return edition_deadlines(ctx.edition)
    response.raise_for_status()
    return c.PaymentDeadlines.model_validate_json(response.content)


def _payment_closed(edition: Edition, method: PaymentMethod, deadline: datetime) -> ApiError:
    closed = edition.local(deadline)
    return ApiError(
        409,
        "payment_closed",
        f"Payment by {method.value} closed at {closed:%Y-%m-%d %H:%M} Beijing time",
        f"该缴费方式已于北京时间{closed:%Y-%m-%d %H:%M}截止",
    )


def _voucher_deadline_passed(edition: Edition, deadline: datetime) -> ApiError:
    closed = edition.local(deadline)
    return ApiError(
        409,
        "voucher_deadline_passed",
        f"Payment by bank transfer and the upload of its voucher closed at {closed:%Y-%m-%d %H:%M} Beijing time",
        f"银行转账及上传汇款凭证已于北京时间{closed:%Y-%m-%d %H:%M}截止",
    )


# ------------------------------------------------------------------------------------------ orders


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


async def _gateway_payment(ctx: ServiceContext, order: PaymentOrder) -> QrCode:
    """Where a QR code or B2B order is paid: asked of the gateway."""
    gateway = gateway_for(ctx)
    notify_url = f"{ctx.settings.payment_url}/v1/gateway/notify"
    try:
        if order.method is PaymentMethod.B2B:
            return await gateway.create_b2b(
                order_no=order.order_no,
                amount_fen=order.amount_fen,
                notify_url=notify_url,
                payer=order.unit_id,
            )
        assert order.qr_channel is not None
        return await gateway.create_qr(
            order_no=order.order_no,
            amount_fen=order.amount_fen,
            channel=order.qr_channel,
            notify_url=notify_url,
        )
    except B2BNotOpened as exc:
        raise ApiError(
            409,
            "b2b_not_opened",
            "the unit has not opened B2B payment (enterprise online banking) with its bank: open it"
            " first, or pay by QR code or bank transfer",
            "贵单位尚未开通企业网银B2B支付服务，请先向开户银行申请开通，或选择扫码支付、银行转账",
            field="method",
        ) from exc
    except httpx.HTTPError as exc:
        raise ApiError(
            503,
            "gateway_unavailable",
            "the payment gateway is not answering; try again",
            "支付网关暂时无法访问，请稍后重试",
        ) from exc


@app.post("/v1/orders", status_code=201, response_model=OrderOut, responses=ERRORS, tags=["orders"])
async def create_order(
    body: OrderIn,
    ctx: Ctx,
    buyer: CurrentBuyer,
    idempotency_key: Annotated[str | None, Header(max_length=100)] = None,
) -> OrderOut:
    """Pay for a chosen set of the unit's unpaid people in one order: by QR code or B2B (the answer
    says where to pay), or by bank transfer (then upload the remittance voucher before the transfer
    deadline; finance confirms it). The same Idempotency-Key returns the same order, so a double
    click pays once."""
    if not owns_unit(buyer, body.unit_id):
        raise not_found("unit", "单位")
    if idempotency_key and (existing := await _load(ctx, idempotency_key=idempotency_key)):
        if not owns_unit(buyer, existing.unit_id):  # another unit's key: its order stays unseen
            raise _idempotency_key_taken()
        return _order_out(existing)
    edition = ctx.edition
    deadline = (await current_deadlines(ctx, edition.code)).closes(body.method)
    if utcnow() >= deadline:
        raise _payment_closed(edition, body.method, deadline)
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
                    PaymentOrder.status.in_(OPEN_ORDER_STATUSES),
                )
            )
        ).all()
    if in_open_order:
        raise ApiError(
            409,
            "already_in_open_order",
            f"already in an open order: {', '.join(sorted(in_open_order))}",
            "部分人员已在待支付或转账待确认的订单中",
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
        qr_channel=(body.qr_channel or QrChannel.UNIONPAY) if body.method is PaymentMethod.QR else None,
        amount_fen=sum(item.amount_fen for item in items),
        status=OrderStatus.AWAITING_PAYMENT,
        deadline=deadline,
        idempotency_key=idempotency_key,
        items=items,
        invoices=[],
        transfer_decisions=[],
    )
    if body.method is not PaymentMethod.TRANSFER:  # a transfer is paid at the bank: nothing to ask
        order.qr_payload = (await _gateway_payment(ctx, order)).payload
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
                    expo_closes=edition.deadlines.expo_closes,
                ),
                id=payment_order_workflow_id(edition.code, order_no),
                summary=(
                    f"Order {order_no} · {body.method.value} · unit {body.unit_id} · {len(items)} people"
                    f" · {order.amount_fen} fen"
                ),
            )
    except IntegrityError:
        # The same Idempotency-Key in a concurrent request (a double click): that order stands.
        existing = await _load(ctx, idempotency_key=idempotency_key) if idempotency_key else None
        if existing is None:
            raise
        if not owns_unit(buyer, existing.unit_id):
            raise _idempotency_key_taken() from None
        return _order_out(existing)
    return _order_out(order)


def _idempotency_key_taken() -> ApiError:
    return ApiError(
        409,
        "idempotency_key_taken",
        "this Idempotency-Key has been used for another order; use a new one",
        "该幂等键已用于其他订单，请更换",
    )


@app.get("/v1/orders/{order_no}", response_model=OrderOut, responses=ERRORS, tags=["orders"])
async def get_order(order_no: str, ctx: Ctx, buyer: CurrentBuyer) -> OrderOut:
    """The order: its status and deadline, where to pay, the transfer voucher and finance's
    decisions on it, and its invoices. The buyer's own unit's orders only."""
    return _order_out(await _buyers_order(ctx, buyer, order_no))


# ------------------------------------------------------------------------------------------ transfers


def _transfer_order(order: PaymentOrder) -> PaymentOrder:
    if order.method is not PaymentMethod.TRANSFER:
        raise ApiError(
            409,
            "not_transfer_order",
            "only bank transfer orders take a remittance voucher",
            "只有银行转账订单需要上传汇款凭证",
        )
    return order


def _voucher_prefix(order: PaymentOrder) -> str:
    return f"{order.edition}/{order.order_no}/"


async def _order_update(
    ctx: ServiceContext, order: PaymentOrder, update: str, arg: c.Message
) -> c.DecisionResult:
    """Ask the order's workflow to take a voucher or a decision; its validator may refuse (409)."""
    return await execute_update(
        ctx.temporal,
        payment_order_workflow_id(order.edition, order.order_no),
        update,
        arg,
        closed=ApiError(409, "order_closed", "the order has closed", "该订单已关闭"),
    )


@app.post(
    "/v1/orders/{order_no}/voucher-upload",
    response_model=VoucherUploadOut,
    responses=ERRORS,
    tags=["transfers"],
)
async def new_voucher_upload(
    order_no: str, ctx: Ctx, buyer: CurrentBuyer, body: Annotated[VoucherUploadIn | None, Body()] = None
) -> VoucherUploadOut:
    """A presigned URL to upload the bank remittance voucher (PDF or JPEG, at most 10 MiB) to; then
    submit its key with ``POST /v1/orders/{order_no}/voucher``."""
    order = _transfer_order(await _buyers_order(ctx, buyer, order_no))
    if order.status is OrderStatus.PAID:
        raise ApiError(409, "order_paid", "the order has been paid", "该订单已支付")
    if order.status is OrderStatus.CLOSED:
        raise ApiError(409, "order_closed", "the order has closed", "该订单已关闭")
    if order.status is OrderStatus.AWAITING_CONFIRMATION:
        raise ApiError(
            409,
            "voucher_pending",
            "a voucher has been uploaded and awaits finance's confirmation",
            "汇款凭证已上传，正在等待财务确认",
        )
    deadline = order.deadline
    try:  # an extension the order has not heard of yet counts too
        deadline = max(deadline, (await current_deadlines(ctx, order.edition)).transfer)
    except httpx.HTTPError:
        log.warning("current deadlines unavailable; order %s keeps its own", order.order_no)
    if utcnow() >= deadline:
        raise _voucher_deadline_passed(ctx.edition, deadline)
    content_type = (body or VoucherUploadIn()).content_type
    key = f"{_voucher_prefix(order)}{secrets.token_hex(8)}.{VOUCHER_TYPES[content_type]}"
    url = ctx.store.presigned_put(ctx.settings.bucket_vouchers, key, content_type, VOUCHER_UPLOAD_SECONDS)
    return VoucherUploadOut(
        voucher_key=key, url=url, headers={"Content-Type": content_type}, expires_in=VOUCHER_UPLOAD_SECONDS
    )


@app.post(
    "/v1/orders/{order_no}/voucher", response_model=TransferStatusOut, responses=ERRORS, tags=["transfers"]
)
async def submit_voucher(order_no: str, body: VoucherIn, ctx: Ctx, buyer: CurrentBuyer) -> TransferStatusOut:
    """Submit the uploaded remittance voucher: the order then awaits finance's confirmation."""
    order = _transfer_order(await _buyers_order(ctx, buyer, order_no))
    if not body.voucher_key.startswith(_voucher_prefix(order)) or ".." in body.voucher_key:
        raise ApiError(
            422,
            "invalid_voucher_key",
            "the voucher key is not one given for this order",
            "汇款凭证标识不属于该订单",
            field="voucher_key",
        )
    size = await ctx.store.size(ctx.settings.bucket_vouchers, body.voucher_key)
    if not size:
        raise ApiError(
            422,
            "voucher_missing",
            "no voucher has been uploaded under this key",
            "尚未上传汇款凭证",
            field="voucher_key",
        )
    if size > VOUCHER_MAX_BYTES:
        raise ApiError(
            422,
            "voucher_too_large",
            "the voucher is larger than 10 MiB",
            "汇款凭证不能超过10MB",
            field="voucher_key",
        )
    result = await _order_update(
        ctx, order, c.UPDATE_UPLOAD_VOUCHER, c.VoucherUpload(voucher_key=body.voucher_key)
    )
    return TransferStatusOut(order_no=order.order_no, status=result.status)


@app.post(
    "/v1/orders/{order_no}/transfer-decision",
    response_model=TransferStatusOut,
    responses=ERRORS,
    tags=["transfers"],
)
async def decide_transfer(
    order_no: str, body: TransferDecisionIn, ctx: Ctx, staff: CurrentFinance
) -> TransferStatusOut:
    """Finance: confirm a bank transfer against the bank statement (with the bank's reference), or
    reject its voucher with a reason (the unit may upload another until the transfer deadline). The
    reviewer recorded is the logged-in staff member (a ``reviewer`` in the body is ignored); finance
    staff of a mission decide their mission's orders only, observers none."""
    require_finance_decider(staff)
    order = await _order(ctx, order_no)
    if not staff.sees(order.mission):
        raise not_found("order", "订单")
    order = _transfer_order(order)
    decision = c.TransferDecision(
        decision=body.decision, reason=body.reason, reviewer=staff.login, bank_reference=body.bank_reference
    )
    result = await _order_update(ctx, order, c.UPDATE_CONFIRM_TRANSFER, decision)
    return TransferStatusOut(order_no=order.order_no, status=result.status)


@app.get("/v1/transfers", response_model=list[OrderOut], responses=ERRORS, tags=["transfers"])
async def list_transfers(
    ctx: Ctx,
    staff: CurrentFinance,
    status: Annotated[OrderStatus, Query()] = OrderStatus.AWAITING_CONFIRMATION,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[OrderOut]:
    """Finance's queue: bank transfer orders in ``status`` (by default those whose voucher awaits
    confirmation), the longest waiting first. Finance staff of a mission see their mission's only."""
    query = select(PaymentOrder).where(
        PaymentOrder.method == PaymentMethod.TRANSFER, PaymentOrder.status == status
    )
    if (mission := staff.mission_filter()) is not None:
        query = query.where(PaymentOrder.mission == mission)
    async with ctx.db.sessions() as session:
        orders = (
            await session.scalars(
                query.options(*_WITH_DETAILS)
                .order_by(
                    PaymentOrder.voucher_uploaded_at.asc().nulls_last(),
                    PaymentOrder.created_at,
                    PaymentOrder.order_no,
                )
                .limit(limit)
                .offset(offset)
            )
        ).all()
    return [_order_out(order) for order in orders]


# ------------------------------------------------------------------------------------------ invoices


# ------------------------------------------------------------------------------------------ gateway


@app.post("/v1/gateway/notify", response_class=PlainTextResponse, tags=["gateway"])
async def gateway_notify(request: Request, ctx: Ctx) -> str:
    """The gateway's signed payment notice. Verified, stored once per transaction, passed to the
    order's workflow (which counts each transaction once), acknowledged with ``success``. Money
    for an order whose workflow has closed is refunded here, so the gateway stops calling."""
    body = await request.body()
    try:
        signing.verify(ctx.settings.gateway_key.get_secret_value(), dict(request.headers), body, utcnow())
        callback = Callback.model_validate_json(body)
    except signing.SignatureError as exc:
        raise ApiError(401, exc.code, str(exc)) from exc
    except ValidationError as exc:
        raise ApiError(422, "invalid_callback", "the callback body is not understood") from exc
    if REPLAYS.check(dict(request.headers), utcnow()):  # the identical signed request, sent again
        raise ApiError(401, "replayed", "this signed callback has already been received")
    if callback.merchant_id != ctx.settings.gateway_merchant_id:
        raise ApiError(403, "unknown_merchant", "the callback is for another merchant")
    order = await _load(ctx, order_no=callback.order_no)
    if order is None:
        raise not_found("order", "订单")
    await transaction_arrived(ctx, order, callback)  # stored once, signalled, or refunded if too late
    return "success"
