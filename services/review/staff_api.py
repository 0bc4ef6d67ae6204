"""Staff logins, staff accounts and the audit log of staff changes. Included in the review app with
``app.include_router(staff_api.router)``.

- ``POST /v1/staff/sessions``: a login exactly as secure as a buyer's (shared/security.py): the same 401
  for an unknown login, a wrong password and a deactivated account; 423 after five failures in a row.
- Administrators create staff accounts (mission staff belong to one mission of the catalogue), change
  their role, mission or whether they are active, and set new passwords. Every change writes a
  ``StaffChange`` row (who, when, what, why) in the same transaction; password hashes never appear in it.
- ``GET /v1/audit/staff-changes``: administrators and observers read every change, mission staff the
  changes to their own mission's accounts (including accounts moved into or out of it).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints
from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from services.review.models import StaffAccount, StaffChange, StaffRole, StaffSession
from services.review.staff import (
    STAFF_LOGINS,
    CurrentStaff,
    issue_staff_token,
    mission_filter,
    require_administrator,
    staff_bearer,
)
from shared.catalogue import load_missions
from shared.db import utcnow
from shared.http import ApiError, ErrorBody, not_found
from shared.ids import new_id
from shared.security import (
    LOCKOUT,
    account_locked,
    check_password,
    clear_failed_logins,
    count_failed_login,
    dummy_hash,
    hash_password_async,
    invalid_credentials,
    password_matches_async,
    sha256,
    unauthenticated,
)
from shared.service import ServiceContext, context

log = logging.getLogger(__name__)
router = APIRouter()
Ctx = Annotated[ServiceContext, Depends(context)]
STAFF_LOCKED_REMEDY = ("ask an administrator to set a new password", "联系管理员重设密码")


def _errors(*codes: int) -> dict[int | str, dict[str, object]]:
    return {code: {"model": ErrorBody} for code in codes}


# ------------------------------------------------------------------------------------------ bodies

Password = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Login = Annotated[str, StringConstraints(strip_whitespace=True, to_lower=True, min_length=1, max_length=254)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Mission = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StaffLoginIn(Body):
    login: Login = Field(description="the staff member's email")
    password: Password


class StaffOut(BaseModel):
    id: str
    login: str
    name: str
    role: StaffRole
    mission: str | None = Field(description="mission staff: the mission (with its sub-missions) they serve")
    active: bool
    created_at: datetime


class StaffSessionOut(BaseModel):
    token: str = Field(description="send it as `Authorization: Bearer <token>`; it is shown only once")
    expires_at: datetime
    staff: StaffOut


class StaffIn(Body):
    login: EmailStr = Field(description="an email address, the login")
    name: Name
    role: StaffRole
    mission: Mission | None = Field(
        default=None, description="required for mission staff (a mission code); refused for other roles"
    )
    password: Password = Field(
        description="at least 10 characters with letters and digits, not the login or its name part"
    )
    reason: Reason = Field(description="why the account is opened (kept in the audit log)")


class StaffPatchIn(Body):
    role: StaffRole | None = None
    mission: Mission | None = Field(
        default=None, description="absent: unchanged; null: none (for roles other than mission staff)"
    )
    active: bool | None = Field(default=None, description="false: the account's tokens stop working at once")
    reason: Reason = Field(description="why (kept in the audit log)")


class StaffPasswordIn(Body):
    password: Password
    reason: Reason


class StaffChangeOut(BaseModel):
    id: int
    at: datetime
    actor_id: str | None = Field(description="who made the change; null: the command line (bootstrap)")
    actor_login: str | None
    staff_id: str
    staff_login: str
    action: str = Field(
        description="created, role_changed, mission_changed, deactivated, reactivated, password_set"
    )
    detail: dict[str, Any] = Field(description='what changed: {"field": {"from": ..., "to": ...}}')
    reason: str | None


def _staff_out(staff: StaffAccount) -> StaffOut:
    return StaffOut.model_validate(staff, from_attributes=True)


# ------------------------------------------------------------------------------------------ refusals


def staff_exists() -> ApiError:
    return ApiError(
        409,
        "staff_exists",
        "a staff account with this login exists",
        "该登录名的工作人员账户已存在",
        field="login",
    )


def mission_required() -> ApiError:
    return ApiError(
        422,
        "mission_required",
        "mission staff need the mission they serve",
        "交易团工作人员须指定所属交易团",
        field="mission",
    )


def mission_not_allowed(role: StaffRole) -> ApiError:
    return ApiError(
        422,
        "mission_not_allowed",
        f"a mission is for mission staff only, not for the role {role.value}",
        "只有交易团工作人员可以指定所属交易团",
        field="mission",
    )


def unknown_mission(code: str) -> ApiError:
    return ApiError(
        422, "unknown_mission", f"no mission {code!r} in the catalogue", "交易团代码不存在", field="mission"
    )


def last_administrator() -> ApiError:
    return ApiError(
        409,
        "last_administrator",
        "this would leave no active administrator: appoint another one first",
        "此操作将导致没有可用的管理员，请先指定其他管理员",
    )


def _staff_not_found() -> ApiError:
    return not_found("staff account", "工作人员账户")


def _check_mission(role: StaffRole, mission: str | None) -> None:
    """Mission staff belong to a mission; finance staff may (else they serve every mission); the
    organiser's administrators and observers to none."""
    if role is StaffRole.MISSION_STAFF and mission is None:
        raise mission_required()
    if mission is not None and role not in (StaffRole.MISSION_STAFF, StaffRole.FINANCE):
        raise mission_not_allowed(role)
    if mission is not None and load_missions().get(mission) is None:
        raise unknown_mission(mission)


