"""Returning buyers (FAQ VII): "registered buyer of the previous CIIE" looks up the holder's last
certificate and fills the unit form with the affiliation as it was.

Included in the registration app with ``app.include_router(previous_api.router)``.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from services.registration import validation
from services.registration.auth import CurrentAccount
from services.registration.previous import (
    edition_number,
    fee_kind_for,
    is_preferentially_reissuable,
    is_revalidatable,
    last_certificate,
    mask_id_number,
    mask_name,
    no_previous_certificate,
)
from shared.http import ErrorBody
from shared.service import ServiceContext, context
from shared.types import Affiliation, FeeKind, IdType, UnitKind

router = APIRouter(prefix="/v1/previous-buyers", tags=["previous buyers"])
Ctx = Annotated[ServiceContext, Depends(context)]
ERRORS: dict[int | str, dict[str, object]] = {code: {"model": ErrorBody} for code in (401, 404, 422)}


class PreviousMissionChoiceOut(BaseModel):
    """As ``mission`` of the unit form (POST /v1/units)."""

    affiliation: Affiliation
    mission: str | None
    sub_mission: str | None
    referral_code: str | None


class PreviousUnitOut(BaseModel):
    """The affiliation as it was, in the unit form's fields (the contact is not kept)."""

    kind: UnitKind
    name: str
    credit_code: str | None = Field(description="Unified Social Credit Code (domestic units)")
    country: str
    registration_no: str | None = Field(description="registration number (overseas units)")
    address: str
    industry: str
    mission: PreviousMissionChoiceOut


class PreviousCertificateOut(BaseModel):
    certificate_no: str
    edition: str
    edition_number: int
    name_masked: str
    id_type: IdType
    id_number_masked: str
    personnel_label: str
    entrance_date: date
    lost_or_damaged: bool
    revalidatable: bool = Field(
        description="a card of the previous edition, not lost: re-validated if its data is unchanged"
    )
    preferential_reissue: bool = Field(
        description="a card of the edition before the previous one: reissued at the preferential rate"
    )
    fee_kind: FeeKind
    fee: int = Field(description="per person, in fen")
    unit: PreviousUnitOut


@router.get("/lookup", response_model=PreviousCertificateOut, responses=ERRORS)
async def lookup_previous_certificate(
    account: CurrentAccount,
    ctx: Ctx,
    id_type: Annotated[IdType, Query()],
    id_number: Annotated[str, Query(min_length=1, max_length=32)],
) -> PreviousCertificateOut:
    """The holder's last certificate of the previous edition (or, failing one, of the edition before
    it), whether it can be re-validated or reissued at the preferential rate, and the affiliation
    as it was, to fill the unit form. 404 ``no_previous_certificate`` if there is none."""
    edition = ctx.edition
    number = validation.id_number(id_type, id_number)
    async with ctx.db.sessions() as session:
        previous = await last_certificate(session, edition, id_type, number)
    if previous is None:
        raise no_previous_certificate(edition)
    fee_kind = fee_kind_for(previous, edition)
    return PreviousCertificateOut(
        certificate_no=previous.certificate_no,
        edition=previous.edition,
        edition_number=edition_number(previous.edition),
        name_masked=mask_name(previous.name),
        id_type=previous.id_type,
        id_number_masked=mask_id_number(previous.id_number),
        personnel_label=previous.personnel_label,
        entrance_date=previous.entrance_date,
        lost_or_damaged=previous.lost_or_damaged,
        revalidatable=is_revalidatable(previous, edition),
        preferential_reissue=is_preferentially_reissuable(previous, edition),
        fee_kind=fee_kind,
        fee=edition.fee(fee_kind),
        unit=PreviousUnitOut(
            kind=previous.unit_kind,
            name=previous.unit_name,
            credit_code=previous.credit_code,
            country=previous.country,
            registration_no=previous.foreign_registration_no,
            address=previous.address,
            industry=previous.industry,
            mission=PreviousMissionChoiceOut(
                affiliation=previous.affiliation,
                mission=previous.mission,
                sub_mission=previous.sub_mission,
                referral_code=previous.referral_code,
            ),
        ),
    )
