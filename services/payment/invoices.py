"""Electronic VAT invoices as immutable documents (FAQ XI): a paid order's unit applies for a regular
or a special invoice; each is numbered per year (INV-2023-000001, gapless), never changed once
issued, and rendered as a PDF into the invoices bucket. A refund after invoicing issues a red-letter
invoice reversing the standing one and, if anything remains paid, a new blue invoice for it."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import phonenumbers
from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from stdnum.cn import uscc
from stdnum.exceptions import ValidationError as StdnumError

from services.payment.invoice_pdf import render_invoice
from services.payment.models import (
    Invoice,
    InvoiceKind,
    InvoiceSequence,
    OrderItem,
    PaymentOrder,
    Refund,
)
from shared.db import Database, utcnow
from shared.http import ApiError, not_found
from shared.storage import ObjectStore
from shared.types import OrderStatus

log = logging.getLogger(__name__)

NUMBERING_ZONE = ZoneInfo("Asia/Shanghai")  # invoices are numbered per calendar year, Beijing time
PDF_TYPE = "application/pdf"

_TAXPAYER_ID = re.compile(r"^[0-9A-Z]{15,20}$")
_ACCOUNT = re.compile(r"^[0-9]{8,30}$")


# ------------------------------------------------------------------------------------------ the buyer


@dataclass(frozen=True)
class InvoiceBuyer:
    """Who the invoice is made out to, validated and normalised."""

    kind: InvoiceKind
    title: str
    taxpayer_id: str
    address: str | None = None
    phone: str | None = None  # E.164
    bank_name: str | None = None
    bank_account: str | None = None


def _refused(field: str, message: str, message_zh: str, code: str = "invalid_invoice_data") -> ApiError:
    return ApiError(422, code, message, message_zh, field=field)


def _text(value: str | None) -> str | None:
    value = (value or "").strip()
    return value or None


def validate_buyer(
    kind: InvoiceKind,
    title: str,
    taxpayer_id: str,
    *,
    address: str | None = None,
    phone: str | None = None,
    bank_name: str | None = None,
    bank_account: str | None = None,
) -> InvoiceBuyer:
    """The buyer's data as an invoice of ``kind`` needs it, or a 422 naming the field (bilingual).
    A special invoice needs the taxpayer number, registered address, phone, bank and account."""
    clean_title = _text(title)
    if clean_title is None or len(clean_title) > 200:
        raise _refused(
            "title", "the invoice title (the unit's name) is required", "请填写发票抬头（单位名称）"
        )
    number = re.sub(r"[\s-]", "", taxpayer_id or "").upper()
    if len(number) == 18:
        try:
            number = uscc.validate(number)
        except StdnumError as exc:
            raise _refused(
                "taxpayer_id",
                "the taxpayer number is not a valid unified social credit code (check digit or format)",
                "纳税人识别号不是有效的统一社会信用代码（校验位或格式错误）",
            ) from exc
    elif not _TAXPAYER_ID.fullmatch(number):
        raise _refused(
            "taxpayer_id",
            "the taxpayer number must be 15 to 20 letters and digits",
            "纳税人识别号应为15至20位字母或数字",
        )
    if kind is InvoiceKind.REGULAR:
        return InvoiceBuyer(kind=kind, title=clean_title, taxpayer_id=number)

    clean_address = _text(address)
    if clean_address is None or len(clean_address) > 200:
        raise _refused(
            "address", "a special invoice needs the unit's registered address", "增值税专用发票须填写注册地址"
        )
    try:
        parsed = phonenumbers.parse((phone or "").strip(), "CN")
        valid_phone = phonenumbers.is_valid_number(parsed)
    except phonenumbers.NumberParseException:
        valid_phone = False
    if not valid_phone:
        raise _refused(
            "phone",
            "a special invoice needs the unit's valid telephone number",
            "增值税专用发票须填写有效的注册电话",
        )
    clean_bank = _text(bank_name)
    if clean_bank is None or len(clean_bank) > 100:
        raise _refused("bank_name", "a special invoice needs the unit's bank", "增值税专用发票须填写开户银行")
    account = re.sub(r"[\s-]", "", bank_account or "")
    if not _ACCOUNT.fullmatch(account):
        raise _refused(
            "bank_account",
            "a special invoice needs the bank account number: 8 to 30 digits",
            "增值税专用发票须填写银行账号（8至30位数字）",
        )
    return InvoiceBuyer(
        kind=kind,
        title=clean_title,
        taxpayer_id=number,
        address=clean_address,
        phone=phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164),
        bank_name=clean_bank,
        bank_account=account,
    )


# ------------------------------------------------------------------------------------------ queries


def invoice_year(at: datetime) -> int:
    return at.astimezone(NUMBERING_ZONE).year


def pdf_key(invoice: Invoice) -> str:
    return f"{invoice_year(invoice.issued_at)}/{invoice.order_no}/{invoice.invoice_no}.pdf"


async def lock_order(session: AsyncSession, order_no: str) -> PaymentOrder | None:
    """The order, locked for the rest of the transaction. A no-op write comes first: SQLite then takes
    its write lock before anything is read (a later write could not wait for it), PostgreSQL the
    row's lock; invoices of one order are issued one after the other."""
    await session.execute(
        update(PaymentOrder)
        .where(PaymentOrder.order_no == order_no)
        .values(status=PaymentOrder.status)
        .execution_options(synchronize_session=False)
    )
    return await session.get(PaymentOrder, order_no, with_for_update=True, populate_existing=True)


