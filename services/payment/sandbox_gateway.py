"""A sandbox payment gateway that behaves like the real ones at the edge of the world.

- ``POST /v1/qr`` (signed by the merchant): a QR payload for an order.
- ``POST /v1/pay/{token}``: what the buyer's phone does after scanning: the money moves, and the
  gateway notifies the merchant asynchronously with a signed callback, retried until it is
  acknowledged with a 2xx (as real gateways do), so the merchant sees duplicates.
- ``POST /v1/refunds`` (signed): refund (part of) a transaction.
- ``GET /v1/orders/{order_no}``: the query API to reconcile an order whose callback never came.

State is kept in memory: it is a sandbox, and restarting it is like switching gateways.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from dataclasses import dataclass, field
from typing import Annotated, Any

import httpx
from fastapi import Depends, FastAPI, Request
from pydantic import BaseModel

from services.payment import signing
from shared.db import utcnow
from shared.http import ApiError, add_health, install_error_handlers
from shared.settings import Settings, get_settings

log = logging.getLogger(__name__)
CALLBACK_ATTEMPTS = 8


@dataclass
class SandboxOrder:
    merchant_id: str
    order_no: str
    amount_fen: int
    channel: str
    notify_url: str
    token: str
    transactions: list[dict[str, Any]] = field(default_factory=list)
    refunds: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class SandboxState:
    orders: dict[str, SandboxOrder] = field(default_factory=dict)  # by order_no
    tokens: dict[str, str] = field(default_factory=dict)  # QR token -> order_no
    deliveries: set[asyncio.Task[None]] = field(default_factory=set)


app = FastAPI(title="Payment gateway sandbox", description=__doc__)
install_error_handlers(app)
add_health(app, "gateway-sandbox")
STATE = SandboxState()


async def merchant_body(
    request: Request, settings: Annotated[Settings, Depends(get_settings)]
) -> dict[str, Any]:
    """The request body, once the merchant's signature on it is verified."""
    body = await request.body()
    try:
        signing.verify(settings.gateway_key.get_secret_value(), dict(request.headers), body, utcnow())
    except signing.SignatureError as exc:
        raise ApiError(401, exc.code, str(exc)) from exc
    payload: dict[str, Any] = json.loads(body)
    if payload.get("merchant_id") != settings.gateway_merchant_id:
        raise ApiError(403, "unknown_merchant", "unknown merchant")
    return payload


MerchantBody = Annotated[dict[str, Any], Depends(merchant_body)]


@app.post("/v1/qr")
async def create_qr(payload: MerchantBody, request: Request) -> dict[str, str]:
    order = STATE.orders.get(payload["order_no"])
    if order is None:
        order = SandboxOrder(
            merchant_id=payload["merchant_id"],
            order_no=payload["order_no"],
            amount_fen=int(payload["amount_fen"]),
            channel=payload["channel"],
            notify_url=payload["notify_url"],
            token=secrets.token_urlsafe(12),
        )
        STATE.orders[order.order_no] = order
        STATE.tokens[order.token] = order.order_no
    return {"payload": f"{request.base_url}v1/pay/{order.token}", "gateway_order_id": f"SBX-{order.token}"}


class PayIn(BaseModel):
    amount_fen: int | None = None  # default: the order's amount


@app.post("/v1/pay/{token}")
async def pay(
    token: str, settings: Annotated[Settings, Depends(get_settings)], body: PayIn | None = None
) -> dict[str, Any]:
    """The buyer scanned and paid. The callback to the merchant follows asynchronously."""
    order_no = STATE.tokens.get(token)
    if order_no is None:
        raise ApiError(404, "unknown_qr", "this QR code is unknown or expired")
    order = STATE.orders[order_no]
    transaction = {
        "merchant_id": order.merchant_id,
        "order_no": order.order_no,
        "transaction_id": f"T{utcnow():%Y%m%d}{secrets.token_hex(6).upper()}",
        "amount_fen": body.amount_fen if body and body.amount_fen is not None else order.amount_fen,
        "paid_at": utcnow().isoformat(),
    }
    order.transactions.append(transaction)
    task = asyncio.create_task(
        _deliver(order.notify_url, transaction, settings.gateway_key.get_secret_value())
    )
    STATE.deliveries.add(task)
    task.add_done_callback(STATE.deliveries.discard)
    return transaction


async def _deliver(url: str, transaction: dict[str, Any], key: str) -> None:
    """POST the signed callback until the merchant acknowledges it, backing off between tries."""
    body = json.dumps(transaction).encode()
    async with httpx.AsyncClient(timeout=10) as client:
        for attempt in range(CALLBACK_ATTEMPTS):
            try:
                headers = {"Content-Type": "application/json", **signing.sign(key, body, utcnow())}
                response = await client.post(url, content=body, headers=headers)
                if response.is_success:
                    return
                log.warning("callback for %s answered %s", transaction["order_no"], response.status_code)
            except httpx.HTTPError as exc:
                log.warning("callback for %s failed: %s", transaction["order_no"], exc)
            await asyncio.sleep(min(2**attempt, 60))
    log.error("callback for %s given up after %d attempts", transaction["order_no"], CALLBACK_ATTEMPTS)


@app.post("/v1/refunds")
async def refund(payload: MerchantBody) -> dict[str, Any]:
    for order in STATE.orders.values():
        for transaction in order.transactions:
            if transaction["transaction_id"] != payload["transaction_id"]:
                continue
            done = next((r for r in order.refunds if r["refund_no"] == payload["refund_no"]), None)
            if done is None:  # the same refund number twice refunds once
                refunded = sum(
                    r["amount_fen"]
                    for r in order.refunds
                    if r["transaction_id"] == transaction["transaction_id"]
                )
                if refunded + int(payload["amount_fen"]) > transaction["amount_fen"]:
                    raise ApiError(409, "refund_exceeds_payment", "refund exceeds what was paid")
                done = {
                    "refund_no": payload["refund_no"],
                    "transaction_id": transaction["transaction_id"],
                    "amount_fen": int(payload["amount_fen"]),
                    "gateway_refund_id": f"RF{secrets.token_hex(6).upper()}",
                }
                order.refunds.append(done)
            return {"gateway_refund_id": done["gateway_refund_id"], "succeeded": True}
    raise ApiError(404, "unknown_transaction", "unknown transaction")


@app.get("/v1/orders/{order_no}")
async def query_order(order_no: str) -> dict[str, Any]:
    order = STATE.orders.get(order_no)
    if order is None:
        raise ApiError(404, "unknown_order", "unknown order")
    return {
        "order_no": order_no,
        "amount_fen": order.amount_fen,
        "transactions": order.transactions,
        "refunds": order.refunds,
    }
