"""A sandbox payment gateway that behaves like the real ones at the edge of the world.

- ``POST /v1/qr`` (signed by the merchant): a QR payload for an order.
- ``POST /v1/pay/{token}``: what the buyer's phone does after scanning: the money moves, and the
  gateway notifies the merchant asynchronously with a signed callback, retried until it is
  acknowledged with a 2xx (as real gateways do), so the merchant sees duplicates.
- ``POST /v1/refunds`` (signed): refund (part of) a transaction.
- ``GET /v1/orders/{order_no}``: the query API to reconcile an order whose callback never came.

The sandbox misbehaves on request, as real gateways do on their own (``POST /v1/sandbox/behaviour``
for an order, or query parameters on the pay URL for one payment):

- ``copies=N``: the callback is delivered N times (acknowledged or not): duplicates;
- ``delay=S``: the callback leaves S seconds after the payment;
- ``hold=true``: the callback is held back and delivered only after the next payment's callback for
  the same order (or ``POST /v1/sandbox/orders/{order_no}/release``): out of order;
- ``lost=true``: the callback is never delivered (the query API still shows the transaction);
- ``refund_failures=K`` / ``refund_timeouts=K`` (behaviour only): the first K refund attempts are
  answered "failed" (nothing refunded), or are made but answered 504 as if the answer timed out.

Every callback sent is kept in ``STATE.sent`` (URL, body, headers, status), so a test can replay an
identical signed callback.

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
from fastapi import Depends, FastAPI, Query, Request
from pydantic import BaseModel, Field

from shared import signing
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
    held: list[dict[str, Any]] = field(default_factory=list)  # callbacks held back (out of order)
    refund_attempts: int = 0


class Behaviour(BaseModel):
    """How the sandbox treats an order's payments and refunds (defaults: like a well-behaved gateway)."""

    copies: int = Field(default=1, ge=1, le=20)
    delay: float = Field(default=0, ge=0, le=3600)
    hold: bool = False
    lost: bool = False
    refund_failures: int = Field(default=0, ge=0)
    refund_timeouts: int = Field(default=0, ge=0)


@dataclass
class SentCallback:
    url: str
    body: bytes
    headers: dict[str, str]
    status: int | None  # None: the merchant could not be reached


@dataclass
class SandboxState:
    orders: dict[str, SandboxOrder] = field(default_factory=dict)  # by order_no
    tokens: dict[str, str] = field(default_factory=dict)  # QR token -> order_no
    deliveries: set[asyncio.Task[None]] = field(default_factory=set)
    behaviours: dict[str, Behaviour] = field(default_factory=dict)  # by order_no
    sent: list[SentCallback] = field(default_factory=list)
    # The client callbacks are delivered with (tests mount the merchant's app in process); None: a new one.
    # Payers (the paying unit's reference) whose bank has opened enterprise online banking (B2B).
    b2b_opened: set[str] = field(default_factory=set)
    callback_client: httpx.AsyncClient | None = None
    retry_seconds: float = 1.0  # the first back-off between unacknowledged deliveries (doubling)

    def behaviour(self, order_no: str) -> Behaviour:
        return self.behaviours.get(order_no) or Behaviour()

    def reset(self) -> None:
        for delivery in list(self.deliveries):
            delivery.cancel()
        self.orders.clear()
        self.tokens.clear()
        self.behaviours.clear()
        self.sent.clear()
        self.b2b_opened.clear()
        self.callback_client = None
        self.retry_seconds = 1.0

    async def delivered(self) -> None:
        """Until every callback under way has been delivered (or given up)."""
        while self.deliveries:
            await asyncio.gather(*list(self.deliveries), return_exceptions=True)


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
    if payload["channel"] == "b2b" and payload.get("payer") not in STATE.b2b_opened:
        # A bank's B2B gateway takes only payers that opened enterprise online banking in advance.
        raise ApiError(409, "b2b_not_opened", "the payer has not opened B2B payment with its bank")
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
    token: str,
    settings: Annotated[Settings, Depends(get_settings)],
    body: PayIn | None = None,
    copies: Annotated[int | None, Query(ge=1, le=20)] = None,
    delay: Annotated[float | None, Query(ge=0, le=3600)] = None,
    hold: bool | None = None,
    lost: bool | None = None,
) -> dict[str, Any]:
    """The buyer scanned and paid. The callback to the merchant follows asynchronously, as the
    order's behaviour (or this payment's query parameters) says."""
    order_no = STATE.tokens.get(token)
    if order_no is None:
        raise ApiError(404, "unknown_qr", "this QR code is unknown or expired")
    order = STATE.orders[order_no]
    overrides = {"copies": copies, "delay": delay, "hold": hold, "lost": lost}
    behaviour = STATE.behaviour(order_no).model_copy(
        update={name: value for name, value in overrides.items() if value is not None}
    )
    transaction = {
        "merchant_id": order.merchant_id,
        "order_no": order.order_no,
        "transaction_id": f"T{utcnow():%Y%m%d}{secrets.token_hex(6).upper()}",
        "amount_fen": body.amount_fen if body and body.amount_fen is not None else order.amount_fen,
        "paid_at": utcnow().isoformat(),
    }
    order.transactions.append(transaction)
    key = settings.gateway_key.get_secret_value()
    if behaviour.lost:
        log.info("callback for %s lost on purpose", transaction["transaction_id"])
    elif behaviour.hold:
        order.held.append({"transaction": transaction, "copies": behaviour.copies})
    else:
        _schedule(order, transaction, key, behaviour.copies, behaviour.delay, release_held=True)
    return transaction


