"""Invoices, an order's ledger and finance's view of orders whose money does not match, as an
``APIRouter`` the payment app includes.

Every route takes an ``OrderScope`` (``order_scope``): which orders the caller may see. The
placeholder here sees everything; the app overrides it (``app.dependency_overrides[order_scope]``)
with the buyer's or finance staff's scope."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, Field
from sqlalchemy import Select, func, select

from services.payment import invoices
from services.payment.models import GatewayTransaction, Invoice, InvoiceKind, PaymentOrder, Refund
from shared.http import ApiError, ErrorBody, not_found
from shared.service import ServiceContext, context
from shared.types import OrderStatus, PaymentMethod

router = APIRouter()
_Q = TypeVar("_Q", bound="Select[*tuple[Any, ...]]")
Ctx = Annotated[ServiceContext, Depends(context)]
ERRORS: dict[int | str, dict[str, object]] = {code: {"model": ErrorBody} for code in (404, 409, 422)}


# ------------------------------------------------------------------------------------------ scope


class OrderScope:
    """The orders a caller may see: a buyer's, those of their ``unit_id``; finance staff's, those of
    ``missions`` (None: every mission)."""

    def __init__(self, missions: set[str] | None = None, unit_id: str | None = None) -> None:
        self.missions = missions
        self.unit_id = unit_id

    @property
    def is_finance(self) -> bool:
        return self.unit_id is None

    def visible(self, order: PaymentOrder) -> bool:
        if self.unit_id is not None:
            return order.unit_id == self.unit_id
        return self.missions is None or order.mission in self.missions

    def where(self, query: _Q) -> _Q:
        """``query`` (over PaymentOrder) narrowed to the scope."""
        if self.unit_id is not None:
            return query.where(PaymentOrder.unit_id == self.unit_id)
        return query if self.missions is None else query.where(PaymentOrder.mission.in_(self.missions))


def order_scope() -> OrderScope:
    """Placeholder: everything is visible. Replaced through ``app.dependency_overrides``."""
    return OrderScope()


Scope = Annotated[OrderScope, Depends(order_scope)]


async def _visible_order(ctx: ServiceContext, scope: OrderScope, order_no: str) -> PaymentOrder:
    async with ctx.db.sessions() as session:
        order = await session.get(PaymentOrder, order_no)
    if order is None or not scope.visible(order):
        raise not_found("order", "订单")  # an order out of scope does not exist for the caller
    return order


# ------------------------------------------------------------------------------------------ invoices


class InvoiceApplicationIn(BaseModel):
    """An application for the order's electronic VAT invoice. A special invoice also needs the
    unit's registered address, phone, bank and account; all are checked, each refusal names its field."""

    kind: InvoiceKind
    title: str = Field(max_length=500)  # 发票抬头: the unit's name
    taxpayer_id: str = Field(max_length=100)  # 纳税人识别号, usually the unified social credit code
    address: str | None = Field(default=None, max_length=500)
    phone: str | None = Field(default=None, max_length=100)
    bank_name: str | None = Field(default=None, max_length=500)
    bank_account: str | None = Field(default=None, max_length=100)


class InvoiceLineOut(BaseModel):
    registration_id: str
    fee_kind: str
    amount_fen: int


class InvoiceOut(BaseModel):
    invoice_no: str
    order_no: str
    kind: InvoiceKind
    red_letter: bool  # 红字发票: reverses ``reverses``, negative amount
    title: str
    taxpayer_id: str
    address: str | None
    phone: str | None
    bank_name: str | None
    bank_account: str | None
    amount_fen: int
    lines: list[InvoiceLineOut]
    reverses: str | None
    replaces: str | None  # the invoice this blue one was reissued for, after a refund
    reversed_by: str | None  # the red-letter invoice that reverses this one
    standing: bool  # the order's current invoice (blue, not reversed)
    issued_at: datetime
    pdf_url: str


