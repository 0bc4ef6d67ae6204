"""Accounts: a unit's or an individual's login, its sessions, and password reset by a code sent by SMS or
email. Included in the registration app with ``app.include_router(accounts.router)``.

- Passwords are kept as argon2id hashes, checked off the event loop.
- A login answers the same 401 for a wrong password and an unknown login (the unknown one is checked
  against a dummy hash, so it takes as long). Five failures in a row lock the account for 15 minutes
  (423, with the Beijing time it unlocks); a success resets the count.
- The password rule, the hashes, token digests and the lockout are those of the staff logins too
  (shared/security.py).
- A reset code is 6 digits, kept as its SHA-256, valid 10 minutes, 5 tries; asking for a new one voids
  the earlier ones; at most 5 per account an hour. Whether the login exists is never said: the request
  always answers 202. The code goes out through the notification service (``/internal/messages``).
- Setting a new password revokes every session of the account and lifts a lockout.
"""

from __future__ import annotations

import logging
import secrets
from datetime import datetime, timedelta
from typing import Annotated, Literal

import httpx
from fastapi import APIRouter, Depends, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from services.registration import validation
from services.registration.account_schemas import (
    AccountIn,
    AccountOut,
    LoginIn,
    PasswordResetConfirmIn,
    PasswordResetIn,
    PasswordResetRequested,
    SessionOut,
)
from services.registration.auth import CurrentAccount, issue_token
from services.registration.models import Account, AccountSession, PasswordResetCode
from shared.db import utcnow
from shared.http import ApiError, ErrorBody, internal_headers
from shared.ids import new_id
from shared.records import is_mainland_mobile
from shared.security import (
    LOCKOUT,
    Logins,
    account_locked,
    check_password,
    clear_failed_logins,
    code_digest,
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
router = APIRouter(tags=["accounts"])
Ctx = Annotated[ServiceContext, Depends(context)]
_bearer = HTTPBearer(auto_error=False, description="the token from POST /v1/sessions")

LOGINS = Logins(Account, Account.id, Account.failed_logins, Account.locked_until)
CODE_LIFETIME = timedelta(minutes=10)
CODE_ATTEMPTS = 5
CODES_PER_HOUR = 5


def _errors(*codes: int) -> dict[int | str, dict[str, object]]:
    return {code: {"model": ErrorBody} for code in codes}


# ------------------------------------------------------------------------------------------ refusals


def account_exists() -> ApiError:
    return ApiError(
        409,
        "account_exists",
        "an account with this email already exists: log in, or reset its password",
        "该邮箱已注册账户，请直接登录或重置密码",
        field="email",
    )


def too_many_codes() -> ApiError:
    return ApiError(
        429,
        "too_many_codes",
        f"at most {CODES_PER_HOUR} reset codes an hour: please use the last one, or wait",
        f"每小时最多发送{CODES_PER_HOUR}次验证码，请使用最近收到的验证码或稍后再试",
    )


def message_not_sent() -> ApiError:
    return ApiError(
        503, "message_not_sent", "the code could not be sent: please try again", "验证码发送失败，请稍后重试"
    )


def invalid_code() -> ApiError:
    return ApiError(
        400,
        "invalid_code",
        "wrong or used code: check it, or ask for a new one",
        "验证码错误或已使用，请核对或重新获取",
        field="code",
    )


def code_expired() -> ApiError:
    return ApiError(
        400,
        "code_expired",
        "the code has expired: ask for a new one",
        "验证码已过期，请重新获取",
        field="code",
    )


# ------------------------------------------------------------------------------------------ accounts


def _account_out(account: Account) -> AccountOut:
    return AccountOut.model_validate(account, from_attributes=True)


@router.post("/v1/accounts", status_code=201, response_model=AccountOut, responses=_errors(409, 422))
async def create_account(body: AccountIn, ctx: Ctx) -> AccountOut:
    """Open a unit's or an individual's account; log in with its email. The password is never shown."""
    mobile = validation.mobile(body.mobile)
    email = str(body.email)
    check_password(body.password, email=email, mobile=mobile)
    login = email.lower()
    async with ctx.db.sessions() as session:
        if await session.scalar(select(Account.id).where(Account.login == login)) is not None:
            raise account_exists()  # before hashing: no work for a taken email
    account = Account(
        id=new_id("A"),
        kind=body.kind,
        login=login,
        email=email,
        mobile=mobile,
        password_hash=await hash_password_async(body.password),
        failed_logins=0,
        created_at=utcnow(),
    )
    async with ctx.db.transaction() as session:
        session.add(account)
        try:
            await session.flush()
        except IntegrityError as exc:  # the same email, registered meanwhile
            raise account_exists() from exc
    return _account_out(account)


@router.get("/v1/accounts/me", response_model=AccountOut, responses=_errors(401))
async def me(account: CurrentAccount) -> AccountOut:
    """The account logged in, with the unit it registered (``unit_id``, null until it has)."""
    return _account_out(account)


# ------------------------------------------------------------------------------------------ sessions


@router.post("/v1/sessions", status_code=201, response_model=SessionOut, responses=_errors(401, 422, 423))
async def log_in(body: LoginIn, ctx: Ctx) -> SessionOut:
    """Log in with the account's email and password: a bearer token valid for 12 hours."""
    now = utcnow()
    async with ctx.db.sessions() as session:
        account = await session.scalar(select(Account).where(Account.login == body.login))
    if account is None:
        await password_matches_async(dummy_hash(), body.password)
        raise invalid_credentials()
    if LOCKOUT.is_locked(account.locked_until, now):
        assert account.locked_until is not None
        raise account_locked(account.locked_until)  # the password is not even tried
    if not await password_matches_async(account.password_hash, body.password):
        await _count_failure(ctx, account, now)
        raise invalid_credentials()
    async with ctx.db.transaction() as session:
        await clear_failed_logins(session, LOGINS, account.id)
        token, login = await issue_token(session, account, now)
    account.failed_logins, account.locked_until = 0, None
    return SessionOut(token=token, expires_at=login.expires_at, account=_account_out(account))


async def _count_failure(ctx: ServiceContext, account: Account, now: datetime) -> None:
    """One more failure in a row (the first after a lockout ran out starts a new count); the fifth
    locks the account and answers 423 at once."""
    async with ctx.db.transaction() as session:
        until = await count_failed_login(
            session, LOGINS, account.id, locked_until=account.locked_until, now=now
        )
    if until is None:
        return
    log.info("account %s locked after %d failed logins", account.id, LOCKOUT.max_failures)
    raise account_locked(until)


@router.delete("/v1/sessions/current", status_code=204, responses=_errors(401))
async def log_out(
    account: CurrentAccount,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ctx: Ctx,
) -> Response:
    """Log out: the token used for this call stops working."""
    if credentials is None:  # current_account has refused it already
        raise unauthenticated()
    async with ctx.db.transaction() as session:
        await session.execute(
            update(AccountSession)
            .where(
                AccountSession.token_sha256 == sha256(credentials.credentials),
                AccountSession.account_id == account.id,
                AccountSession.revoked_at.is_(None),
            )
            .values(revoked_at=utcnow())
        )
    return Response(status_code=204)


# ------------------------------------------------------------------------------------------ password reset

_RESET_REQUESTED = PasswordResetRequested(
    message=f"If an account has this login, a code valid for {CODE_LIFETIME.seconds // 60} minutes has been "
    "sent to its mobile by SMS (Chinese mainland mobiles; others by email) or to its email.",
    message_zh=f"如该账户存在，验证码已通过短信（仅限中国大陆手机号码，其他号码改发邮件）或邮件发送，"
    f"{CODE_LIFETIME.seconds // 60}分钟内有效。",
)


@router.post(
    "/v1/password-resets",
    status_code=202,
    response_model=PasswordResetRequested,
    responses=_errors(422, 429, 503),
)
async def request_password_reset(body: PasswordResetIn, ctx: Ctx) -> PasswordResetRequested:
    """Send a 6-digit code to reset the password. The answer is the same whether the login exists."""
    now = utcnow()
    async with ctx.db.transaction() as session:
        account = await session.scalar(select(Account).where(Account.login == body.login))
        if account is None:
            return _RESET_REQUESTED
        recent = await session.scalar(
            select(func.count())
            .select_from(PasswordResetCode)
            .where(
                PasswordResetCode.account_id == account.id,
                PasswordResetCode.created_at > now - timedelta(hours=1),
            )
        )
        if (recent or 0) >= CODES_PER_HOUR:
            raise too_many_codes()
        # A new code voids the ones before it.
        await session.execute(
            update(PasswordResetCode)
            .where(PasswordResetCode.account_id == account.id, PasswordResetCode.used_at.is_(None))
            .values(expires_at=now)
        )
        channel: Literal["sms", "email"] = body.channel
        if channel == "sms" and not is_mainland_mobile(account.mobile):
            channel = "email"  # SMS reaches mainland mobiles only
        code = f"{secrets.randbelow(1_000_000):06d}"
        row = PasswordResetCode(
            account_id=account.id,
            code_sha256=code_digest(ctx.settings.account_code_key.get_secret_value(), code),
            channel=channel,
            created_at=now,
            expires_at=now + CODE_LIFETIME,
            attempts=0,
        )
        session.add(row)
        await session.flush()
        # Sent inside the transaction: a code that could not be sent is not kept (nor counted).
        await _send_code(
            ctx,
            channel=channel,
            to=account.mobile if channel == "sms" else account.email,
            code=code,
            key=f"password-reset.{row.id}",
        )
    return _RESET_REQUESTED


async def _send_code(
    ctx: ServiceContext, *, channel: Literal["sms", "email"], to: str, code: str, key: str
) -> None:
    try:
        response = await ctx.http.post(
            f"{ctx.settings.notification_url}/internal/messages",
            json={
                "channel": channel,
                "to": to,
                "template": "password_reset",
                "params": {"code": code, "minutes": CODE_LIFETIME.seconds // 60},
                "key": key,
            },
            headers=internal_headers(ctx.settings),
        )
        response.raise_for_status()
    except httpx.HTTPError as exc:
        status = exc.response.status_code if isinstance(exc, httpx.HTTPStatusError) else None
        log.warning("reset code %s not sent by %s: %s %s", key, channel, type(exc).__name__, status or "")
        raise message_not_sent() from exc


@router.post("/v1/password-resets/confirm", status_code=204, responses=_errors(400, 422))
async def confirm_password_reset(body: PasswordResetConfirmIn, ctx: Ctx) -> Response:
    """Set a new password with the code received: every session of the account ends, a lockout lifts."""
    now = utcnow()
    async with ctx.db.sessions() as session:
        account = await session.scalar(select(Account).where(Account.login == body.login))
        latest = (
            await session.scalar(
                select(PasswordResetCode)
                .where(PasswordResetCode.account_id == account.id)
                .order_by(PasswordResetCode.id.desc())
                .limit(1)
            )
            if account is not None
            else None
        )
    if account is None or latest is None or latest.used_at is not None or latest.attempts >= CODE_ATTEMPTS:
        raise invalid_code()
    if latest.expires_at <= now:
        raise code_expired()
    if not secrets.compare_digest(
        latest.code_sha256, code_digest(ctx.settings.account_code_key.get_secret_value(), body.code)
    ):
        async with ctx.db.transaction() as session:
            await session.execute(
                update(PasswordResetCode)
                .where(PasswordResetCode.id == latest.id)
                .values(attempts=PasswordResetCode.attempts + 1)
            )
        raise invalid_code()
    # The code is right: a refused password leaves it usable for a better one.
    check_password(body.new_password, email=account.email, mobile=account.mobile, field="new_password")
    new_hash = await hash_password_async(body.new_password)
    async with ctx.db.transaction() as session:
        claimed = await session.scalar(
            update(PasswordResetCode)
            .where(
                PasswordResetCode.id == latest.id,
                PasswordResetCode.used_at.is_(None),
                PasswordResetCode.attempts < CODE_ATTEMPTS,
            )
            .values(used_at=now)
            .returning(PasswordResetCode.id)
        )
        if claimed is None:  # used by a concurrent call meanwhile
            raise invalid_code()
        await session.execute(
            update(Account)
            .where(Account.id == account.id)
            .values(password_hash=new_hash, failed_logins=0, locked_until=None)
        )
        await session.execute(
            update(AccountSession)
            .where(AccountSession.account_id == account.id, AccountSession.revoked_at.is_(None))
            .values(revoked_at=now)
        )
    log.info("account %s password reset; its sessions revoked", account.id)
    return Response(status_code=204)
