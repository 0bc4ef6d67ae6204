"""Who is calling: accounts' login tokens, and the scoping of every buyer-facing route to the caller's
own unit. Passwords, token digests and the lockout are shared with the staff logins (shared/security.py).

A token is a random string given once at login; the database keeps only its SHA-256, with an expiry.
A unit is reached only through the account that registered it: another account gets 404, as if the
unit did not exist, so ids cannot be probed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from services.registration.models import Account, AccountSession, PersonRegistration, Unit
from shared.db import utcnow
from shared.http import not_found
from shared.security import BUYER_TOKEN_LIFETIME, new_token, session_valid, sha256
from shared.security import code_digest as code_digest
from shared.security import hash_password as hash_password
from shared.security import password_matches as password_matches
from shared.security import unauthenticated as unauthenticated
from shared.service import ServiceContext, context

TOKEN_LIFETIME = BUYER_TOKEN_LIFETIME
_bearer = HTTPBearer(auto_error=False, description="the token from POST /v1/sessions")


async def issue_token(
    session: AsyncSession, account: Account, now: datetime | None = None
) -> tuple[str, AccountSession]:
    """A new login for ``account``: the token (handed to the caller once, never stored) and its row."""
    issued = new_token(TOKEN_LIFETIME, now or utcnow())
    login = AccountSession(
        token_sha256=issued.token_sha256,
        account_id=account.id,
        created_at=issued.issued_at,
        expires_at=issued.expires_at,
    )
    session.add(login)
    return issued.token, login


async def account_for_token(ctx: ServiceContext, token: str | None) -> tuple[Account, AccountSession]:
    """The account whose login ``token`` is, and the login; otherwise 401 ``unauthenticated``. The one
    lookup behind both the buyer-facing routes and GET /internal/sessions/current."""
    if not token:
        raise unauthenticated()
    async with ctx.db.sessions() as session:
        login = await session.get(AccountSession, sha256(token))
        if login is None or not session_valid(
            revoked_at=login.revoked_at, expires_at=login.expires_at, now=utcnow()
        ):
            raise unauthenticated()
        account = await session.get(Account, login.account_id)
    if account is None:
        raise unauthenticated()
    return account, login


async def current_account(
    ctx: Annotated[ServiceContext, Depends(context)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Account:
    account, _ = await account_for_token(ctx, credentials.credentials if credentials else None)
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
