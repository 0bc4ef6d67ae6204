"""Whose buyer token is this, for the other services (the payment service): they forward the caller's
token here instead of reading the registration database. Internal: the service token is required."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header

from services.registration.auth import account_for_token
from shared.http import ErrorBody, require_internal
from shared.records import BUYER_TOKEN_HEADER, BuyerSession, bearer_token
from shared.service import ServiceContext, context

router = APIRouter(dependencies=[Depends(require_internal)], tags=["internal"])


@router.get(
    "/internal/sessions/current",
    response_model=BuyerSession,
    responses={401: {"model": ErrorBody}},
)
async def current_session(
    ctx: Annotated[ServiceContext, Depends(context)],
    buyer_authorization: Annotated[str | None, Header(alias=BUYER_TOKEN_HEADER)] = None,
) -> BuyerSession:
    """The account whose token ``X-Buyer-Authorization: Bearer <token>`` carries, with its unit; 401
    ``unauthenticated`` if the token is missing, expired or revoked."""
    account, login = await account_for_token(ctx, bearer_token(buyer_authorization))
    return BuyerSession(
        account_id=account.id, kind=account.kind.value, unit_id=account.unit_id, expires_at=login.expires_at
    )
