"""The accounts API's request and response bodies (services/registration/accounts.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, EmailStr, Field, StringConstraints

from services.registration.models import AccountKind
from services.registration.schemas import Body

Password = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Login = Annotated[str, StringConstraints(strip_whitespace=True, to_lower=True, min_length=1, max_length=254)]
Channel = Literal["sms", "email"]


class AccountIn(Body):
    kind: AccountKind = Field(description="unit: registers a unit and its people; individual: oneself")
    email: EmailStr = Field(description="the login, and where reset codes go by email")
    mobile: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=32)] = Field(
        description="where reset codes go by SMS; without a country code it is read as Chinese"
    )
    password: Password = Field(
        description="at least 10 characters with letters and digits, not the email or the mobile"
    )


class AccountOut(BaseModel):
    id: str
    kind: AccountKind
    login: str
    email: str
    mobile: str
    unit_id: str | None = Field(description="the unit the account registered, once it has")
    created_at: datetime


class LoginIn(Body):
    login: Login = Field(description="the account's email")
    password: Password


class SessionOut(BaseModel):
    token: str = Field(description="send it as `Authorization: Bearer <token>`; it is shown only once")
    expires_at: datetime
    account: AccountOut


class PasswordResetIn(Body):
    login: Login = Field(description="the account's email")
    channel: Channel = Field(
        description="sms: to the account's mobile (Chinese mainland mobiles; others get the code by "
        "email); email: to the account's email"
    )


class PasswordResetRequested(BaseModel):
    message: str
    message_zh: str


class PasswordResetConfirmIn(Body):
    login: Login
    code: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=16)]
    new_password: Password