def invoice_views(rows: list[Invoice]) -> list[InvoiceOut]:
    reversed_by = {row.reverses: row.invoice_no for row in rows if row.reverses}
    current = invoices.standing(rows)
    return [
        InvoiceOut(
            invoice_no=row.invoice_no,
            order_no=row.order_no,
            kind=row.kind,
            red_letter=row.reverses is not None,
            title=row.title,
            taxpayer_id=row.taxpayer_id,
            address=row.address,
            phone=row.phone,
            bank_name=row.bank_name,
            bank_account=row.bank_account,
            amount_fen=row.amount_fen,
            lines=[InvoiceLineOut.model_validate(line) for line in row.lines],
            reverses=row.reverses,
            replaces=row.replaces,
            reversed_by=reversed_by.get(row.invoice_no),
            standing=current is not None and current.invoice_no == row.invoice_no,
            issued_at=row.issued_at,
            pdf_url=f"/v1/invoices/{row.invoice_no}.pdf",
        )
        for row in rows
    ]


async def _invoice_list(ctx: ServiceContext, order_no: str) -> list[InvoiceOut]:
    async with ctx.db.sessions() as session:
        return invoice_views(await invoices.order_invoices(session, order_no))


@router.post(
    "/v1/orders/{order_no}/invoice",
    status_code=201,
    response_model=InvoiceOut,
    responses=ERRORS,
    tags=["invoices"],
)
async def apply_for_invoice(order_no: str, body: InvoiceApplicationIn, ctx: Ctx, scope: Scope) -> InvoiceOut:
    """Apply for the electronic VAT invoice (regular or special) of a paid order, for the people it
    still pays for. It is numbered (INV-year-number), never changed, and its PDF is downloadable at
    ``pdf_url``. A later refund issues a red-letter invoice reversing it and a new one for what
    remains paid."""
    await _visible_order(ctx, scope, order_no)
    buyer = invoices.validate_buyer(
        body.kind,
        body.title,
        body.taxpayer_id,
        address=body.address,
        phone=body.phone,
        bank_name=body.bank_name,
        bank_account=body.bank_account,
    )
    invoice = await invoices.apply(ctx.db, order_no, buyer)
    await invoices.publish(ctx.db, ctx.store, ctx.settings.bucket_invoices, [invoice.invoice_no])
    return next(view for view in await _invoice_list(ctx, order_no) if view.invoice_no == invoice.invoice_no)


@router.get(
    "/v1/orders/{order_no}/invoices", response_model=list[InvoiceOut], responses=ERRORS, tags=["invoices"]
)
async def list_order_invoices(order_no: str, ctx: Ctx, scope: Scope) -> list[InvoiceOut]:
    """Every invoice of the order, blue and red-letter, in the order they were issued."""
    await _visible_order(ctx, scope, order_no)
    return await _invoice_list(ctx, order_no)


@router.get(
    "/v1/invoices/{invoice_no}.pdf",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}, 404: {"model": ErrorBody}},
    tags=["invoices"],
)
async def download_invoice(invoice_no: str, ctx: Ctx, scope: Scope) -> Response:
    """The invoice's PDF."""
    async with ctx.db.sessions() as session:
        invoice = await session.get(Invoice, invoice_no)
        order = await session.get(PaymentOrder, invoice.order_no) if invoice else None
    if invoice is None or order is None or not scope.visible(order):
        raise not_found("invoice", "发票")
    body = await invoices.pdf(ctx.db, ctx.store, ctx.settings.bucket_invoices, invoice_no)
    return Response(
        body,
        media_type=invoices.PDF_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{invoice_no}.pdf"'},
    )


# ------------------------------------------------------------------------------------------ ledger


class LedgerEntryKind(StrEnum):
    ORDER_CREATED = "order_created"
    PAYMENT = "payment"  # a gateway transaction
    TRANSFER = "transfer"  # a bank transfer finance confirmed
    REFUND = "refund"
    INVOICE = "invoice"  # blue
    RED_LETTER_INVOICE = "red_letter_invoice"


class LedgerEntry(BaseModel):
    at: datetime
    kind: LedgerEntryKind
    reference: str  # order, transaction, refund or invoice number
    amount_fen: int  # money in (+) or out (-); an invoice's amount (red-letter: negative)
    status: Literal["done", "failed", "pending"] | None = None  # refunds
    note: str | None = None
    balance_fen: int  # money held for the order after this entry (refunds count once done)
    invoiced_fen: int  # net amount invoiced after this entry


class LedgerOut(BaseModel):
    order_no: str
    order_amount_fen: int
    status: OrderStatus
    received_fen: int
    refunded_fen: int
    balance_fen: int
    invoiced_fen: int
    entries: list[LedgerEntry]


