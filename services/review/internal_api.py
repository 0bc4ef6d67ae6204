"""Whose staff token is this, for the other services (the payment service's finance routes): they
forward the caller's token here instead of reading the review database. Internal: the service token
is required."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header

from services.review.staff import staff_for_token
from shared.http import ErrorBody, require_internal
from shared.records import STAFF_TOKEN_HEADER, StaffSessionRecord, bearer_token
from shared.service import ServiceContext, context

router = APIRouter(dependencies=[Depends(require_internal)], tags=["internal"])


@router.get(
    "/internal/staff/sessions/current",
    response_model=StaffSessionRecord,
    responses={401: {"model": ErrorBody}},
)
async def current_staff_session(
    ctx: Annotated[ServiceContext, Depends(context)],
    staff_authorization: Annotated[str | None, Header(alias=STAFF_TOKEN_HEADER)] = None,
) -> StaffSessionRecord:
    """The active staff account whose token ``X-Staff-Authorization: Bearer <token>`` carries, with its
    role and mission; 401 ``unauthenticated`` if the token is missing, expired or revoked, or the
    account has been deactivated."""
    staff, login = await staff_for_token(ctx, bearer_token(staff_authorization))
    return StaffSessionRecord(
        staff_id=staff.id,
        login=staff.login,
        role=staff.role.value,
        mission=staff.mission,
        expires_at=login.expires_at,
    )
