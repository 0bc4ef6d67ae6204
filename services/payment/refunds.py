"""Refunds, and what they do to an order's invoices: the one code path the REFUND activity and the
gateway callback (money for an order whose workflow has closed) both use."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.payment import invoices
from services.payment.gateway import PaymentGateway
from services.payment.models import Invoice, OrderItem, PaymentOrder, Refund
from shared import contracts as c
from shared.db import Database, utcnow
from shared.ids import new_id
from shared.metrics import REFUND_AMOUNT, REFUNDS, refund_kind
from shared.storage import ObjectStore


class RefundError(Exception):
    """A refund that cannot be made now (``retryable``: the gateway refused; try again) or ever."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True)
class InvoiceChange:
    voided: str | None  # the invoice a red-letter invoice now reverses
    issued: str | None  # the new blue invoice for what remains paid
    red_letter: str | None = None  # the red-letter invoice's number

    @property
    def new_invoices(self) -> list[str]:
        return [no for no in (self.red_letter, self.issued) if no is not None]


async def refund(
    db: Database,
    gateway: PaymentGateway,
    request: c.RefundRequest,
    *,
    store: ObjectStore | None = None,
    bucket: str | None = None,
) -> c.RefundResult:
    """Refund once per key: the row is written first, then the gateway is asked (idempotent by
    refund number on its side too), so a retry after a crash never pays out twice. Once the money
    is back, a person's share refunded from an invoiced order gets a red-letter invoice reversing the
    standing one and a new invoice for what remains paid (FAQ XI), once per refund: a retry answers
    the same numbers. ``store``/``bucket``: where the new invoices' PDFs go (else they are rendered
    on their first download)."""
    async with db.transaction() as session:
        stored = await session.scalar(select(Refund).where(Refund.refund_key == request.refund_key))
        if stored is None:
            stored = await _new_refund(session, request)
            session.add(stored)
        if not stored.succeeded:  # counted before the gateway is asked: a call that times out counts
            stored.attempts = (stored.attempts or 0) + 1
    if not stored.succeeded:
        outcome = await gateway.refund(
            refund_no=stored.refund_no, transaction_id=stored.transaction_id, amount_fen=stored.amount_fen
        )
        async with db.transaction() as session:
            row = await session.get(Refund, stored.refund_no)
            assert row is not None
            row.succeeded = outcome.succeeded
            row.completed_at = utcnow()
        if not outcome.succeeded:
            raise RefundError("the gateway refused the refund; retrying", retryable=True)
        kind = refund_kind(stored.registration_id)  # the money is back: counted once, as it is recorded
        REFUNDS.labels(kind).inc()
        REFUND_AMOUNT.labels(kind).inc(stored.amount_fen)
    change = await settle_invoice(db, stored.refund_no)
    if store is not None and bucket is not None and change.new_invoices:
        await invoices.publish(db, store, bucket, change.new_invoices)
    return c.RefundResult(
        refund_no=stored.refund_no, succeeded=True, invoice_voided=change.voided, invoice_issued=change.issued
    )


async def _new_refund(session: AsyncSession, request: c.RefundRequest) -> Refund:
    order = await session.get(PaymentOrder, request.order_no)
    transaction_id = request.transaction_id or (order.transaction_id if order else None)
    if order is None or transaction_id is None:
        raise RefundError(f"order {request.order_no} has no payment to refund", retryable=False)
    if request.registration_id is not None:  # that person's share of the order
        item = await session.get(OrderItem, (request.order_no, request.registration_id))
        if item is None:
            raise RefundError("the person is not in the order", retryable=False)
        amount = item.amount_fen
    elif request.amount_fen is not None:
        amount = request.amount_fen
    else:
        raise RefundError("a refund needs a person or an amount", retryable=False)
    return Refund(
        refund_no=new_id("F"),
        refund_key=request.refund_key,
        order_no=request.order_no,
        registration_id=request.registration_id,
        transaction_id=transaction_id,
        amount_fen=amount,
        reason=request.reason,
        attempts=0,
    )


async def remaining_paid(session: AsyncSession, order: PaymentOrder) -> int:
    """What the order still pays for: its amount less the people's shares refunded so far. Money that
    matched no one (paid twice, too much, too late) was never part of the order, nor of its invoice."""
    refunded = await session.scalar(
        select(func.coalesce(func.sum(Refund.amount_fen), 0)).where(
            Refund.order_no == order.order_no,
            Refund.registration_id.is_not(None),
            Refund.succeeded.is_(True),
        )
    )
    return max(order.amount_fen - int(refunded or 0), 0)


async def settle_invoice(db: Database, refund_no: str) -> InvoiceChange:
    """Bring the order's invoices in line with what remains paid after a successful refund: issued
    invoices never change, so a red-letter invoice reverses the standing one and a new blue invoice
    (same kind and buyer) covers what remains paid, if anything. Done once per refund; the refund row
    keeps what was done (``voided``: the reversed original's number, ``issued``: the new blue one's),
    so a retry answers the same numbers and issues nothing."""
    async with db.transaction() as session:
        row = await session.get(Refund, refund_no)
        assert row is not None
        # Lock the order first (a write first, for SQLite): refunds of several people of one order
        # settle its invoice one after the other.
        order = await invoices.lock_order(session, row.order_no)
        await session.refresh(row, with_for_update=True)
        if row.invoice_settled_at is not None:
            return InvoiceChange(
                voided=row.invoice_voided,
                issued=row.invoice_issued,
                red_letter=await _red_letter(session, row),
            )
        row.invoice_settled_at = utcnow()
        if row.registration_id is None or order is None:
            return InvoiceChange(voided=None, issued=None)
        change = await invoices.reissue_after_refund(session, order, row.refund_no, row.invoice_settled_at)
        if change is None:
            return InvoiceChange(voided=None, issued=None)  # no invoice, or already reissued for this
        red, blue = change
        row.invoice_voided = red.reverses
        row.invoice_issued = blue.invoice_no if blue else None
        return InvoiceChange(voided=row.invoice_voided, issued=row.invoice_issued, red_letter=red.invoice_no)


async def _red_letter(session: AsyncSession, row: Refund) -> str | None:
    if row.invoice_voided is None:
        return None
    return await session.scalar(select(Invoice.invoice_no).where(Invoice.reverses == row.invoice_voided))
