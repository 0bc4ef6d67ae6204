"""What the registration service tells the other services over its /internal routes (with the
service token): one definition for the side that answers and the sides that ask."""

from __future__ import annotations

import logging
from datetime import date, datetime

import httpx
from pydantic import BaseModel, Field

from shared.http import ApiError, internal_headers
from shared.service import ServiceContext
from shared.types import (
    Affiliation,
    DeliveryMethod,
    FeeKind,
    IdType,
    RegistrationStatus,
    UnitKind,
    UnitStatus,
)

log = logging.getLogger(__name__)


def is_mainland_mobile(e164: str) -> bool:
    """SMS and express delivery reach Chinese mainland mobiles only (FAQ VIII, IX)."""
    return e164.startswith("+86")


class DeliveryAddress(BaseModel):
    """A Chinese mainland address for express delivery of the certificate."""

    recipient: str
    mobile: str
    province: str
    city: str
    district: str
    detail: str
    postal_code: str


class PersonRecord(BaseModel):
    registration_id: str
    edition: str
    unit_id: str
    unit_name: str
    name: str
    nationality: str
    mobile: str
    email: str
    mission: str
    sub_mission: str | None
    fee_kind: FeeKind
    status: RegistrationStatus
    delivery_method: DeliveryMethod
    delivery_address: DeliveryAddress | None
    photo_key: str | None


class UnitMemberRecord(BaseModel):
    registration_id: str
    status: RegistrationStatus
    fee_kind: FeeKind


class UnitMembersRecord(BaseModel):
    unit_id: str
    edition: str
    mission: str
    sub_mission: str | None
    members: list[UnitMemberRecord]


def registration_unavailable() -> ApiError:
    return ApiError(
        503,
        "registration_unavailable",
        "the registration service did not answer: try again shortly",
        "报名服务暂时无法访问，请稍后再试",
    )


async def ask_registration(ctx: ServiceContext, path: str) -> bytes | None:
    """For an API: the registration service's answer on one of its internal routes; None for its 404;
    503 ``registration_unavailable`` when it does not answer (or answers anything else)."""
    try:
        response = await ctx.http.get(
            f"{ctx.settings.registration_url}{path}", headers=internal_headers(ctx.settings)
        )
    except httpx.HTTPError as exc:
        log.warning("registration service unreachable for %s: %s", path, type(exc).__name__)
        raise registration_unavailable() from exc
    if response.status_code == 404:
        return None
    if response.status_code != 200:
        log.warning("registration service answered %s for %s", response.status_code, path)
        raise registration_unavailable()
    return response.content


async def fetch_person(ctx: ServiceContext, registration_id: str) -> PersonRecord:
    """A person as the registration service knows them (raises for HTTP errors: activities retry)."""
    response = await ctx.http.get(
        f"{ctx.settings.registration_url}/internal/registrations/{registration_id}",
        headers=internal_headers(ctx.settings),
    )
    response.raise_for_status()
    return PersonRecord.model_validate_json(response.content)


# ------------------------------------------------------------------------------------------ statistics


class UnitPersonRecord(BaseModel):
    registration_id: str
    name: str
    status: RegistrationStatus


class UnitData(BaseModel):
    """A unit as registered: what the buyer's API answers (``UnitOut``, with its ``id``) and what the
    other services are told (``UnitRecord``, with its ``unit_id`` and people)."""

    edition: str
    kind: UnitKind
    affiliation: Affiliation
    name: str
    credit_code: str | None
    country: str
    foreign_registration_no: str | None
    address: str
    industry: str
    contact_name: str
    contact_mobile: str
    contact_email: str
    referral_code: str | None
    mission: str
    sub_mission: str | None
    statistics_mission: str
    statistics_sub_mission: str | None
    status: UnitStatus
    review_round: int
    reject_reason: str | None
    created_at: datetime
    updated_at: datetime


class UnitRecord(UnitData):
    """A unit as registered (GET /internal/units/{unit_id}), with its people in the order they joined."""

    unit_id: str
    people: list[UnitPersonRecord]


class PersonReviewData(BaseModel):
    """A person as the personnel review sees them: no contact details, the document number masked."""

    registration_id: str
    edition: str
    unit_id: str
    unit_name: str
    mission: str
    sub_mission: str | None
    name: str
    id_type: IdType
    id_number_masked: str
    nationality: str = Field(description="ISO 3166 alpha-2")
    job_title: str
    personnel_label: str
    entrance_date: date | None
    delivery_method: DeliveryMethod
    fee_kind: FeeKind
    revalidate_certificate_no: str | None
    status: RegistrationStatus


class PersonReviewRecord(PersonReviewData):
    """A person for the personnel review (GET /internal/registrations/{id}/review-data)."""

    photo_key: str | None = Field(description="the photo's key in the photos bucket, once it was checked")
    created_at: datetime


class PlacementGroupRecord(BaseModel):
    """Where a group of units counts: the mission (and sub-mission) that manages them, an industrial one
    for units that joined with a referral code, and the one their statistics roll into (regional,
    Central Enterprise or NHC; the same as the first for everyone else)."""

    mission: str
    sub_mission: str | None
    statistics_mission: str
    statistics_sub_mission: str | None


class PeopleCountRecord(PlacementGroupRecord):
    status: RegistrationStatus
    people: int


class UnitCountRecord(PlacementGroupRecord):
    status: UnitStatus
    units: int


class RegistrationStatisticsRecord(BaseModel):
    """An edition's registrations counted by placement and status (GET /internal/statistics): what the
    review service's statistics are computed from. Groups with no one in them are absent."""

    edition: str
    people: list[PeopleCountRecord]
    units: list[UnitCountRecord]


# ------------------------------------------------------------------------------------------ sessions


class BuyerSession(BaseModel):
    """Whose buyer token this is (GET /internal/sessions/current, the token in X-Buyer-Authorization):
    how the other services learn the caller's unit without reading the registration database."""

    account_id: str
    kind: str  # the account's kind (unit, ...)
    unit_id: str | None  # None until the account has registered its unit
    expires_at: datetime


class StaffSessionRecord(BaseModel):
    """Whose staff token this is (the review service's GET /internal/staff/sessions/current, the token
    in X-Staff-Authorization): the staff member's login, role and mission."""

    staff_id: str
    login: str
    role: str  # a StaffRole value: mission_staff, administrator, observer, finance, certificate_office
    mission: str | None
    expires_at: datetime


# The headers carrying the caller's own "Bearer <token>" to the session routes (names, not secrets).
BUYER_TOKEN_HEADER = "X-Buyer-Authorization"  # noqa: S105 - GET /internal/sessions/current
STAFF_TOKEN_HEADER = "X-Staff-Authorization"  # noqa: S105 - GET /internal/staff/sessions/current


def bearer_token(header: str | None) -> str | None:
    """The token of an ``Authorization``-style header value ``Bearer <token>``; None if it is not one."""
    scheme, _, token = (header or "").strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token
