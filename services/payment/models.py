"""The payment service's tables: orders and their items, gateway transactions, refunds."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from shared.db import TYPE_ANNOTATION_MAP, service_metadata, utcnow
from shared.types import FeeKind, OrderStatus, PaymentMethod, QrChannel


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
    transaction_id: Mapped[str | None] = mapped_column(String(64))
    paid_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    items: Mapped[list[OrderItem]] = relationship(
        back_populates="order", order_by="OrderItem.registration_id"
    )


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
