"""The registration API's request and response bodies."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, EmailStr, Field, StringConstraints

from shared.records import DeliveryAddress, UnitData
from shared.types import (
    Affiliation,
    DeliveryMethod,
    FeeKind,
    IdType,
    RegistrationStatus,
    UnitKind,
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


class UnitOut(UnitData):
    """A unit as the buyer's API answers it: its data as registered, and its id."""

    id: str


class DeliveryAddressIn(Body):
    """Where the courier brings the certificate: a Chinese mainland address (FAQ VIII), which the buyer
    confirms will still reach them for six months (certificates go out weeks or months later)."""

    recipient: Text
    mobile: Text = Field(description="a Chinese mainland mobile the courier calls")
    province: Text = Field(description="a mainland province, autonomous region or municipality, e.g. 上海市")
    city: Text
    district: Text
    detail: Text
    postal_code: Annotated[str, StringConstraints(pattern=r"^\d{6}$")]
    valid_for_six_months: bool = Field(
        description="the buyer confirms the address will reach them for the next six months (must be true)"
    )


class PersonChangeIn(Body):
    """Personal data a person may change before the personnel review passes. The identity (document
    type, number, nationality) is changed by a substitution; the delivery method and re-validation
    are fixed at registration."""

    name: Text
    mobile: Text
    email: EmailStr
    job_title: Text
    personnel_label: Text = Field(description="e.g. purchaser, manager, technical staff")
    delivery_address: DeliveryAddressIn | None = None
    entrance_date: date = Field(description="the day of entrance printed on the certificate: an expo day")


class PersonIn(PersonChangeIn):
    id_type: IdType
    id_number: Text
    nationality: CountryCode = "CN"
    delivery_method: DeliveryMethod
    revalidate_certificate_no: str | None = Field(
        default=None,
        description="re-validation (FAQ VII): the number of your certificate of the previous edition, "
        "e.g. B05-0001234, if its data (name, unit, mission, personnel label, photo) is unchanged",
    )


class WithdrawalIn(Body):
    requested_by: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)] = (
        "buyer"
    )


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
    nationality: str
    mobile: str
    email: str
    job_title: str
    personnel_label: str
    fee_kind: FeeKind
    delivery_method: DeliveryMethod
    delivery_address: DeliveryAddress | None
    entrance_date: date | None
    status: StatusLabel
    deadline: datetime | None = Field(description="the deadline that applies now, Beijing time")
    revalidate_certificate_no: str | None = Field(description="last edition's certificate, re-validated")
    photo_uploaded: bool
    photo_upload: PhotoUploadOut | None = None


class RegistrationStatusOut(BaseModel):
    registration_id: str
    status: StatusLabel


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
    revalidate_certificate_no: str | None = Field(description="last edition's certificate, re-validated")
    steps: list[TimelineStepOut]


class DeadlineExtensionIn(Body):
    """New payment deadlines (instants with their time zone); a method left out keeps its deadline."""

    qr: AwareDatetime | None = None
    b2b: AwareDatetime | None = None
    transfer: AwareDatetime | None = Field(default=None, description="the bank transfer and its voucher")
    extended_by: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000)]


class InstantOut(BaseModel):
    beijing: datetime
    utc: datetime


class PaymentDeadlinesOut(BaseModel):
    edition: str
    qr: InstantOut = Field(description="payment by QR code (UnionPay, WeChat Pay, Alipay)")
    b2b: InstantOut = Field(description="payment through the B2B gateway")
    transfer: InstantOut = Field(description="bank transfer and the upload of its voucher")


class EditionOut(BaseModel):
    edition: str
    name_zh: str
    name_en: str
    registration_closes: InstantOut = Field(description="no on-site registration after it")
    payment: PaymentDeadlinesOut
    expo_opens: InstantOut
    expo_closes: InstantOut
    fees_fen: dict[str, int] = Field(description="per person, by fee kind, in fen")


class DeadlineExtensionOut(PaymentDeadlinesOut):
    extension_id: str
