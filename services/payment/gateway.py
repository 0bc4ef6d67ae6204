"""The interface a payment gateway adapter implements, and the adapter for the sandbox gateway.

A real adapter (UnionPay, WeChat Pay, Alipay, a bank's B2B gateway) implements the same methods with
the provider's API; the service and the workflows do not change.
"""

from __future__ import annotations

import json
from typing import Protocol

import httpx
from pydantic import BaseModel

from shared import signing
from shared.db import utcnow
from shared.types import QrChannel


class QrCode(BaseModel):
    payload: str  # what the QR code encodes: the buyer's phone opens it to pay
    gateway_order_id: str


class GatewayRefund(BaseModel):
    gateway_refund_id: str
    succeeded: bool


class Callback(BaseModel):
    """A gateway's asynchronous payment notice, once its signature has been verified."""

    merchant_id: str
    order_no: str
    transaction_id: str
    amount_fen: int
    paid_at: str


class GatewayRefundRecord(BaseModel):
    refund_no: str
    transaction_id: str
    amount_fen: int
    gateway_refund_id: str


class GatewayOrder(BaseModel):
    """What the gateway knows of an order (its query API): every transaction, every refund."""

    order_no: str
    amount_fen: int
    transactions: list[Callback]
    refunds: list[GatewayRefundRecord] = []


class B2BNotOpened(Exception):
    """The payer has not opened B2B (enterprise online banking) payment with its bank (FAQ XII)."""


class PaymentGateway(Protocol):
    async def create_qr(
        self, *, order_no: str, amount_fen: int, channel: QrChannel, notify_url: str
    ) -> QrCode: ...

    async def create_b2b(self, *, order_no: str, amount_fen: int, notify_url: str, payer: str) -> QrCode:
        """A B2B (enterprise online banking) payment: the payload is the page the unit pays on. Raises
        ``B2BNotOpened`` if the payer has not opened B2B payment with its bank."""
        ...

    async def refund(self, *, refund_no: str, transaction_id: str, amount_fen: int) -> GatewayRefund: ...

    async def query_order(self, order_no: str) -> GatewayOrder | None:
        """The gateway's record of the order (None: it knows no such order): to reconcile an order
        whose callbacks never came."""
        ...


class SandboxGateway:
    """Talks to the sandbox gateway (services/payment/sandbox_gateway.py) over signed HTTP."""

    def __init__(self, http: httpx.AsyncClient, base_url: str, merchant_id: str, key: str) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.merchant_id = merchant_id
        self.key = key

    async def _post(self, path: str, payload: dict[str, object]) -> dict[str, object]:
        body = json.dumps({"merchant_id": self.merchant_id, **payload}).encode()
        headers = {"Content-Type": "application/json", **signing.sign(self.key, body, utcnow())}
        response = await self.http.post(f"{self.base_url}{path}", content=body, headers=headers)
        response.raise_for_status()
        result: dict[str, object] = response.json()
        return result

    async def create_qr(
        self, *, order_no: str, amount_fen: int, channel: QrChannel, notify_url: str
    ) -> QrCode:
        result = await self._post(
            "/v1/qr",
            {
                "order_no": order_no,
                "amount_fen": amount_fen,
                "channel": channel.value,
                "notify_url": notify_url,
            },
        )
        return QrCode.model_validate(result)

    async def create_b2b(self, *, order_no: str, amount_fen: int, notify_url: str, payer: str) -> QrCode:
        # The sandbox treats a B2B payment like a QR code: a page to pay on, then the same callback.
        payment = {"order_no": order_no, "amount_fen": amount_fen, "channel": "b2b", "notify_url": notify_url}
        try:
            result = await self._post("/v1/qr", payment | {"payer": payer})
        except httpx.HTTPStatusError as exc:
            if exc.response.status_code == 409:
                raise B2BNotOpened(payer) from exc
            raise
        return QrCode.model_validate(result)

    async def refund(self, *, refund_no: str, transaction_id: str, amount_fen: int) -> GatewayRefund:
        result = await self._post(
            "/v1/refunds",
            {"refund_no": refund_no, "transaction_id": transaction_id, "amount_fen": amount_fen},
        )
        return GatewayRefund.model_validate(result)

    async def query_order(self, order_no: str) -> GatewayOrder | None:
        headers = signing.sign(self.key, b"", utcnow())
        response = await self.http.get(
            f"{self.base_url}/v1/orders/{order_no}",
            params={"merchant_id": self.merchant_id},
            headers=headers,
        )
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return GatewayOrder.model_validate(response.json())
