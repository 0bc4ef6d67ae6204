"""Who is calling: accounts' passwords (argon2id), login tokens, and the scoping of every buyer-facing
route to the caller's own unit.

A token is a random string given once at login; the database keeps only its SHA-256, with an expiry.
A unit is reached only through the account that registered it: another account gets 404, as if the
unit did not exist, so ids cannot be probed.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta
from typing import Annotated

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from services.registration.models import Account, AccountSession, PersonRegistration, Unit
from shared.db import utcnow
from shared.http import ApiError, not_found
from shared.service import ServiceContext, context

TOKEN_LIFETIME = timedelta(hours=12)
_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters
_bearer = HTTPBearer(auto_error=False, description="the token from POST /v1/sessions")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def password_matches(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def code_digest(key: str, code: str) -> str:
    """A one-time code's keyed digest (HMAC-SHA256): six digits alone would be guessed from a plain hash."""
    return hmac.new(key.encode(), code.encode(), hashlib.sha256).hexdigest()


async def issue_token(
    session: AsyncSession, account: Account, now: datetime | None = None
) -> tuple[str, AccountSession]:
    """A new login for ``account``: the token (handed to the caller once, never stored) and its row."""
    token = secrets.token_urlsafe(32)
    issued = now or utcnow()
    login = AccountSession(
        token_sha256=sha256(token),
        account_id=account.id,
        created_at=issued,
        expires_at=issued + TOKEN_LIFETIME,
    )
    session.add(login)
    return token, login


def unauthenticated() -> ApiError:
    return ApiError(
        401,
        "unauthenticated",
        "log in first: the token is missing, expired or revoked",
        "请先登录：登录凭证缺失或已失效",
    )


async def current_account(
    ctx: Annotated[ServiceContext, Depends(context)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Account:
    if credentials is None:
        raise unauthenticated()
    async with ctx.db.sessions() as session:
        login = await session.get(AccountSession, sha256(credentials.credentials))
        if login is None or login.revoked_at is not None or login.expires_at <= utcnow():
            raise unauthenticated()
        account = await session.get(Account, login.account_id)
    if account is None:
        raise unauthenticated()
    return account


CurrentAccount = Annotated[Account, Depends(current_account)]


def own_unit(account: Account, unit: Unit | None) -> Unit:
    """The unit, if it is the caller's; otherwise 404 (another unit's data is not even acknowledged)."""
    if unit is None or unit.id != account.unit_id:
        raise not_found("unit", "单位")
    return unit


def own_person(account: Account, person: PersonRegistration | None) -> PersonRegistration:
    if person is None or person.unit_id != account.unit_id:
        raise not_found("registration", "报名记录")
    return person
