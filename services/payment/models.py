"""The payment service's tables: orders and their items, gateway transactions, bank transfer
decisions, refunds and invoices."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from shared.db import TYPE_ANNOTATION_MAP, service_metadata, utcnow
from shared.types import Decision, FeeKind, OrderStatus, PaymentMethod, QrChannel

OPEN_ORDER_STATUSES = (OrderStatus.AWAITING_PAYMENT, OrderStatus.AWAITING_CONFIRMATION)


class InvoiceKind(StrEnum):
    """The two electronic VAT invoices a buyer may apply for (FAQ XI)."""

    REGULAR = "regular"  # 增值税电子普通发票
    SPECIAL = "special"  # 增值税电子专用发票


class InvoiceStatus(StrEnum):
    ISSUED = "issued"  # every invoice issued since invoices became immutable documents
    VOIDED = "voided"  # legacy rows only: before red-letter invoices, a refund marked the original so


class Base(DeclarativeBase):
    metadata = service_metadata()
    type_annotation_map = TYPE_ANNOTATION_MAP


class PaymentOrder(Base):
    __tablename__ = "payment_orders"

    order_no: Mapped[str] = mapped_column(String(32), primary_key=True)
    edition: Mapped[str] = mapped_column(String(16))
    unit_id: Mapped[str] = mapped_column(String(16), index=True)
    mission: Mapped[str] = mapped_column(String(64))
    method: Mapped[PaymentMethod] = mapped_column()
    qr_channel: Mapped[QrChannel | None] = mapped_column()
    amount_fen: Mapped[int] = mapped_column()
    status: Mapped[OrderStatus] = mapped_column(default=OrderStatus.AWAITING_PAYMENT)
    deadline: Mapped[datetime] = mapped_column()
    idempotency_key: Mapped[str | None] = mapped_column(String(100), unique=True)
    qr_payload: Mapped[str | None] = mapped_column(Text)
    transaction_id: Mapped[str | None] = mapped_column(String(64))  # a bank transfer: its bank reference
    paid_at: Mapped[datetime | None] = mapped_column()
    # A bank transfer's remittance voucher (the latest uploaded), in the vouchers bucket.
    voucher_key: Mapped[str | None] = mapped_column(String(200))
    voucher_uploaded_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    items: Mapped[list[OrderItem]] = relationship(
        back_populates="order", order_by="OrderItem.registration_id"
    )
    invoices: Mapped[list[Invoice]] = relationship(order_by=lambda: (Invoice.issued_at, Invoice.invoice_no))
    transfer_decisions: Mapped[list[TransferDecisionRecord]] = relationship(
        order_by="TransferDecisionRecord.decided_at"
    )

    __table_args__ = (Index("ix_payment_orders_edition_status", "edition", "status"),)


class OrderItem(Base):
    """One person paid for by the order, at the fee that applies to them."""

    __tablename__ = "payment_order_items"

    order_no: Mapped[str] = mapped_column(ForeignKey("payment_orders.order_no"), primary_key=True)
    registration_id: Mapped[str] = mapped_column(String(16), primary_key=True)
    fee_kind: Mapped[FeeKind] = mapped_column()
    amount_fen: Mapped[int] = mapped_column()

    order: Mapped[PaymentOrder] = relationship(back_populates="items")


class GatewayTransaction(Base):
    """Money the gateway says arrived: one row per gateway transaction id, however often it calls."""

    __tablename__ = "payment_transactions"

    transaction_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    order_no: Mapped[str] = mapped_column(ForeignKey("payment_orders.order_no"), index=True)
    amount_fen: Mapped[int] = mapped_column()
    paid_at: Mapped[datetime] = mapped_column()
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    callback: Mapped[dict[str, Any]] = mapped_column()


class TransferDecisionRecord(Base):
    """Finance's audit trail of bank transfers: who decided what about which voucher, when and why.
    One row per decision (the order and the instant the workflow took it)."""

    __tablename__ = "payment_transfer_decisions"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    order_no: Mapped[str] = mapped_column(ForeignKey("payment_orders.order_no"))
    decision: Mapped[Decision] = mapped_column()
    reason: Mapped[str | None] = mapped_column(Text)
    reviewer: Mapped[str] = mapped_column(String(100))
    bank_reference: Mapped[str | None] = mapped_column(String(64))
    voucher_key: Mapped[str | None] = mapped_column(String(200))  # the voucher decided on
    decided_at: Mapped[datetime] = mapped_column()
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("order_no", "decided_at"),)


class Refund(Base):
    __tablename__ = "payment_refunds"

    refund_no: Mapped[str] = mapped_column(String(32), primary_key=True)
    refund_key: Mapped[str] = mapped_column(String(120), unique=True)
    order_no: Mapped[str] = mapped_column(ForeignKey("payment_orders.order_no"), index=True)
    registration_id: Mapped[str | None] = mapped_column(String(16))
    transaction_id: Mapped[str] = mapped_column(String(64))
    amount_fen: Mapped[int] = mapped_column()
    reason: Mapped[str] = mapped_column(Text)
    succeeded: Mapped[bool] = mapped_column(default=False)
    # Times the gateway was asked (counted before each call, so one that timed out counts): finance
    # sees a refund the gateway keeps refusing (GET /v1/finance/refunds).
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column()  # the gateway's last answer
    # What the refund did to the order's invoice (FAQ XI), settled once after the money went back.
    invoice_settled_at: Mapped[datetime | None] = mapped_column()
    invoice_voided: Mapped[str | None] = mapped_column(String(32))
    invoice_issued: Mapped[str | None] = mapped_column(String(32))


class InvoiceSequence(Base):
    """The last invoice number given in a calendar year (Beijing time): INV-2023-000001, gapless."""

    __tablename__ = "payment_invoice_sequences"

    year: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    last_number: Mapped[int] = mapped_column(default=0)


class Invoice(Base):
    """An electronic VAT invoice: an immutable document once issued (its amounts, parties and lines
    never change). A refund after invoicing issues a red-letter invoice (``reverses`` the original,
    negative amount) and, if anything remains paid, a new blue invoice (``replaces`` the original).
    A blue invoice *stands* while no red-letter invoice reverses it: at most one stands per order."""

    __tablename__ = "payment_invoices"

    invoice_no: Mapped[str] = mapped_column(String(32), primary_key=True)
    order_no: Mapped[str] = mapped_column(ForeignKey("payment_orders.order_no"), index=True)
    kind: Mapped[InvoiceKind] = mapped_column()
    title: Mapped[str] = mapped_column(String(200))  # the buyer's name on the invoice (发票抬头)
    taxpayer_id: Mapped[str] = mapped_column(String(20))  # 纳税人识别号
    # A special invoice's buyer data (专票: 地址、电话、开户行及账号); None on a regular one.
    address: Mapped[str | None] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(32))  # E.164
    bank_name: Mapped[str | None] = mapped_column(String(100))
    bank_account: Mapped[str | None] = mapped_column(String(30))
    amount_fen: Mapped[int] = mapped_column()  # negative on a red-letter invoice
    # What is invoiced, per person: [{"registration_id", "fee_kind", "amount_fen"}] (negated on a red one).
    lines: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    status: Mapped[InvoiceStatus] = mapped_column(default=InvoiceStatus.ISSUED)
    replaces: Mapped[str | None] = mapped_column(String(32))  # the invoice this one was reissued for
    reverses: Mapped[str | None] = mapped_column(String(32))  # a red-letter invoice: the original
    refund_no: Mapped[str | None] = mapped_column(String(32))  # the refund that led to this invoice
    pdf_key: Mapped[str | None] = mapped_column(String(200))  # in the invoices bucket
    issued_at: Mapped[datetime] = mapped_column(default=utcnow)
    voided_at: Mapped[datetime | None] = mapped_column()  # legacy rows only

    __table_args__ = (
        # One red-letter invoice per original, however refunds interleave or retry.
        Index(
            "uq_payment_invoices_reverses",
            "reverses",
            unique=True,
            sqlite_where=text("reverses IS NOT NULL"),
            postgresql_where=text("reverses IS NOT NULL"),
        ),
    )

    @property
    def red_letter(self) -> bool:
        return self.reverses is not None
