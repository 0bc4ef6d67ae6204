"""The registration API's request and response bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints

from shared.types import (
    Affiliation,
    DeliveryMethod,
    FeeKind,
    IdType,
    RegistrationStatus,
    UnitKind,
    UnitStatus,
)

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
CountryCode = Annotated[str, StringConstraints(strip_whitespace=True, to_upper=True, pattern=r"^[A-Z]{2}$")]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ContactIn(Body):
    name: Text
    mobile: Text
    email: EmailStr


class MissionChoiceIn(Body):
    affiliation: Affiliation = Field(
        description="residence: by the credit code's region; central_enterprise: choose the group as "
        "sub_mission; nhc: an institution under the National Health Commission; overseas: choose the mission"
    )
    mission: str | None = None
    sub_mission: str | None = None
    referral_code: str | None = Field(default=None, description="joins an industrial trade mission")


class UnitIn(Body):
    kind: UnitKind
    name: Text
    credit_code: str | None = Field(default=None, description="Unified Social Credit Code (domestic units)")
    country: CountryCode = "CN"
    registration_no: str | None = Field(default=None, description="registration number (overseas units)")
    address: Text
    industry: Text
    contact: ContactIn
    mission: MissionChoiceIn


class UnitOut(BaseModel):
    id: str
    edition: str
    kind: UnitKind
    name: str
    country: str
    mission: str
    sub_mission: str | None
    statistics_mission: str
    statistics_sub_mission: str | None
    status: UnitStatus
    review_round: int
    reject_reason: str | None
    created_at: datetime


class DeliveryAddressIn(Body):
    recipient: Text
    mobile: Text
    province: Text
    city: Text
    district: Text
    detail: Text
    postal_code: Annotated[str, StringConstraints(pattern=r"^\d{6}$")]


class PersonIn(Body):
    name: Text
    id_type: IdType
    id_number: Text
    nationality: CountryCode = "CN"
    mobile: Text
    email: EmailStr
    job_title: Text
    personnel_label: Text = Field(description="e.g. purchaser, manager, technical staff")
    delivery_method: DeliveryMethod
    delivery_address: DeliveryAddressIn | None = None


class StatusLabel(BaseModel):
    code: RegistrationStatus
    zh: str
    en: str


class PhotoUploadOut(BaseModel):
    url: str
    method: str = "PUT"
    headers: dict[str, str]
    expires_in: int


class PersonOut(BaseModel):
    registration_id: str
    unit_id: str
    edition: str
    name: str
    id_type: IdType
    id_number_masked: str
    fee_kind: FeeKind
    delivery_method: DeliveryMethod
    status: StatusLabel
    deadline: datetime | None = Field(description="the deadline that applies now, Beijing time")
    photo_uploaded: bool
    photo_upload: PhotoUploadOut | None = None


class TimelineStepOut(BaseModel):
    seq: int
    step: str
    status: StatusLabel
    at: datetime = Field(description="Beijing time")
    deadline: datetime | None
    reason: str | None
    detail: dict[str, str]


class NextAction(BaseModel):
    zh: str
    en: str


class TimelineOut(BaseModel):
    registration_id: str
    status: StatusLabel
    next_action: NextAction | None
    deadline: datetime | None = Field(description="the deadline that applies now, Beijing time")
    steps: list[TimelineStepOut]