@router.get("/v1/orders/{order_no}/ledger", response_model=LedgerOut, responses=ERRORS, tags=["finance"])
async def order_ledger(order_no: str, ctx: Ctx, scope: Scope) -> LedgerOut:
    """The order's money and invoices in time order: created, payments (gateway transactions or the
    confirmed transfer), refunds (done, failed or pending), invoices blue and red-letter, with the
    balance held and the amount invoiced after each."""
    order = await _visible_order(ctx, scope, order_no)
    async with ctx.db.sessions() as session:
        transactions = (
            await session.scalars(select(GatewayTransaction).where(GatewayTransaction.order_no == order_no))
        ).all()
        refund_rows = (await session.scalars(select(Refund).where(Refund.order_no == order_no))).all()
        invoice_rows = await invoices.order_invoices(session, order_no)
    # (at, rank, entry without balances): rank keeps same-instant entries in a sensible order
    raw: list[tuple[datetime, int, dict[str, Any]]] = [
        (order.created_at, 0, {"kind": LedgerEntryKind.ORDER_CREATED, "reference": order_no, "amount_fen": 0})
    ]
    for tx in transactions:
        raw.append(
            (
                tx.paid_at,
                1,
                {
                    "kind": LedgerEntryKind.PAYMENT,
                    "reference": tx.transaction_id,
                    "amount_fen": tx.amount_fen,
                },
            )
        )
    if (
        order.transaction_id
        and order.paid_at
        and order.transaction_id not in {t.transaction_id for t in transactions}
    ):
        kind = LedgerEntryKind.TRANSFER if order.method is PaymentMethod.TRANSFER else LedgerEntryKind.PAYMENT
        raw.append(
            (
                order.paid_at,
                1,
                {"kind": kind, "reference": order.transaction_id, "amount_fen": order.amount_fen},
            )
        )
    for refund in refund_rows:
        status = "done" if refund.succeeded else ("failed" if refund.completed_at else "pending")
        raw.append(
            (
                refund.completed_at or refund.created_at,
                2,
                {
                    "kind": LedgerEntryKind.REFUND,
                    "reference": refund.refund_no,
                    "amount_fen": -refund.amount_fen,
                    "status": status,
                    "note": refund.reason,
                },
            )
        )
    for invoice in invoice_rows:
        red = invoice.reverses is not None
        raw.append(
            (
                invoice.issued_at,
                3 if red else 4,
                {
                    "kind": LedgerEntryKind.RED_LETTER_INVOICE if red else LedgerEntryKind.INVOICE,
                    "reference": invoice.invoice_no,
                    "amount_fen": invoice.amount_fen,
                    "note": f"reverses {invoice.reverses}" if red else None,
                },
            )
        )
    raw.sort(key=lambda item: (item[0], item[1], item[2]["reference"]))
    balance = invoiced = received = refunded = 0
    entries = []
    for at, _, entry in raw:
        kind = entry["kind"]
        if kind in (LedgerEntryKind.PAYMENT, LedgerEntryKind.TRANSFER):
            balance += entry["amount_fen"]
            received += entry["amount_fen"]
        elif kind is LedgerEntryKind.REFUND and entry["status"] == "done":
            balance += entry["amount_fen"]
            refunded -= entry["amount_fen"]
        elif kind in (LedgerEntryKind.INVOICE, LedgerEntryKind.RED_LETTER_INVOICE):
            invoiced += entry["amount_fen"]
        entries.append(LedgerEntry(at=at, balance_fen=balance, invoiced_fen=invoiced, **entry))
    return LedgerOut(
        order_no=order_no,
        order_amount_fen=order.amount_fen,
        status=order.status,
        received_fen=received,
        refunded_fen=refunded,
        balance_fen=balance,
        invoiced_fen=invoiced,
        entries=entries,
    )


# ------------------------------------------------------------------------------------------ finance


class FinanceView(StrEnum):
    OVERPAID = "overpaid"  # the order's transactions add up to more than its amount
    UNDERPAID = "underpaid"  # a transaction below the amount, and none that pays it
    PAID_BUT_EXPIRED = "paid_but_expired"  # shares refunded because the registration had closed