async def next_invoice_no(session: AsyncSession, at: datetime) -> str:
    """The year's next number, gapless: the sequence row is updated in the issuing transaction, so a
    rollback gives its number back and concurrent issuers wait for each other."""
    year = invoice_year(at)
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        await session.execute(
            postgresql.insert(InvoiceSequence).values(year=year, last_number=0).on_conflict_do_nothing()
        )
    elif dialect == "sqlite":
        await session.execute(
            sqlite.insert(InvoiceSequence).values(year=year, last_number=0).on_conflict_do_nothing()
        )
    elif await session.get(InvoiceSequence, year) is None:
        session.add(InvoiceSequence(year=year, last_number=0))
        await session.flush()
    number = await session.scalar(
        update(InvoiceSequence)
        .where(InvoiceSequence.year == year)
        .values(last_number=InvoiceSequence.last_number + 1)
        .returning(InvoiceSequence.last_number)
        .execution_options(synchronize_session=False)
    )
    assert number is not None
    return f"INV-{year}-{number:06d}"


async def order_invoices(session: AsyncSession, order_no: str) -> list[Invoice]:
    return list(
        (
            await session.scalars(
                select(Invoice)
                .where(Invoice.order_no == order_no)
                .order_by(Invoice.issued_at, Invoice.invoice_no)
            )
        ).all()
    )


def standing(invoices: Iterable[Invoice]) -> Invoice | None:
    """The blue invoice no red-letter invoice reverses (legacy voided ones do not stand either)."""
    invoices = list(invoices)
    reversed_ = {i.reverses for i in invoices if i.reverses}
    for invoice in invoices:
        if invoice.reverses is None and invoice.invoice_no not in reversed_ and invoice.voided_at is None:
            return invoice
    return None


async def remaining_lines(session: AsyncSession, order: PaymentOrder) -> list[dict[str, object]]:
    """The order's people still paid for (those whose share was not refunded), at their fee."""
    refunded = set(
        (
            await session.scalars(
                select(Refund.registration_id).where(
                    Refund.order_no == order.order_no,
                    Refund.registration_id.is_not(None),
                    Refund.succeeded.is_(True),
                )
            )
        ).all()
    )
    items = (
        await session.scalars(
            select(OrderItem).where(OrderItem.order_no == order.order_no).order_by(OrderItem.registration_id)
        )
    ).all()
    return [
        {"registration_id": i.registration_id, "fee_kind": i.fee_kind.value, "amount_fen": i.amount_fen}
        for i in items
        if i.registration_id not in refunded
    ]


# ------------------------------------------------------------------------------------------ issuing


