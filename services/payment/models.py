"""The payment service's tables: orders and their items, gateway transactions, bank transfer
decisions, refunds and invoices."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from shared.db import TYPE_ANNOTATION_MAP, service_metadata, utcnow
from shared.types import Decision, FeeKind, OrderStatus, PaymentMethod, QrChannel

OPEN_ORDER_STATUSES = (OrderStatus.AWAITING_PAYMENT, OrderStatus.AWAITING_CONFIRMATION)


class InvoiceKind(StrEnum):
    """The two electronic VAT invoices a buyer may apply for (FAQ XI)."""

    REGULAR = "regular"  # 增值税电子普通发票
    SPECIAL = "special"  # 增值税电子专用发票


class InvoiceStatus(StrEnum):
    ISSUED = "issued"
    VOIDED = "voided"  # returned: a refund changed what the order paid, another was issued


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
    invoices: Mapped[list[Invoice]] = relationship(order_by="Invoice.issued_at")
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
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column()
    # What the refund did to the order's invoice (FAQ XI), settled once after the money went back.
    invoice_settled_at: Mapped[datetime | None] = mapped_column()
    invoice_voided: Mapped[str | None] = mapped_column(String(32))
    invoice_issued: Mapped[str | None] = mapped_column(String(32))


class Invoice(Base):
    """An electronic VAT invoice for what an order paid. At most one is issued per order at a time:
    a refund voids it and issues one for what remains paid (``replaces`` the voided one)."""

    __tablename__ = "payment_invoices"

    invoice_no: Mapped[str] = mapped_column(String(32), primary_key=True)
    order_no: Mapped[str] = mapped_column(ForeignKey("payment_orders.order_no"), index=True)
    kind: Mapped[InvoiceKind] = mapped_column()
    title: Mapped[str] = mapped_column(String(200))  # the buyer's name on the invoice (发票抬头)
    taxpayer_id: Mapped[str] = mapped_column(String(20))  # 纳税人识别号
    amount_fen: Mapped[int] = mapped_column()
    status: Mapped[InvoiceStatus] = mapped_column(default=InvoiceStatus.ISSUED)
    replaces: Mapped[str | None] = mapped_column(String(32))  # the invoice this one was reissued for
    issued_at: Mapped[datetime] = mapped_column(default=utcnow)
    voided_at: Mapped[datetime | None] = mapped_column()

    __table_args__ = (
        # One issued invoice per order, however requests and refunds interleave.
        Index(
            "uq_payment_invoices_issued_order",
            "order_no",
            unique=True,
            sqlite_where=text("status = 'issued'"),
            postgresql_where=text("status = 'issued'"),
        ),
    )