class FinanceOrderOut(BaseModel):
    order_no: str
    unit_id: str
    mission: str
    method: PaymentMethod
    status: OrderStatus
    amount_fen: int  # what the order asked for
    received_fen: int  # what its gateway transactions (or its confirmed transfer) brought in
    refunded_fen: int  # refunds done
    difference_fen: int  # overpaid: received - amount; underpaid: amount - received; expired: refunded for closed registrations
    people: int | None = None  # paid_but_expired: the people whose share went back


class FinanceOrdersOut(BaseModel):
    view: FinanceView
    total: int
    limit: int
    offset: int
    items: list[FinanceOrderOut]


UNACCEPTED_KEY = "order:%:unaccepted:%"  # workflows.registration.unaccepted_refund_key


@router.get("/v1/finance/orders", response_model=FinanceOrdersOut, tags=["finance"])
async def finance_orders(
    ctx: Ctx,
    scope: Scope,
    view: Annotated[FinanceView, Query()] = FinanceView.OVERPAID,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> FinanceOrdersOut:
    """Orders whose money needs finance's attention, oldest first: ``overpaid`` (transactions above
    the amount, before refunds), ``underpaid`` (a short transaction and none that pays), or
    ``paid_but_expired`` (money received for people whose share was refunded because their
    registration had closed)."""
    if not scope.is_finance:
        raise ApiError(403, "finance_only", "finance staff only", "仅限财务人员")
    received = (
        select(
            GatewayTransaction.order_no.label("order_no"),
            func.sum(GatewayTransaction.amount_fen).label("total"),
            func.max(GatewayTransaction.amount_fen).label("largest"),
        )
        .group_by(GatewayTransaction.order_no)
        .subquery()
    )
    refunded = (
        select(Refund.order_no.label("order_no"), func.sum(Refund.amount_fen).label("total"))
        .where(Refund.succeeded.is_(True))
        .group_by(Refund.order_no)
        .subquery()
    )
    expired = (
        select(
            Refund.order_no.label("order_no"),
            func.sum(Refund.amount_fen).label("total"),
            func.count().label("people"),
        )
        .where(Refund.refund_key.like(UNACCEPTED_KEY), Refund.registration_id.is_not(None))
        .group_by(Refund.order_no)
        .subquery()
    )
    query = (
        select(
            PaymentOrder,
            func.coalesce(received.c.total, 0),
            func.coalesce(refunded.c.total, 0),
            func.coalesce(expired.c.total, 0),
            func.coalesce(expired.c.people, 0),
        )
        .outerjoin(received, received.c.order_no == PaymentOrder.order_no)
        .outerjoin(refunded, refunded.c.order_no == PaymentOrder.order_no)
        .outerjoin(expired, expired.c.order_no == PaymentOrder.order_no)
    )
    if view is FinanceView.OVERPAID:
        query = query.where(received.c.total > PaymentOrder.amount_fen)
    elif view is FinanceView.UNDERPAID:
        query = query.where(received.c.largest < PaymentOrder.amount_fen)
    else:
        query = query.where(expired.c.total > 0)
    query = scope.where(query)
    async with ctx.db.sessions() as session:
        total = await session.scalar(select(func.count()).select_from(query.subquery()))
        rows = (
            await session.execute(
                query.order_by(PaymentOrder.created_at, PaymentOrder.order_no).limit(limit).offset(offset)
            )
        ).all()
    items = []
    for row in rows:
        order: PaymentOrder = row[0]
        back, expired_fen, people = int(row[2]), int(row[3]), int(row[4])
        if not scope.visible(order):
            continue
        got = int(row[1]) or (order.amount_fen if order.transaction_id and order.paid_at else 0)
        difference = {
            FinanceView.OVERPAID: got - order.amount_fen,
            FinanceView.UNDERPAID: order.amount_fen - got,
            FinanceView.PAID_BUT_EXPIRED: expired_fen,
        }[view]
        items.append(
            FinanceOrderOut(
                order_no=order.order_no,
                unit_id=order.unit_id,
                mission=order.mission,
                method=order.method,
                status=order.status,
                amount_fen=order.amount_fen,
                received_fen=got,
                refunded_fen=back,
                difference_fen=difference,
                people=people if view is FinanceView.PAID_BUT_EXPIRED else None,
            )
        )
    return FinanceOrdersOut(view=view, total=int(total or 0), limit=limit, offset=offset, items=items)


__all__ = ["OrderScope", "order_scope", "router"]