def _diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """What changed, field by field: ``{"role": {"from": "observer", "to": "administrator"}}``."""
    return {
        key: {"from": before.get(key), "to": value}
        for key, value in after.items()
        if before.get(key) != value
    }


# ------------------------------------------------------------------------------------------ sessions


@router.post(
    "/v1/staff/sessions",
    status_code=201,
    response_model=StaffSessionOut,
    responses=_errors(401, 422, 423),
    tags=["staff sessions"],
)
async def log_in(body: StaffLoginIn, ctx: Ctx) -> StaffSessionOut:
    """Log in with the staff login and password: a bearer token valid for 8 hours."""
    now = utcnow()
    async with ctx.db.sessions() as session:
        staff = await session.scalar(select(StaffAccount).where(StaffAccount.login == body.login))
    if staff is None or not staff.active:
        await password_matches_async(dummy_hash(), body.password)  # as long as a known login
        raise invalid_credentials()
    if staff.locked_until is not None and LOCKOUT.is_locked(staff.locked_until, now):
        raise account_locked(staff.locked_until, remedy=STAFF_LOCKED_REMEDY)  # the password is not tried
    if not await password_matches_async(staff.password_hash, body.password):
        async with ctx.db.transaction() as session:
            until = await count_failed_login(
                session, STAFF_LOGINS, staff.id, locked_until=staff.locked_until, now=now
            )
        if until is not None:
            log.info("staff %s locked after %d failed logins", staff.id, LOCKOUT.max_failures)
            raise account_locked(until, remedy=STAFF_LOCKED_REMEDY)
        raise invalid_credentials()
    async with ctx.db.transaction() as session:
        await clear_failed_logins(session, STAFF_LOGINS, staff.id)
        token, login = await issue_staff_token(session, staff, now)
    staff.failed_logins, staff.locked_until = 0, None
    return StaffSessionOut(token=token, expires_at=login.expires_at, staff=_staff_out(staff))


@router.delete("/v1/staff/sessions/current", status_code=204, responses=_errors(401), tags=["staff sessions"])
async def log_out(
    staff: CurrentStaff,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(staff_bearer)],
    ctx: Ctx,
) -> Response:
    """Log out: the token used for this call stops working."""
    if credentials is None:  # current_staff has refused it already
        raise unauthenticated()
    async with ctx.db.transaction() as session:
        await session.execute(
            update(StaffSession)
            .where(
                StaffSession.token_sha256 == sha256(credentials.credentials),
                StaffSession.staff_id == staff.id,
                StaffSession.revoked_at.is_(None),
            )
            .values(revoked_at=utcnow())
        )
    return Response(status_code=204)


@router.get("/v1/staff/me", response_model=StaffOut, responses=_errors(401), tags=["staff sessions"])
async def me(staff: CurrentStaff) -> StaffOut:
    """The staff member logged in: role, and mission for mission staff."""
    return _staff_out(staff)


# ------------------------------------------------------------------------------------------ accounts


