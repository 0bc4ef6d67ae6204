"""Buyers' changes, saved as pending revisions and applied only when the workflow allows them.

The API validates a change into one of the models here and saves it (``unit_revisions``,
``person_revisions``); the workflow's update decides whether the change applies now and, if it does,
calls ``registration.apply_revision``, which copies the data onto the unit or the person.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from pydantic import BaseModel, ConfigDict

from services.registration import validation
from services.registration.missions import place_unit
from services.registration.models import PersonRegistration, Unit
from services.registration.schemas import UnitIn
from shared.catalogue import load_missions
from shared.types import Affiliation, IdType, UnitKind


class _Data(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    def copy_onto(self, row: Any) -> None:
        for name, value in self:
            setattr(row, name, value)


class UnitData(_Data):
    """A unit's validated data with its mission placement: the columns of ``Unit`` a buyer sets."""

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
    mission: str
    sub_mission: str | None
    statistics_mission: str
    statistics_sub_mission: str | None
    referral_code: str | None


class PersonalData(_Data):
    """What a person may change of their own data (the identity and the delivery method stay)."""

    name: str
    mobile: str  # E.164
    email: str
    job_title: str
    personnel_label: str
    delivery_address: dict[str, str] | None
    entrance_date: date


class Identity(PersonalData):
    """Another person taking the place (a substitution): a new identity under the same registration."""

    id_type: IdType
    id_number: str
    nationality: str


def unit_data(body: UnitIn) -> UnitData:
    """Validate a unit's data and place it in its trade mission (FAQ II); refusals are ApiErrors."""
    domestic = body.mission.affiliation is not Affiliation.OVERSEAS
    credit_code = None
    if domestic:
        if not body.credit_code:
            raise validation.invalid(
                "credit_code",
                "credit_code_required",
                "a domestic unit needs its credit code",
                "请填写统一社会信用代码",
            )
        credit_code = validation.credit_code(body.credit_code)
    elif not body.registration_no:
        raise validation.invalid(
            "registration_no",
            "registration_no_required",
            "an overseas unit needs its registration number",
            "境外单位请填写注册号",
        )
    placement = place_unit(
        load_missions(),
        affiliation=body.mission.affiliation,
        credit_code=credit_code,
        chosen_mission=body.mission.mission,
        chosen_sub_mission=body.mission.sub_mission,
        referral_code=body.mission.referral_code,
    )
    return UnitData(
        kind=body.kind,
        affiliation=body.mission.affiliation,
        name=body.name,
        credit_code=credit_code,
        country="CN" if domestic else body.country,
        foreign_registration_no=None if domestic else body.registration_no,
        address=body.address,
        industry=body.industry,
        contact_name=body.contact.name,
        contact_mobile=validation.mobile(body.contact.mobile, "contact.mobile"),
        contact_email=str(body.contact.email),
        mission=placement.mission,
        sub_mission=placement.sub_mission,
        statistics_mission=placement.statistics_mission,
        statistics_sub_mission=placement.statistics_sub_mission,
        referral_code=placement.referral_code,
    )


def apply_unit(unit: Unit, data: dict[str, Any]) -> None:
    UnitData.model_validate(data).copy_onto(unit)


def apply_person(
    person: PersonRegistration, revision_id: str, data: dict[str, Any], substitution: bool
) -> None:
    """Personal data replaces the person's; a substitute also replaces the identity and needs a photo of
    their own (the registration id stays: the place, its payment and its reviews are the registration's)."""
    if not substitution:
        PersonalData.model_validate(data).copy_onto(person)
        return
    Identity.model_validate(data).copy_onto(person)
    person.photo_key = None
    person.photo_sha256 = None
    person.identity_revision_id = revision_id
