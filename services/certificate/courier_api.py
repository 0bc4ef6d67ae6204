"""The courier's tracking callbacks: ``POST /v1/courier/events``, signed with the key we share with it.

A callback may come twice (the courier retries until we answer 2xx), late or out of order: each event
is stored once by its id, and the buyer reads them in the order they happened. A forged, tampered,
unsigned or stale callback is refused with 401, the replay of an identical signed one with 409;
neither stores anything.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ValidationError

from services.certificate.courier import CourierEvent
from services.certificate.delivery import RegistrationUnreachable
from services.certificate.tracking import ingest
from shared import signing
from shared.db import utcnow
from shared.http import ApiError, ErrorBody
from shared.service import ServiceContext, context
from shared.signing import NonceCache

router = APIRouter(tags=["courier"])
Ctx = Annotated[ServiceContext, Depends(context)]
# Nonces of the courier's signed callbacks seen within the signature window: a replay is refused (the
# courier signs every delivery, a repeated one too, afresh). In memory, so per API process.
REPLAYS = NonceCache()
ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorBody} for code in (401, 403, 409, 422, 503)
}


class CourierCallback(BaseModel):
    """What the courier posts: our customer account, its carrier code, and one or more events."""

    customer_id: str
    carrier: str
    events: list[CourierEvent]


class CallbackAck(BaseModel):
    received: int
    stored: int  # events new to us (the rest were duplicates)


@router.post("/v1/courier/events", responses=ERRORS, summary="The courier's signed tracking callback")
async def courier_events(request: Request, ctx: Ctx) -> CallbackAck:
    """Verified, each event stored once, a delivery passed on to the registration; acknowledged with 200
    (anything else and the courier tries again later)."""
    body = await request.body()
    now = utcnow()
    try:
        signing.verify(ctx.settings.courier_key.get_secret_value(), dict(request.headers), body, now)
    except signing.SignatureError as exc:
        raise ApiError(401, exc.code, str(exc), "快递回调签名无效或已过期") from exc
    try:
        callback = CourierCallback.model_validate_json(body)
    except ValidationError as exc:
        raise ApiError(
            422, "invalid_callback", "the callback body is not understood", "无法识别的快递回调"
        ) from exc
    if REPLAYS.check(dict(request.headers), now):  # the identical signed request, sent again
        raise ApiError(409, "replayed", "this signed callback has already been received", "该回调已接收过")
    if callback.customer_id != ctx.settings.courier_customer_id:
        raise ApiError(
            403, "unknown_customer", "the callback is for another customer account", "非本账号的回调"
        )
    try:
        stored = await ingest(ctx, callback.carrier, callback.events)
    except RegistrationUnreachable as exc:
        # The events are stored; the delivery is not passed on yet. A 503 makes the courier send the
        # callback again, and its delivered event is then passed on.
        raise ApiError(
            503,
            "workflow_unavailable",
            "the delivery could not be passed on yet: send it again",
            "请稍后重发",
        ) from exc
    return CallbackAck(received=len(callback.events), stored=stored)