@router.post(
    "/v1/staff",
    status_code=201,
    response_model=StaffOut,
    responses=_errors(401, 403, 409, 422),
    tags=["staff accounts"],
)
async def create_staff(body: StaffIn, actor: CurrentStaff, ctx: Ctx) -> StaffOut:
    """Open a staff account (administrators only). Mission staff need their mission; other roles have none."""
    require_administrator(actor)
    _check_mission(body.role, body.mission)
    login = str(body.login).lower()
    check_password(body.password, email=login)
    async with ctx.db.sessions() as session:
        if await session.scalar(select(StaffAccount.id).where(StaffAccount.login == login)) is not None:
            raise staff_exists()  # before hashing: no work for a taken login
    now = utcnow()
    staff = StaffAccount(
        id=new_id("S"),
        login=login,
        name=body.name,
        role=body.role,
        mission=body.mission,
        password_hash=await hash_password_async(body.password),
        active=True,
        failed_logins=0,
        created_at=now,
    )
    fields = {"login": login, "name": body.name, "role": body.role.value, "mission": body.mission}
    async with ctx.db.transaction() as session:
        session.add(staff)
        try:
            await session.flush()
        except IntegrityError as exc:  # the same login, created meanwhile
            raise staff_exists() from exc
        session.add(
            StaffChange(
                at=now,
                actor_id=actor.id,
                staff_id=staff.id,
                action="created",
                detail=_diff({}, fields),
                reason=body.reason,
            )
        )
    log.info("staff %s (%s) created by %s", staff.id, staff.role.value, actor.id)
    return _staff_out(staff)


