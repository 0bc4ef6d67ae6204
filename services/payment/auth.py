"""Who may use the payment service's routes.

Buyers and staff are recognised as everywhere (``shared/auth.py``). Finance staff see their mission's
orders if they have a mission, else every mission's; administrators see and decide everything;
observers see everything and decide nothing (403 ``read_only``); other staff are refused (403
``finance_only``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials

from shared.auth import (
    CurrentBuyer,
    buyer_bearer,
    buyer_for_token,
    owns_unit,
    read_only,
    staff_bearer,
    staff_for_token,
)
from shared.http import ApiError
from shared.service import ServiceContext, context

__all__ = ["CurrentBuyer", "buyer_bearer", "buyer_for_token", "owns_unit"]


def finance_only() -> ApiError:
    return ApiError(
        403,
        "finance_only",
        "only finance staff, the organiser's administrators and observers may see payments",
        "仅财务人员、主办方管理员和观察员可以查看缴费信息",
    )


# ------------------------------------------------------------------------------------------ finance


@dataclass(frozen=True)
class FinanceStaff:
    """A staff member allowed on the finance routes."""

    staff_id: str
    login: str
    role: str  # finance, administrator or observer
    mission: str | None  # finance staff of one mission; None: every mission

    def mission_filter(self) -> str | None:
        """The one mission whose orders this staff member sees, or None: every mission."""
        return self.mission if self.role == "finance" else None

    def sees(self, mission: str) -> bool:
        """Whether an order of ``mission`` (PaymentOrder.mission) is visible to this staff member."""
        scope = self.mission_filter()
        return scope is None or scope == mission

    @property
    def decides(self) -> bool:
        return self.role in ("finance", "administrator")


FINANCE_ROLES = ("finance", "administrator", "observer")


async def finance_for_token(ctx: ServiceContext, token: str | None) -> FinanceStaff:
    """The finance staff member ``token`` belongs to, as the review service says; 401
    ``unauthenticated`` if refused, 403 ``finance_only`` for other staff, 503 ``review_unavailable``
    if the review service does not answer."""
    staff = await staff_for_token(ctx, token)
    if staff.role not in FINANCE_ROLES:
        raise finance_only()
    return FinanceStaff(staff_id=staff.staff_id, login=staff.login, role=staff.role, mission=staff.mission)


async def current_finance(
    ctx: Annotated[ServiceContext, Depends(context)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(staff_bearer)],
) -> FinanceStaff:
    """The finance staff member (or administrator, or observer) whose bearer token this is."""
    return await finance_for_token(ctx, credentials.credentials if credentials else None)


CurrentFinance = Annotated[FinanceStaff, Depends(current_finance)]


def require_finance_decider(staff: FinanceStaff) -> None:
    """Finance staff and administrators decide; observers get 403 ``read_only``."""
    if not staff.decides:
        raise read_only()
