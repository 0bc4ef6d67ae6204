"""Who may do what in the certificate service.

Buyers and staff are recognised as everywhere (``shared/auth.py``). Here:

- **buyers** see their own unit's registrations' cards (``Certificate.unit_id``, or
  ``CertificateActivation.unit_id`` for a re-activated old card); anything else answers 404, as if it
  did not exist. They never get a badge PDF: it carries the admission QR code.
- **mission staff** see, list and hand out the cards of their own mission (``Certificate.mission``)
  that the mission collects; another mission's card answers 404, another mission's list 403
  ``outside_your_mission``;
- the **certificate office** sees every mission's cards, hands out any card at the certificate centre
  (on-site pickups are theirs alone) and reissues lost cards;
- **administrators** may do everything; **observers** read everything and change nothing (403
  ``read_only``); **finance** staff are refused (403 ``certificate_staff_only``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials

from services.certificate.models import Certificate, CertificateActivation
from shared.auth import (
    buyer_bearer,
    buyer_for_token,
    owns_unit,
    read_only,
    staff_bearer,
    staff_for_token,
)
from shared.http import ApiError
from shared.records import BuyerSession
from shared.service import ServiceContext, context
from shared.types import DeliveryMethod

MISSION_STAFF = "mission_staff"
ADMINISTRATOR = "administrator"
OBSERVER = "observer"
CERTIFICATE_OFFICE = "certificate_office"
CERTIFICATE_ROLES = (MISSION_STAFF, ADMINISTRATOR, OBSERVER, CERTIFICATE_OFFICE)


def certificate_staff_only() -> ApiError:
    return ApiError(
        403,
        "certificate_staff_only",
        "only the certificate office, mission staff, administrators and observers may see certificates",
        "仅证件中心、交易团工作人员、主办方管理员和观察员可以查看证件",
    )


def certificate_office_only(what: str, what_zh: str) -> ApiError:
    return ApiError(
        403,
        "certificate_office_only",
        f"only the certificate office and administrators {what}",
        f"仅证件中心和主办方管理员可以{what_zh}",
    )


@dataclass(frozen=True)
class CertificateStaff:
    """A staff member allowed on the certificate routes."""

    staff_id: str
    login: str
    role: str  # mission_staff, administrator, observer or certificate_office
    mission: str | None

    def mission_filter(self) -> str | None:
        """The one mission whose cards this staff member sees, or None: every mission. Mission staff
        without a mission (never written so) see none: "" matches no card."""
        return (self.mission or "") if self.role == MISSION_STAFF else None

    def sees(self, mission: str | None) -> bool:
        """Whether a card of ``mission`` (``Certificate.mission``; None for a card made before it was
        kept, or issued elsewhere) is visible to this staff member."""
        scope = self.mission_filter()
        return scope is None or scope == mission

    def require_writer(self) -> None:
        """Observers read only: 403 ``read_only``."""
        if self.role == OBSERVER:
            raise read_only()

    def require_hand_out(self, method: DeliveryMethod) -> None:
        """A mission's collected cards are handed out by its staff (whose scope is checked by ``sees``),
        the certificate office and administrators; on-site pickups at the certificate centre by the
        office and administrators only. (Express cards are refused before: the courier delivers them.)"""
        self.require_writer()
        if method is DeliveryMethod.ONSITE_PICKUP and self.role == MISSION_STAFF:
            raise certificate_office_only("hand out cards picked up on site", "发放现场领取的证件")

    def require_reissue(self) -> None:
        self.require_writer()
        if self.role not in (CERTIFICATE_OFFICE, ADMINISTRATOR):
            raise certificate_office_only("reissue lost cards", "补办遗失的证件")


async def certificate_staff_for_token(ctx: ServiceContext, token: str | None) -> CertificateStaff:
    """The staff member ``token`` belongs to; 401 ``unauthenticated`` if refused, 403
    ``certificate_staff_only`` for finance staff, 503 ``review_unavailable`` if the review service does
    not answer."""
    staff = await staff_for_token(ctx, token)
    if staff.role not in CERTIFICATE_ROLES:
        raise certificate_staff_only()
    return CertificateStaff(
        staff_id=staff.staff_id, login=staff.login, role=staff.role, mission=staff.mission
    )


async def current_certificate_staff(
    ctx: Annotated[ServiceContext, Depends(context)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(staff_bearer)],
) -> CertificateStaff:
    return await certificate_staff_for_token(ctx, credentials.credentials if credentials else None)


CurrentCertificateStaff = Annotated[CertificateStaff, Depends(current_certificate_staff)]

Caller = BuyerSession | CertificateStaff


async def current_caller(
    ctx: Annotated[ServiceContext, Depends(context)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(buyer_bearer)],
) -> Caller:
    """A buyer, or else a staff member: the registration routes serve both. A token the registration
    service does not know is asked of the review service."""
    token = credentials.credentials if credentials else None
    try:
        return await buyer_for_token(ctx, token)
    except ApiError as refused:
        if refused.status != 401:
            raise
    return await certificate_staff_for_token(ctx, token)


CurrentCaller = Annotated[Caller, Depends(current_caller)]


def may_see(
    caller: Caller, certificate: Certificate | None, activation: CertificateActivation | None = None
) -> bool:
    """Whether ``caller`` may see a registration's card: the card made for it, or the old card its
    ``activation`` re-activated (then ``certificate`` is that old card if it was issued here).

    Buyers by the registration's unit; staff by the card's mission (a card issued elsewhere has none
    here: only staff of every mission see it)."""
    if isinstance(caller, BuyerSession):
        # The registration's unit: the activation's for a re-activated card (the old card was another
        # registration's, perhaps another unit's), else the card's.
        owner = activation or certificate
        return owner is not None and owner.unit_id is not None and owns_unit(caller, owner.unit_id)
    return caller.sees(certificate.mission if certificate else None)
