"""Who is calling the review service: staff logins, their roles and what each role may see and do.

- **Mission staff** (a mission secretariat) see their own mission only, with its sub-missions. A review
  task's ``mission`` is the mission that manages the unit: for a unit that joined with a referral code
  that is the industrial mission, so an industrial mission's staff see exactly the units that joined
  with its codes (and not the regional mission their statistics roll into).
- **Administrators** (the organiser) see every mission, decide, and manage the staff accounts.
- **Observers** see every mission and decide nothing.

Logins are as secure as the buyers' (shared/security.py): argon2id, tokens kept as their SHA-256 (valid
8 hours), five failures in a row lock the login for 15 minutes. A deactivated account's tokens stop
working at once.

The first administrator comes from the command line (the password from ``EXPO_ADMIN_PASSWORD``, never
from the arguments)::

    EXPO_ADMIN_PASSWORD=... python -m services.review.staff create-admin --login L --name N
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.review.models import StaffAccount, StaffChange, StaffRole, StaffSession
from shared.auth import read_only
from shared.db import Database, utcnow
from shared.http import ApiError
from shared.ids import new_id
from shared.security import (
    STAFF_TOKEN_LIFETIME,
    Logins,
    hash_password_async,
    new_token,
    password_problem,
    session_valid,
    sha256,
    unauthenticated,
)
from shared.service import ServiceContext, context
from shared.settings import get_settings

ADMIN_PASSWORD_VARIABLE = "EXPO_ADMIN_PASSWORD"  # noqa: S105 - the variable's name, not a password
STAFF_LOGINS = Logins(StaffAccount, StaffAccount.id, StaffAccount.failed_logins, StaffAccount.locked_until)
staff_bearer = HTTPBearer(
    auto_error=False, scheme_name="StaffBearer", description="the token from POST /v1/staff/sessions"
)


# ------------------------------------------------------------------------------------------ who is calling


async def issue_staff_token(
    session: AsyncSession, staff: StaffAccount, now: datetime | None = None
) -> tuple[str, StaffSession]:
    """A new login for ``staff``: the token (handed over once, never stored) and its row (8 hours)."""
    issued = new_token(STAFF_TOKEN_LIFETIME, now or utcnow())
    login = StaffSession(
        token_sha256=issued.token_sha256,
        staff_id=staff.id,
        created_at=issued.issued_at,
        expires_at=issued.expires_at,
    )
    session.add(login)
    return issued.token, login


async def staff_for_token(ctx: ServiceContext, token: str | None) -> tuple[StaffAccount, StaffSession]:
    """The active staff account whose login ``token`` is, and the login; otherwise 401
    ``unauthenticated``. The one lookup behind both the staff routes and the internal
    GET /internal/staff/sessions/current."""
    if not token:
        raise unauthenticated()
    async with ctx.db.sessions() as session:
        login = await session.get(StaffSession, sha256(token))
        if login is None or not session_valid(
            revoked_at=login.revoked_at, expires_at=login.expires_at, now=utcnow()
        ):
            raise unauthenticated()
        staff = await session.get(StaffAccount, login.staff_id)
    if staff is None or not staff.active:
        raise unauthenticated()
    return staff, login


async def current_staff(
    ctx: Annotated[ServiceContext, Depends(context)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(staff_bearer)],
) -> StaffAccount:
    """The active staff account whose bearer token this is; otherwise 401 ``unauthenticated``."""
    staff, _ = await staff_for_token(ctx, credentials.credentials if credentials else None)
    return staff


CurrentStaff = Annotated[StaffAccount, Depends(current_staff)]


# ------------------------------------------------------------------------------------------ scope


def mission_filter(staff: StaffAccount) -> str | None:
    """The one mission whose data ``staff`` may read, or None: every mission (administrators,
    observers). Mission staff without a mission (never written so) match no mission at all."""
    if staff.role is StaffRole.MISSION_STAFF:
        return staff.mission or ""
    if staff.role is StaffRole.FINANCE:
        return staff.mission  # finance staff of one mission, or of all
    return None


def sees_mission(staff: StaffAccount, mission: str) -> bool:
    """Whether ``staff`` may read the data of ``mission`` (a review task's managing mission)."""
    if staff.role in (StaffRole.MISSION_STAFF, StaffRole.FINANCE) and staff.mission is not None:
        return staff.mission == mission
    return staff.role is not StaffRole.MISSION_STAFF


def administrators_only() -> ApiError:
    return ApiError(
        403,
        "administrators_only",
        "only the organiser's administrators may do this",
        "仅主办方管理员可以执行此操作",
    )


def require_decider(staff: StaffAccount) -> None:
    """Mission staff and administrators decide reviews; observers, finance staff (who decide payments,
    in the payment service) and the certificate office get 403 ``read_only``."""
    if staff.role not in (StaffRole.MISSION_STAFF, StaffRole.ADMINISTRATOR):
        raise read_only()


def require_administrator(staff: StaffAccount) -> None:
    """Administrators only; anyone else gets 403 ``administrators_only``."""
    if staff.role is not StaffRole.ADMINISTRATOR:
        raise administrators_only()


# ------------------------------------------------------------------------------------------ bootstrap


def normalised_login(login: str) -> str:
    """A staff login has the form of an email address (``name@domain``), kept lower-cased; ValueError if
    not. Only the form is checked here: a local deployment's ``admin@expo.local`` is a fine login."""
    login = login.strip().lower()
    local, _, domain = login.partition("@")
    if not local or not domain or "@" in domain or len(login) > 254 or any(ch.isspace() for ch in login):
        raise ValueError(f"the login must be an email address (name@domain), not {login!r}")
    return login


async def ensure_administrator(db: Database, login: str, name: str, password: str) -> bool:
    """Create the administrator ``login`` unless an account with that login exists (whatever its role:
    it is left as it is). True if it was created now. The creation is audited (actor None: the command
    line; reason "bootstrap"). ValueError if the login is not an email, the name is empty or the
    password breaks the password rule."""
    login = normalised_login(login)
    name = name.strip()
    if not name or len(name) > 100:
        raise ValueError("the name needs 1 to 100 characters")
    problem = password_problem(password, email=login)
    if problem is not None:
        raise ValueError(problem[0])
    async with db.sessions() as session:
        if await session.scalar(select(StaffAccount.id).where(StaffAccount.login == login)) is not None:
            return False  # before hashing: no work when there is nothing to do
    staff = StaffAccount(
        id=new_id("S"),
        login=login,
        name=name,
        role=StaffRole.ADMINISTRATOR,
        mission=None,
        password_hash=await hash_password_async(password),
        active=True,
        failed_logins=0,
        created_at=utcnow(),
    )
    try:
        async with db.transaction() as session:
            session.add(staff)
            await session.flush()
            session.add(
                StaffChange(
                    at=staff.created_at,
                    actor_id=None,
                    staff_id=staff.id,
                    action="created",
                    detail={
                        "login": {"from": None, "to": login},
                        "name": {"from": None, "to": name},
                        "role": {"from": None, "to": StaffRole.ADMINISTRATOR.value},
                    },
                    reason="bootstrap",
                )
            )
    except IntegrityError:  # created meanwhile by another call
        return False
    return True


async def _create_admin(login: str, name: str, password: str) -> int:
    db = Database(get_settings().service_database_url("review"))
    try:
        created = await ensure_administrator(db, login, name, password)
    except ValueError as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 2
    finally:
        await db.dispose()
    login = normalised_login(login)
    print(f"administrator {login} created" if created else f"{login} exists already: left unchanged")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m services.review.staff",
        description="Staff accounts of the review service (EXPO_* settings; the database migrated).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser(
        "create-admin",
        help=f"create an administrator unless the login exists; the password is read from "
        f"{ADMIN_PASSWORD_VARIABLE}",
    )
    create.add_argument("--login", required=True, help="an email address")
    create.add_argument("--name", required=True)
    args = parser.parse_args(argv)
    password = os.environ.get(ADMIN_PASSWORD_VARIABLE)
    if not password:
        print(
            f"refused: set the password in the environment variable {ADMIN_PASSWORD_VARIABLE}",
            file=sys.stderr,
        )
        return 2
    return asyncio.run(_create_admin(args.login, args.name, password))


if __name__ == "__main__":
    sys.exit(main())