async def apply(db: Database, order_no: str, buyer: InvoiceBuyer) -> Invoice:
    """Issue the order's invoice for what it still pays: once the order is paid, while none stands."""
    async with db.transaction() as session:
        order = await lock_order(session, order_no)
        if order is None:
            raise not_found("order", "订单")
        if order.status is not OrderStatus.PAID:
            raise ApiError(
                409, "not_paid", "an invoice is issued once the order is paid", "订单支付后方可申请发票"
            )
        current = standing(await order_invoices(session, order_no))
        if current is not None:
            raise ApiError(
                409,
                "invoice_exists",
                f"invoice {current.invoice_no} stands for this order",
                f"该订单已开具发票（{current.invoice_no}）",
            )
        lines = await remaining_lines(session, order)
        amount = sum(int(str(line["amount_fen"])) for line in lines)
        if amount <= 0:
            raise ApiError(
                409, "nothing_to_invoice", "the whole order has been refunded", "该订单已全额退款，无需开票"
            )
        now = utcnow()
        invoice = Invoice(
            invoice_no=await next_invoice_no(session, now),
            order_no=order_no,
            kind=buyer.kind,
            title=buyer.title,
            taxpayer_id=buyer.taxpayer_id,
            address=buyer.address,
            phone=buyer.phone,
            bank_name=buyer.bank_name,
            bank_account=buyer.bank_account,
            amount_fen=amount,
            lines=lines,
            issued_at=now,
        )
        invoice.pdf_key = pdf_key(invoice)
        session.add(invoice)
    return invoice


async def reissue_after_refund(
    session: AsyncSession, order: PaymentOrder, refund_no: str, at: datetime
) -> tuple[Invoice, Invoice | None] | None:
    """After a person's share was refunded: if the standing invoice no longer matches what remains
    paid, a red-letter invoice reverses it and a blue one (same kind and buyer) covers what remains.
    The caller holds the order's lock (``lock_order``). None if nothing had to change."""
    current = standing(await order_invoices(session, order.order_no))
    if current is None:
        return None
    lines = await remaining_lines(session, order)
    amount = sum(int(str(line["amount_fen"])) for line in lines)
    if amount == current.amount_fen:
        return None  # already reissued for this (another refund's settlement did it)
    parties = {
        "kind": current.kind,
        "title": current.title,
        "taxpayer_id": current.taxpayer_id,
        "address": current.address,
        "phone": current.phone,
        "bank_name": current.bank_name,
        "bank_account": current.bank_account,
    }
    red = Invoice(
        invoice_no=await next_invoice_no(session, at),
        order_no=order.order_no,
        amount_fen=-current.amount_fen,
        lines=[{**line, "amount_fen": -int(line["amount_fen"])} for line in current.lines],
        reverses=current.invoice_no,
        refund_no=refund_no,
        issued_at=at,
        **parties,
    )
    red.pdf_key = pdf_key(red)
    session.add(red)
    blue = None
    if amount > 0:
        blue = Invoice(
            invoice_no=await next_invoice_no(session, at),
            order_no=order.order_no,
            amount_fen=amount,
            lines=lines,
            replaces=current.invoice_no,
            refund_no=refund_no,
            issued_at=at,
            **parties,
        )
        blue.pdf_key = pdf_key(blue)
        session.add(blue)
    await session.flush()
    return red, blue


# ------------------------------------------------------------------------------------------ documents


async def render(invoice: Invoice, original: Invoice | None = None) -> bytes:
    """The invoice's PDF, rendered on a thread (reportlab is CPU-bound)."""
    return await asyncio.to_thread(render_invoice, invoice, original)


async def publish(db: Database, store: ObjectStore, bucket: str, invoice_nos: Iterable[str]) -> None:
    """Render and store the invoices' PDFs. A failure is logged, not raised: the invoice stands, and
    the download renders its (deterministic) PDF again if the object is missing."""
    for invoice_no in invoice_nos:
        try:
            await pdf(db, store, bucket, invoice_no)
        except Exception:
            log.exception("invoice %s: PDF not stored yet; the download will render it", invoice_no)


async def pdf(
    db: Database, store: ObjectStore, bucket: str, invoice_no: str, *, force: bool = False
) -> bytes:
    """The invoice's PDF from the store, rendered and stored first if it is not there (or ``force``)."""
    async with db.sessions() as session:
        invoice = await session.get(Invoice, invoice_no)
        if invoice is None:
            raise not_found("invoice", "发票")
        original = await session.get(Invoice, invoice.reverses) if invoice.reverses else None
    key = invoice.pdf_key or pdf_key(invoice)
    if not force and await store.size(bucket, key):
        return await store.get(bucket, key)
    body = await render(invoice, original)
    await store.put(bucket, key, body, PDF_TYPE)
    if invoice.pdf_key is None:  # a legacy invoice: where its PDF is now (not one of its amounts or parties)
        async with db.transaction() as session:
            await session.execute(
                update(Invoice)
                .where(Invoice.invoice_no == invoice_no, Invoice.pdf_key.is_(None))
                .values(pdf_key=key)
                .execution_options(synchronize_session=False)
            )
    return body
