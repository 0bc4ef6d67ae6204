"""The codec endpoint of the Temporal Web UI (Temporal's "codec server" protocol), at ``/codec``.

Workflow payloads are encrypted (``shared/codec.py``), so the Temporal UI shows ciphertext until it is
told where to decode: ``POST /codec/decode`` (and ``/codec/encode``, for what an operator sends from
the UI) take and answer ``{"payloads": [...]}`` (payloads as protobuf JSON: base64 metadata values and
data), with the namespace in ``X-Namespace``. The review service hosts it because it owns the staff
logins.

Only the organiser's administrators see decrypted payloads: they are what the workflows carry about
every buyer of every mission (ids and statuses, and failures that may quote personal data), and no
other role needs them to do its work. Everyone else gets 401 ``unauthenticated`` (no login) or 403
``administrators_only``, and never plaintext. The login is the console's: the ``expo_staff`` cookie,
which the UI sends when "include cross-origin credentials" is set in its codec settings, or a staff
bearer token in ``Authorization`` (a UI behind single sign-on can pass its access token).

The UI calls from its own origin, so answers carry CORS headers for the origins listed in
``EXPO_CODEC_CORS_ORIGINS`` only (with credentials; preflight by OPTIONS); a call from any other origin
is refused before anything is decoded.
"""

from __future__ import annotations

import logging
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from google.protobuf.json_format import MessageToDict, Parse, ParseError
from temporalio.api.common.v1 import Payloads

from services.review.models import StaffAccount
from services.review.pages import SITE
from services.review.staff import require_administrator, staff_for_token
from shared.codec import PayloadDecryptionError, codec_for
from shared.http import ApiError, ErrorBody
from shared.security import unauthenticated
from shared.service import ServiceContext, context

log = logging.getLogger(__name__)
router = APIRouter(prefix="/codec", tags=["codec"])
Ctx = Annotated[ServiceContext, Depends(context)]
MAX_BODY_BYTES = 16 * 1024 * 1024  # a few events' payloads (Temporal caps one payload at 2 MB)
ALLOWED_HEADERS = "Authorization, Authorization-Extras, Content-Type, X-Namespace"
ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorBody} for code in (400, 401, 403, 413, 422)
}
Operation = Literal["encode", "decode"]


def origin_not_allowed() -> ApiError:
    return ApiError(
        403,
        "origin_not_allowed",
        "this page's origin may not use the codec endpoint (see EXPO_CODEC_CORS_ORIGINS)",
        "该网页来源无权调用编解码接口（见 EXPO_CODEC_CORS_ORIGINS）",
    )


def _cors_headers(ctx: ServiceContext, request: Request) -> dict[str, str]:
    """CORS headers for an allowed origin; none for another (the browser then keeps the answer from
    the page)."""
    origin = request.headers.get("origin")
    if origin is None or origin.rstrip("/") not in ctx.settings.codec_origins:
        return {}
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Credentials": "true",
        "Vary": "Origin",
    }


def _origin_allowed(ctx: ServiceContext, request: Request) -> bool:
    """No Origin (a program, not a browser page) or a listed one."""
    return "origin" not in request.headers or bool(_cors_headers(ctx, request))


@router.options("/{operation}", include_in_schema=False)
async def preflight(operation: Operation, ctx: Ctx, request: Request) -> Response:
    """The browser asks before it sends the login cookie and the JSON body from the UI's origin."""
    headers = _cors_headers(ctx, request)
    if not headers:
        return Response(status_code=403)
    headers |= {
        "Access-Control-Allow-Methods": "POST",
        "Access-Control-Allow-Headers": ALLOWED_HEADERS,
        "Access-Control-Max-Age": "600",
    }
    return Response(status_code=204, headers=headers)


async def _operator(ctx: ServiceContext, request: Request) -> StaffAccount:
    """The administrator calling: a staff bearer token, else the console's login cookie."""
    authorization = request.headers.get("authorization", "")
    scheme, _, bearer = authorization.partition(" ")
    candidates = [bearer.strip()] if scheme.lower() == "bearer" and bearer.strip() else []
    if cookie := request.cookies.get(SITE.cookie):
        candidates.append(cookie)  # after the bearer: a UI with single sign-on sends its own token
    staff: StaffAccount | None = None
    for token in candidates:
        try:
            staff, _ = await staff_for_token(ctx, token)
            break
        except ApiError:
            continue
    if staff is None:
        raise unauthenticated()
    require_administrator(staff)
    return staff


async def _payloads(request: Request) -> Payloads:
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise ApiError(413, "too_large", "too many payloads at once", "一次提交的数据过多")
    try:
        return Parse(body or b"{}", Payloads())
    except ParseError as exc:
        raise ApiError(
            400,
            "invalid_payloads",
            'the body must be {"payloads": [...]} with payloads as protobuf JSON',
            '请求内容须为 {"payloads": [...]}，其中数据为 protobuf JSON 格式',
        ) from exc


@router.post(
    "/{operation}",
    responses={200: {"description": '{"payloads": [...]}, as sent but encoded or decoded'}, **ERRORS},
)
async def codec(operation: Operation, ctx: Ctx, request: Request) -> Response:
    """Decode (decrypt) or encode (encrypt) payloads for the Temporal UI; administrators only."""
    cors = _cors_headers(ctx, request)
    try:
        if not _origin_allowed(ctx, request):
            raise origin_not_allowed()
        staff = await _operator(ctx, request)
        namespace = request.headers.get("x-namespace")
        if namespace is not None and namespace != ctx.settings.temporal_namespace:
            raise ApiError(
                400,
                "unknown_namespace",
                f"this codec serves namespace {ctx.settings.temporal_namespace!r} only",
                f"此编解码接口仅服务于命名空间 {ctx.settings.temporal_namespace!r}",
            )
        payloads = await _payloads(request)
        keys = ctx.settings.payload_keys
        payload_codec = codec_for(keys.get_secret_value() if keys else None)
        if payload_codec is not None:
            try:
                if operation == "decode":
                    await payload_codec.decode_wrapper(payloads)
                else:
                    await payload_codec.encode_wrapper(payloads)
            except PayloadDecryptionError as exc:
                raise ApiError(422, "cannot_decrypt", str(exc), "无法解密：密钥未配置或数据已被篡改") from exc
    except ApiError as error:
        return JSONResponse(error.body.model_dump(exclude_none=True), status_code=error.status, headers=cors)
    # Who read what, in the service log: personal data seen through the UI stays accountable.
    log.info("codec %s of %d payloads for staff %s", operation, len(payloads.payloads), staff.id)
    answer = {"payloads": MessageToDict(payloads).get("payloads", [])}
    return JSONResponse(answer, headers=cors | {"Cache-Control": "no-store"})
