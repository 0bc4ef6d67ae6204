"""What every login shares, buyers' (registration service) and staff's (review service) alike, so that
both are exactly as secure:

- passwords: argon2id hashes, checked off the event loop; an unknown login is checked against a dummy
  hash so that it takes as long as a wrong password; the password rule (10+ characters, letters and
  digits, not the login's email, its name part or the mobile);
- bearer tokens: random, given once; only their SHA-256 is stored, with an expiry (12 hours for buyers,
  8 for staff);
- one-time codes: kept as a keyed digest (HMAC-SHA256);
- the lockout: 5 failed logins in a row lock the login for 15 minutes (423, with the Beijing time it
  opens); a success resets the count; the first failure after a lockout ran out starts a new count;
- the refusals, identical for an unknown login and a wrong password.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo

import phonenumbers
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, InstrumentedAttribute

from shared.http import ApiError

BEIJING = ZoneInfo("Asia/Shanghai")
PASSWORD_MIN_LENGTH = 10
BUYER_TOKEN_LIFETIME = timedelta(hours=12)
STAFF_TOKEN_LIFETIME = timedelta(hours=8)

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters


# ------------------------------------------------------------------------------------------ passwords


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def password_matches(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


async def password_matches_async(password_hash: str, password: str) -> bool:
    """``password_matches`` in a thread: argon2 takes tens of milliseconds, the event loop must not wait."""
    return await asyncio.to_thread(password_matches, password_hash, password)


async def hash_password_async(password: str) -> str:
    return await asyncio.to_thread(hash_password, password)


@cache
def dummy_hash() -> str:
    """What an unknown login's password is checked against, so that it takes as long as a known one."""
    return hash_password(secrets.token_urlsafe(16))


def password_problem(password: str, *, email: str, mobile: str | None = None) -> tuple[str, str] | None:
    """Why the password is too weak (English, Chinese), or None: it needs at least 10 characters with
    letters and digits, and must not be the email, the email's name part, or contain the mobile
    (E.164, as stored; its national number is looked for)."""
    if (
        len(password) < PASSWORD_MIN_LENGTH
        or not any(ch.isalpha() for ch in password)
        or not any(ch.isdecimal() for ch in password)
    ):
        return (
            f"the password needs at least {PASSWORD_MIN_LENGTH} characters, with letters and digits",
            f"密码至少{PASSWORD_MIN_LENGTH}位，且须同时包含字母和数字",
        )
    folded = password.strip().casefold()
    email_folded = email.casefold()
    national = str(phonenumbers.parse(mobile).national_number) if mobile else None
    if folded in (email_folded, email_folded.split("@", 1)[0]) or (national and national in password):
        if mobile is None:
            return "the password must not be the email", "密码不能是邮箱"
        return "the password must not be the email or the mobile number", "密码不能是邮箱或手机号码"
    return None


def check_password(password: str, *, email: str, mobile: str | None = None, field: str = "password") -> None:
    """The password rule (``password_problem``) as a refusal: 422 ``weak_password`` on ``field``."""
    problem = password_problem(password, email=email, mobile=mobile)
    if problem is not None:
        raise ApiError(422, "weak_password", problem[0], problem[1], field=field)


# ------------------------------------------------------------------------------------------ digests, tokens


def sha256(secret: str) -> str:
    """A bearer token's digest, as stored: the token itself is never kept."""
    return hashlib.sha256(secret.encode()).hexdigest()


def code_digest(key: str, code: str) -> str:
    """A one-time code's keyed digest (HMAC-SHA256): six digits alone would be guessed from a plain hash."""
    return hmac.new(key.encode(), code.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class NewToken:
    token: str  # handed to the caller once, never stored
    token_sha256: str  # what the sessions table keeps
    issued_at: datetime
    expires_at: datetime


def new_token(lifetime: timedelta, now: datetime) -> NewToken:
    token = secrets.token_urlsafe(32)
    return NewToken(token=token, token_sha256=sha256(token), issued_at=now, expires_at=now + lifetime)


def session_valid(*, revoked_at: datetime | None, expires_at: datetime, now: datetime) -> bool:
    return revoked_at is None and expires_at > now


# ------------------------------------------------------------------------------------------ lockout


@dataclass(frozen=True)
class LockoutPolicy:
    max_failures: int = 5
    duration: timedelta = timedelta(minutes=15)

    def is_locked(self, locked_until: datetime | None, now: datetime) -> bool:
        return locked_until is not None and locked_until > now

    def locks(self, failures: int) -> bool:
        """Whether this many failures in a row lock the login."""
        return failures >= self.max_failures

    def unlocks_at(self, now: datetime) -> datetime:
        return now + self.duration


LOCKOUT = LockoutPolicy()


@dataclass(frozen=True)
class Logins:
    """A table of logins that can be locked out (the buyers' accounts, the staff accounts): its columns."""

    table: type[DeclarativeBase]
    id: InstrumentedAttribute[str]
    failed_logins: InstrumentedAttribute[int]
    locked_until: InstrumentedAttribute[datetime | None]


async def count_failed_login(
    session: AsyncSession,
    logins: Logins,
    row_id: str,
    *,
    locked_until: datetime | None,
    now: datetime,
    policy: LockoutPolicy = LOCKOUT,
) -> datetime | None:
    """One more failure in a row for the login ``row_id`` (``locked_until``: as read, and found run out
    by the caller: the first failure after a lockout starts a new count). Counted in the database, so
    concurrent attempts all count. Returns the time the login opens again if this failure locks it."""
    if locked_until is not None:
        counted = update(logins.table).values({logins.failed_logins: 1, logins.locked_until: None})
    else:
        counted = update(logins.table).values({logins.failed_logins: logins.failed_logins + 1})
    failures = await session.scalar(counted.where(logins.id == row_id).returning(logins.failed_logins))
    if failures is None or not policy.locks(failures):
        return None
    until = policy.unlocks_at(now)
    await session.execute(
        update(logins.table).where(logins.id == row_id).values({logins.locked_until: until})
    )
    return until


async def clear_failed_logins(session: AsyncSession, logins: Logins, row_id: str) -> None:
    """A success (or a new password): the count starts again, a lockout lifts."""
    await session.execute(
        update(logins.table)
        .where(logins.id == row_id)
        .values({logins.failed_logins: 0, logins.locked_until: None})
    )


# ------------------------------------------------------------------------------------------ refusals


def invalid_credentials() -> ApiError:
    """The same answer for an unknown login, a wrong password and a deactivated login."""
    return ApiError(401, "invalid_credentials", "wrong login or password", "账户或密码错误")


def account_locked(
    until: datetime, *, remedy: tuple[str, str] = ("reset the password", "重置密码")
) -> ApiError:
    """423 with the Beijing time the login opens; ``remedy``: what else to do (English, Chinese)."""
    beijing = until.astimezone(BEIJING)
    error = ApiError(
        423,
        "account_locked",
        f"too many failed logins: the account is locked until {beijing:%Y-%m-%d %H:%M:%S} Beijing time; "
        f"try again then, or {remedy[0]}",
        f"登录失败次数过多，账户已锁定至北京时间{beijing:%Y-%m-%d %H:%M:%S}，请届时再试或{remedy[1]}",
    )
    error.body.details = [{"locked_until": until.isoformat(), "locked_until_beijing": beijing.isoformat()}]
    return error


def unauthenticated() -> ApiError:
    return ApiError(
        401,
        "unauthenticated",
        "log in first: the token is missing, expired or revoked",
        "请先登录：登录凭证缺失或已失效",
    )