@router.get("/v1/staff", response_model=list[StaffOut], responses=_errors(401, 403), tags=["staff accounts"])
async def list_staff(
    actor: CurrentStaff,
    ctx: Ctx,
    role: StaffRole | None = None,
    mission: str | None = None,
    active: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[StaffOut]:
    """The staff accounts (administrators only), by login; filtered by role, mission, active."""
    require_administrator(actor)
    query = select(StaffAccount)
    if role is not None:
        query = query.where(StaffAccount.role == role)
    if mission is not None:
        query = query.where(StaffAccount.mission == mission)
    if active is not None:
        query = query.where(StaffAccount.active == active)
    async with ctx.db.sessions() as session:
        rows = await session.scalars(
            query.order_by(StaffAccount.login, StaffAccount.id).limit(limit).offset(offset)
        )
        return [_staff_out(row) for row in rows]


@router.get(
    "/v1/staff/{staff_id}", response_model=StaffOut, responses=_errors(401, 403, 404), tags=["staff accounts"]
)
async def get_staff(staff_id: str, actor: CurrentStaff, ctx: Ctx) -> StaffOut:
    """One staff account (administrators only)."""
    require_administrator(actor)
    async with ctx.db.sessions() as session:
        staff = await session.get(StaffAccount, staff_id)
    if staff is None:
        raise _staff_not_found()
    return _staff_out(staff)


async def _active_administrators_besides(session: AsyncSession, staff_id: str) -> int:
    count = await session.scalar(
        select(func.count())
        .select_from(StaffAccount)
        .where(
            StaffAccount.role == StaffRole.ADMINISTRATOR,
            StaffAccount.active.is_(True),
            StaffAccount.id != staff_id,
        )
    )
    return count or 0


async def _end_sessions(session: AsyncSession, staff_id: str, now: datetime) -> int:
    ended = await session.scalars(
        update(StaffSession)
        .where(StaffSession.staff_id == staff_id, StaffSession.revoked_at.is_(None))
        .values(revoked_at=now)
        .returning(StaffSession.token_sha256)
    )
    return len(list(ended))


@router.patch(
    "/v1/staff/{staff_id}",
    response_model=StaffOut,
    responses=_errors(401, 403, 404, 409, 422),
    tags=["staff accounts"],
)
async def change_staff(staff_id: str, body: StaffPatchIn, actor: CurrentStaff, ctx: Ctx) -> StaffOut:
    """Change a staff member's role, mission or whether the account is active (administrators only), with
    the reason. A role other than mission staff drops the mission. Deactivating ends the account's
    sessions at once. The last active administrator cannot be demoted or deactivated."""
    require_administrator(actor)
    now = utcnow()
    async with ctx.db.transaction() as session:
        staff = await session.get(StaffAccount, staff_id, with_for_update=True)
        if staff is None:
            raise _staff_not_found()
        before = {"role": staff.role.value, "mission": staff.mission, "active": staff.active}
        role = body.role or staff.role
        if "mission" in body.model_fields_set:
            mission = body.mission
        else:  # unchanged, unless the new role has no mission
            mission = staff.mission if role is StaffRole.MISSION_STAFF else None
        active = staff.active if body.active is None else body.active
        _check_mission(role, mission)
        after = {"role": role.value, "mission": mission, "active": active}
        if (
            staff.role is StaffRole.ADMINISTRATOR
            and staff.active
            and (role is not StaffRole.ADMINISTRATOR or not active)
            and await _active_administrators_besides(session, staff.id) == 0
        ):
            raise last_administrator()
        changes: list[tuple[str, dict[str, Any]]] = []
        scope = _diff(
            {"role": before["role"], "mission": before["mission"]}, {"role": role.value, "mission": mission}
        )
        if "role" in scope:
            changes.append(("role_changed", scope))
        elif scope:
            changes.append(("mission_changed", scope))
        if active != staff.active:
            detail: dict[str, Any] = _diff({"active": staff.active}, {"active": active})
            if not active:
                detail["sessions_ended"] = await _end_sessions(session, staff.id, now)
            changes.append(("deactivated" if not active else "reactivated", detail))
        staff.role, staff.mission, staff.active = role, mission, active
        for action, detail in changes:
            session.add(
                StaffChange(
                    at=now,
                    actor_id=actor.id,
                    staff_id=staff.id,
                    action=action,
                    detail=detail,
                    reason=body.reason,
                )
            )
    if changes:
        log.info("staff %s changed by %s: %s", staff.id, actor.id, _diff(before, after))
    return _staff_out(staff)


@router.post(
    "/v1/staff/{staff_id}/password",
    status_code=204,
    responses=_errors(401, 403, 404, 422),
    tags=["staff accounts"],
)
async def set_password(staff_id: str, body: StaffPasswordIn, actor: CurrentStaff, ctx: Ctx) -> Response:
    """Set a staff member's new password (administrators only): their sessions end, a lockout lifts."""
    require_administrator(actor)
    async with ctx.db.sessions() as session:
        staff = await session.get(StaffAccount, staff_id)
    if staff is None:
        raise _staff_not_found()
    check_password(body.password, email=staff.login)
    new_hash = await hash_password_async(body.password)
    now = utcnow()
    async with ctx.db.transaction() as session:
        await session.execute(
            update(StaffAccount).where(StaffAccount.id == staff.id).values(password_hash=new_hash)
        )
        await clear_failed_logins(session, STAFF_LOGINS, staff.id)
        ended = await _end_sessions(session, staff.id, now)
        session.add(
            StaffChange(
                at=now,
                actor_id=actor.id,
                staff_id=staff.id,
                action="password_set",
                detail={"sessions_ended": ended},
                reason=body.reason,
            )
        )
    log.info("staff %s password set by %s; %d sessions ended", staff.id, actor.id, ended)
    return Response(status_code=204)


# ------------------------------------------------------------------------------------------ audit


@router.get(
    "/v1/audit/staff-changes",
    response_model=list[StaffChangeOut],
    responses=_errors(401),
    tags=["audit"],
)
async def staff_changes(
    viewer: CurrentStaff,
    ctx: Ctx,
    staff_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[StaffChangeOut]:
    """Every change to a staff account: who, when, what and why, newest first. Mission staff read the
    changes to their own mission's accounts, and to accounts moved into or out of it."""
    target = aliased(StaffAccount)
    actor = aliased(StaffAccount)
    query = (
        select(StaffChange, target.login, actor.login)
        .join(target, StaffChange.staff_id == target.id)
        .outerjoin(actor, StaffChange.actor_id == actor.id)
    )
    mission = mission_filter(viewer)
    if mission is not None:
        query = query.where(
            or_(
                target.mission == mission,
                StaffChange.detail[("mission", "from")].as_string() == mission,
                StaffChange.detail[("mission", "to")].as_string() == mission,
            )
        )
    if staff_id is not None:
        query = query.where(StaffChange.staff_id == staff_id)
    async with ctx.db.sessions() as session:
        rows = await session.execute(
            query.order_by(StaffChange.at.desc(), StaffChange.id.desc()).limit(limit).offset(offset)
        )
        return [
            StaffChangeOut(
                id=change.id,
                at=change.at,
                actor_id=change.actor_id,
                actor_login=actor_login,
                staff_id=change.staff_id,
                staff_login=staff_login,
                action=change.action,
                detail=change.detail,
                reason=change.reason,
            )
            for change, staff_login, actor_login in rows
        ]
