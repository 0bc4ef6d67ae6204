"""Who is calling a service, without reading another service's database.

- **Buyers** log in at the registration service; their bearer token is forwarded to its
  ``GET /internal/sessions/current``, which answers with the account and its unit. A successful answer
  is kept in memory for 30 seconds (keyed by the token's SHA-256, never the token) so that not every
  call is a round trip. Services scope every buyer route to the buyer's unit: another unit's data is
  answered 404, as if it did not exist.
- **Staff** log in at the review service; their token is forwarded to its
  ``GET /internal/staff/sessions/current`` on every call (no cache: a deactivated account stops at
  once). Each service decides what each role may do there (``services/payment/auth.py`` for finance,
  ``services/certificate/auth.py`` for the certificate office and the missions' collection).
"""

from __future__ import annotations

import logging
import time
from typing import Annotated

import httpx
from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import ValidationError

from shared.http import ApiError, internal_headers
from shared.records import BUYER_TOKEN_HEADER, STAFF_TOKEN_HEADER, BuyerSession, StaffSessionRecord
from shared.security import sha256, unauthenticated
from shared.service import ServiceContext, context

log = logging.getLogger(__name__)

CACHE_SECONDS = 30.0
CACHE_MAX_ENTRIES = 10_000

buyer_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="BuyerBearer",
    description="the token from the registration service's POST /v1/sessions",
)
staff_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="StaffBearer",
    description="the token from the review service's POST /v1/staff/sessions",
)

_clock = time.monotonic  # the cache's clock (a test may move it on)

# token SHA-256 -> (monotonic time until which the answer may be used, the answer)
_buyer_cache: dict[str, tuple[float, BuyerSession]] = {}


def clear_cache() -> None:
    """Forget every cached buyer session (tests; a service that must re-ask at once)."""
    _buyer_cache.clear()


def registration_unavailable() -> ApiError:
    return ApiError(
        503,
        "registration_unavailable",
        "the registration service is not answering, so the login cannot be checked; try again",
        "报名服务暂时无法访问，无法核验登录状态，请稍后重试",
    )


def review_unavailable() -> ApiError:
    return ApiError(
        503,
        "review_unavailable",
        "the review service is not answering, so the staff login cannot be checked; try again",
        "审核服务暂时无法访问，无法核验工作人员登录状态，请稍后重试",
    )


def read_only() -> ApiError:
    return ApiError(
        403,
        "read_only",
        "observers may read, not decide or change anything",
        "观察员只能查看，不能审核或修改",
    )


def outside_your_mission() -> ApiError:
    """A mission staff member asked for another mission's data (a queue, an audit, statistics, a list)."""
    return ApiError(
        403,
        "outside_your_mission",
        "that mission is not yours to see",
        "无权查看其他交易团的数据",
        field="mission",
    )


async def _ask(
    ctx: ServiceContext, url: str, header: str, token: str, unavailable: ApiError
) -> httpx.Response | None:
    """The session route's answer; None if it refused the token (401 ``unauthenticated``)."""
    headers = internal_headers(ctx.settings) | {header: f"Bearer {token}"}
    try:
        response = await ctx.http.get(url, headers=headers)
    except httpx.HTTPError as exc:
        log.warning("session check at %s failed: %s", url, exc)
        raise unavailable from exc
    if response.status_code == 401:
        try:
            code = response.json().get("code")
        except ValueError:
            code = None
        if code == "unauthenticated":
            return None
        # Our service token was refused: a misconfiguration, not the caller's fault.
        log.error("session check at %s refused the service token", url)
        raise unavailable
    if response.status_code != 200:
        log.warning("session check at %s answered %s", url, response.status_code)
        raise unavailable
    return response


# ------------------------------------------------------------------------------------------ buyers


async def buyer_for_token(ctx: ServiceContext, token: str | None) -> BuyerSession:
    """The buyer session ``token`` belongs to, as the registration service says (or its cached answer
    of the last 30 seconds); 401 ``unauthenticated`` if refused, 503 ``registration_unavailable`` if
    the registration service does not answer."""
    if not token:
        raise unauthenticated()
    key = sha256(token)
    now = _clock()
    cached = _buyer_cache.get(key)
    if cached is not None and cached[0] > now:
        return cached[1]
    response = await _ask(
        ctx,
        f"{ctx.settings.registration_url}/internal/sessions/current",
        BUYER_TOKEN_HEADER,
        token,
        registration_unavailable(),
    )
    if response is None:
        _buyer_cache.pop(key, None)
        raise unauthenticated()
    try:
        buyer = BuyerSession.model_validate_json(response.content)
    except ValidationError as exc:
        log.error("the registration service's session answer is not understood: %s", exc)
        raise registration_unavailable() from exc
    if len(_buyer_cache) >= CACHE_MAX_ENTRIES:
        for stale in [k for k, (until, _) in _buyer_cache.items() if until <= now]:
            del _buyer_cache[stale]
        if len(_buyer_cache) >= CACHE_MAX_ENTRIES:
            _buyer_cache.clear()
    _buyer_cache[key] = (now + CACHE_SECONDS, buyer)
    return buyer


async def current_buyer(
    ctx: Annotated[ServiceContext, Depends(context)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(buyer_bearer)],
) -> BuyerSession:
    """The buyer whose bearer token this is; otherwise 401 ``unauthenticated``."""
    return await buyer_for_token(ctx, credentials.credentials if credentials else None)


CurrentBuyer = Annotated[BuyerSession, Depends(current_buyer)]


def owns_unit(buyer: BuyerSession, unit_id: str) -> bool:
    """Whether ``unit_id`` is the buyer's own unit (an account without a unit owns none)."""
    return buyer.unit_id is not None and buyer.unit_id == unit_id


# ------------------------------------------------------------------------------------------ staff


async def staff_for_token(ctx: ServiceContext, token: str | None) -> StaffSessionRecord:
    """The staff member ``token`` belongs to, as the review service says; 401 ``unauthenticated`` if
    refused, 503 ``review_unavailable`` if the review service does not answer."""
    if not token:
        raise unauthenticated()
    response = await _ask(
        ctx,
        f"{ctx.settings.review_url}/internal/staff/sessions/current",
        STAFF_TOKEN_HEADER,
        token,
        review_unavailable(),
    )
    if response is None:
        raise unauthenticated()
    try:
        return StaffSessionRecord.model_validate_json(response.content)
    except ValidationError as exc:
        log.error("the review service's session answer is not understood: %s", exc)
        raise review_unavailable() from exc


async def current_staff(
    ctx: Annotated[ServiceContext, Depends(context)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(staff_bearer)],
) -> StaffSessionRecord:
    """The staff member whose bearer token this is; otherwise 401 ``unauthenticated``."""
    return await staff_for_token(ctx, credentials.credentials if credentials else None)


CurrentStaff = Annotated[StaffSessionRecord, Depends(current_staff)]