def _schedule(
    order: SandboxOrder,
    transaction: dict[str, Any],
    key: str,
    copies: int,
    delay: float,
    *,
    release_held: bool,
) -> None:
    held, order.held = (order.held, []) if release_held else ([], order.held)
    task = asyncio.create_task(_deliver_all(order.notify_url, transaction, key, copies, delay, held))
    STATE.deliveries.add(task)
    task.add_done_callback(STATE.deliveries.discard)


async def _deliver_all(
    url: str,
    transaction: dict[str, Any],
    key: str,
    copies: int,
    delay: float,
    held: list[dict[str, Any]],
) -> None:
    """This payment's callback (``copies`` times, after ``delay``), then the older ones held back."""
    if delay:
        await asyncio.sleep(delay)
    for _ in range(copies):
        await _deliver(url, transaction, key)
    for older in held:
        for _ in range(older["copies"]):
            await _deliver(url, older["transaction"], key)


async def _deliver(url: str, transaction: dict[str, Any], key: str) -> None:
    """POST the signed callback until the merchant acknowledges it, backing off between tries."""
    body = json.dumps(transaction).encode()
    client = STATE.callback_client or httpx.AsyncClient(timeout=10)
    try:
        for attempt in range(CALLBACK_ATTEMPTS):
            headers = {"Content-Type": "application/json", **signing.sign(key, body, utcnow())}
            sent = SentCallback(url=url, body=body, headers=headers, status=None)
            STATE.sent.append(sent)
            try:
                response = await client.post(url, content=body, headers=headers)
                sent.status = response.status_code
                if response.is_success:
                    return
                log.warning("callback for %s answered %s", transaction["order_no"], response.status_code)
            except httpx.HTTPError as exc:
                log.warning("callback for %s failed: %s", transaction["order_no"], exc)
            await asyncio.sleep(min(STATE.retry_seconds * 2**attempt, 60))
        log.error("callback for %s given up after %d attempts", transaction["order_no"], CALLBACK_ATTEMPTS)
    finally:
        if client is not STATE.callback_client:
            await client.aclose()


@app.post("/v1/refunds")
async def refund(payload: MerchantBody) -> Any:
    for order in STATE.orders.values():
        for transaction in order.transactions:
            if transaction["transaction_id"] != payload["transaction_id"]:
                continue
            behaviour = STATE.behaviour(order.order_no)
            order.refund_attempts += 1
            if order.refund_attempts <= behaviour.refund_failures:
                return {"gateway_refund_id": "", "succeeded": False}
            timing_out = order.refund_attempts <= behaviour.refund_failures + behaviour.refund_timeouts
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
            if timing_out:  # the refund is made, but the answer never reaches the merchant
                raise ApiError(504, "gateway_timeout", "the gateway did not answer in time")
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


# ------------------------------------------------------------------------------------------ sandbox control


class BehaviourIn(Behaviour):
    order_no: str


@app.post("/v1/sandbox/behaviour")
async def set_behaviour(body: BehaviourIn) -> dict[str, Any]:
    """How the sandbox is to treat an order's payments and refunds from now on (tests, demos)."""
    behaviour = Behaviour.model_validate(body.model_dump(exclude={"order_no"}))
    STATE.behaviours[body.order_no] = behaviour
    order = STATE.orders.get(body.order_no)
    if order is not None:
        order.refund_attempts = 0
    return {"order_no": body.order_no, **behaviour.model_dump()}


@app.post("/v1/sandbox/orders/{order_no}/release")
async def release_held(order_no: str, settings: Annotated[Settings, Depends(get_settings)]) -> dict[str, int]:
    """Deliver the callbacks held back for an order now (oldest first)."""
    order = STATE.orders.get(order_no)
    if order is None:
        raise ApiError(404, "unknown_order", "unknown order")
    held, order.held = order.held, []
    key = settings.gateway_key.get_secret_value()
    for older in held:
        _schedule(order, older["transaction"], key, older["copies"], 0, release_held=False)
    return {"released": len(held)}


class B2BPayerIn(BaseModel):
    payer: str


@app.post("/v1/sandbox/b2b-accounts", status_code=204)
async def open_b2b(body: B2BPayerIn) -> None:
    """Sandbox control: the payer's bank has opened B2B (enterprise online banking) for it."""
    STATE.b2b_opened.add(body.payer)
