"""Accounts, logins and password resets, as a buyer meets them: the accounts router in a small app on a
migrated SQLite database, and reset codes going through the real notification service (mounted on the
registration service's HTTP client) into its SMS outbox or a real SMTP server in this process, where the
tests read them as the buyer would.
"""

from __future__ import annotations

import email
import json
import logging
import re
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from aiosmtpd.controller import Controller
from fastapi import FastAPI
from sqlalchemy import func, select

from services.notification.api import app as notification_app
from services.registration import accounts
from services.registration.auth import TOKEN_LIFETIME, issue_token
from services.registration.models import Account, PasswordResetCode
from shared.db import utcnow
from shared.http import install_error_handlers
from shared.service import ServiceContext
from shared.settings import Settings, get_settings
from tests.service_env import service_context

TOKEN = "accounts-test-token"
NOTIFICATION_URL = "http://notification.test"
BEIJING = ZoneInfo("Asia/Shanghai")
PASSWORD = "Silk-Road-2023"
NEW_PASSWORD = "Hongqiao-Expo-88"
MOBILE = "+8613812345678"
SIX_DIGITS = re.compile(r"(?<!\d)(\d{6})(?!\d)")


# ---------------------------------------------------------------------------------------- fixtures


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Inbox:
    """An aiosmtpd handler keeping every message delivered to the SMTP server."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], EmailMessage]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.original_content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append((list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"


@dataclass
class World:
    client: httpx.AsyncClient  # the registration service's accounts routes
    ctx: ServiceContext  # the registration service's context
    settings: Settings
    inbox: Inbox
    smtp: Controller
    smtp_running: bool = True

    def stop_mail_server(self) -> None:
        self.smtp.stop()
        self.smtp_running = False

    def sms(self) -> list[dict[str, str]]:
        path = self.settings.sms_outbox_path
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]

    def mail_to(self, address: str) -> list[EmailMessage]:
        return [message for recipients, message in self.inbox.messages if address in recipients]

    async def account(self, login: str) -> Account:
        async with self.ctx.db.sessions() as session:
            account = await session.scalar(select(Account).where(Account.login == login))
        assert account is not None
        return account


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    inbox = Inbox()
    smtp = Controller(inbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    settings = Settings(
        data_dir=tmp_path,
        internal_token=TOKEN,
        notification_url=NOTIFICATION_URL,
        smtp_host="127.0.0.1",
        smtp_port=smtp.port,
        sms_outbox=tmp_path / "sms-outbox.jsonl",
    )
    running: World | None = None
    try:
        async with service_context("notification", settings) as notification_ctx:
            notification_app.state.ctx = notification_ctx
            notification_app.dependency_overrides[get_settings] = lambda: settings
            http = httpx.AsyncClient(mounts={NOTIFICATION_URL: httpx.ASGITransport(app=notification_app)})
            async with service_context("registration", settings, http=http) as ctx:
                app = FastAPI()
                install_error_handlers(app)
                app.include_router(accounts.router)
                app.state.ctx = ctx
                async with httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app), base_url="http://registration.test"
                ) as client:
                    running = World(client, ctx, settings, inbox, smtp)
                    yield running
    finally:
        notification_app.dependency_overrides.pop(get_settings, None)
        if running is None or running.smtp_running:
            smtp.stop()


def later(monkeypatch: pytest.MonkeyPatch, by: timedelta) -> None:
    """The accounts routes' clock moves ``by`` ahead of the real one."""
    monkeypatch.setattr(accounts, "utcnow", lambda: utcnow() + by)


async def sign_up(
    world: World, email_address: str = "Buyer@Example.com", *, mobile: str = "13812345678", **changes: Any
) -> httpx.Response:
    body = {"kind": "unit", "email": email_address, "mobile": mobile, "password": PASSWORD, **changes}
    return await world.client.post("/v1/accounts", json=body)


async def log_in(world: World, login: str = "buyer@example.com", password: str = PASSWORD) -> httpx.Response:
    return await world.client.post("/v1/sessions", json={"login": login, "password": password})


async def token_of(world: World, login: str = "buyer@example.com", password: str = PASSWORD) -> str:
    response = await log_in(world, login, password)
    assert response.status_code == 201, response.text
    token: str = response.json()["token"]
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def me(world: World, token: str) -> httpx.Response:
    return await world.client.get("/v1/accounts/me", headers=bearer(token))


async def ask_code(world: World, login: str = "buyer@example.com", channel: str = "sms") -> httpx.Response:
    return await world.client.post("/v1/password-resets", json={"login": login, "channel": channel})


async def confirm(
    world: World, code: str, login: str = "buyer@example.com", password: str = NEW_PASSWORD
) -> httpx.Response:
    return await world.client.post(
        "/v1/password-resets/confirm", json={"login": login, "code": code, "new_password": password}
    )


def code_in(text: str) -> str:
    found = SIX_DIGITS.findall(text)
    assert len(set(found)) == 1, text
    code: str = found[0]
    return code


def last_sms_code(world: World, to: str = MOBILE) -> str:
    texts = [line["text"] for line in world.sms() if line["to"] == to]
    assert texts, "no SMS reached the phone"
    return code_in(texts[-1])


def refusal(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["code"] == code
    assert body["message"] and body["message_zh"] and body["message"] != body["message_zh"]
    return body


# ---------------------------------------------------------------------------------------- sign-up


async def test_signing_up_keeps_an_argon2id_hash_and_answers_the_account_without_it(world: World) -> None:
    response = await sign_up(world)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["id"].startswith("A")
    assert body["kind"] == "unit"
    assert body["login"] == "buyer@example.com"  # the email, lower-cased
    assert body["mobile"] == MOBILE  # E.164
    assert body["unit_id"] is None
    assert not any("password" in key for key in body)

    row = await world.account("buyer@example.com")
    assert row.password_hash.startswith("$argon2id$")
    assert PASSWORD not in row.password_hash
    assert row.password_hash not in response.text

    individual = await sign_up(world, "solo@example.com", kind="individual")
    assert individual.status_code == 201, individual.text
    assert individual.json()["kind"] == "individual"


@pytest.mark.parametrize(
    "password",
    [
        "Short1",  # fewer than 10 characters
        "OnlyLettersHere",  # no digit
        "1234567890123",  # no letter
        "buyer@example.com1",  # letters and digits, but ...
    ],
)
async def test_weak_passwords_are_refused(world: World, password: str) -> None:
    if password == "buyer@example.com1":
        # ... the email itself is refused, as is the mobile within a password
        body = refusal(
            await sign_up(world, "buyer1@example.com", password="Buyer1@Example.com"), 422, "weak_password"
        )
        assert body["field"] == "password"
        body = refusal(await sign_up(world, password="abc13812345678"), 422, "weak_password")
        assert body["field"] == "password"
    else:
        body = refusal(await sign_up(world, password=password), 422, "weak_password")
        assert body["field"] == "password"
    async with world.ctx.db.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Account)) == 0


async def test_a_taken_email_a_bad_mobile_and_unknown_fields_are_refused(world: World) -> None:
    assert (await sign_up(world)).status_code == 201
    body = refusal(await sign_up(world, "BUYER@example.COM", mobile="13900000000"), 409, "account_exists")
    assert body["field"] == "email"
    body = refusal(await sign_up(world, "other@example.com", mobile="12345"), 422, "invalid_mobile")
    assert body["field"] == "mobile"
    refusal(await sign_up(world, "third@example.com", unit_id="U123"), 422, "invalid_input")
    refusal(await sign_up(world, "fourth@example.com", kind="mission"), 422, "invalid_input")
    # the first account is untouched: its password still logs in
    assert (await log_in(world, "buyer@example.com")).status_code == 201


# ---------------------------------------------------------------------------------------- sessions


async def test_log_in_gives_a_token_for_me_and_unknown_logins_look_like_wrong_passwords(world: World) -> None:
    await sign_up(world)
    response = await log_in(world, "  Buyer@EXAMPLE.com ")
    assert response.status_code == 201, response.text
    body = response.json()
    expires_at = datetime.fromisoformat(body["expires_at"])
    assert abs(expires_at - (utcnow() + TOKEN_LIFETIME)) < timedelta(minutes=1)
    assert body["account"]["login"] == "buyer@example.com"
    assert "password_hash" not in body["account"]

    mine = await me(world, body["token"])
    assert mine.status_code == 200
    assert mine.json()["id"] == body["account"]["id"]
    assert mine.json()["unit_id"] is None

    wrong = await log_in(world, "buyer@example.com", "Wrong-password-1")
    unknown = await log_in(world, "nobody@example.com", PASSWORD)
    refusal(wrong, 401, "invalid_credentials")
    assert wrong.json() == unknown.json()

    refusal(await me(world, "not-a-token"), 401, "unauthenticated")
    refusal(await world.client.get("/v1/accounts/me"), 401, "unauthenticated")


async def test_an_expired_token_is_refused(world: World) -> None:
    await sign_up(world)
    account = await world.account("buyer@example.com")
    async with world.ctx.db.transaction() as session:
        stale, _ = await issue_token(session, account, now=utcnow() - TOKEN_LIFETIME - timedelta(seconds=1))
        fresh, _ = await issue_token(session, account, now=utcnow() - TOKEN_LIFETIME + timedelta(minutes=1))
    refusal(await me(world, stale), 401, "unauthenticated")
    assert (await me(world, fresh)).status_code == 200


async def test_log_out_ends_only_the_token_used(world: World) -> None:
    await sign_up(world)
    phone, laptop = await token_of(world), await token_of(world)
    response = await world.client.delete("/v1/sessions/current", headers=bearer(phone))
    assert response.status_code == 204
    refusal(await me(world, phone), 401, "unauthenticated")
    refusal(await world.client.delete("/v1/sessions/current", headers=bearer(phone)), 401, "unauthenticated")
    assert (await me(world, laptop)).status_code == 200


async def test_five_failures_lock_the_account_for_fifteen_minutes(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    await sign_up(world)
    for _ in range(4):
        refusal(await log_in(world, password="Wrong-password-1"), 401, "invalid_credentials")
    locked = refusal(await log_in(world, password="Wrong-password-1"), 423, "account_locked")
    account = await world.account("buyer@example.com")
    assert account.locked_until is not None
    assert abs(account.locked_until - (utcnow() + timedelta(minutes=15))) < timedelta(minutes=1)
    unlocks = f"{account.locked_until.astimezone(BEIJING):%Y-%m-%d %H:%M:%S}"
    assert unlocks in locked["message"] and "Beijing" in locked["message"]
    assert unlocks in locked["message_zh"] and "北京时间" in locked["message_zh"]

    # while locked, even the right password is refused
    refusal(await log_in(world), 423, "account_locked")
    later(monkeypatch, timedelta(minutes=14, seconds=50))
    refusal(await log_in(world), 423, "account_locked")

    # fifteen minutes on, the right password works, and the count starts again from nothing
    later(monkeypatch, timedelta(minutes=15, seconds=1))
    assert (await log_in(world)).status_code == 201
    for _ in range(4):
        refusal(await log_in(world, password="Wrong-password-1"), 401, "invalid_credentials")
    refusal(await log_in(world, password="Wrong-password-1"), 423, "account_locked")


async def test_a_lockout_that_ran_out_starts_a_new_count(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    await sign_up(world)
    for _ in range(5):
        await log_in(world, password="Wrong-password-1")
    later(monkeypatch, timedelta(minutes=16))
    # one failure after the lockout is not a sixth in a row
    refusal(await log_in(world, password="Wrong-password-1"), 401, "invalid_credentials")
    assert (await log_in(world)).status_code == 201


async def test_a_success_resets_the_failure_count(world: World) -> None:
    await sign_up(world)
    for _ in range(4):
        refusal(await log_in(world, password="Wrong-password-1"), 401, "invalid_credentials")
    assert (await log_in(world)).status_code == 201
    for _ in range(4):
        refusal(await log_in(world, password="Wrong-password-1"), 401, "invalid_credentials")
    assert (await log_in(world)).status_code == 201


# ---------------------------------------------------------------------------------------- password reset


async def test_reset_by_sms_sets_the_new_password_and_ends_every_session(world: World) -> None:
    await sign_up(world)
    old_token = await token_of(world)
    response = await ask_code(world, channel="sms")
    assert response.status_code == 202, response.text

    [sms] = world.sms()
    assert sms["to"] == MOBILE
    assert "验证码" in sms["text"] and "password reset code" in sms["text"]
    code = last_sms_code(world)
    assert world.mail_to("Buyer@example.com") == []  # asked for SMS: no email

    assert (await confirm(world, code)).status_code == 204
    refusal(await me(world, old_token), 401, "unauthenticated")
    refusal(await log_in(world, password=PASSWORD), 401, "invalid_credentials")
    assert (await me(world, await token_of(world, password=NEW_PASSWORD))).status_code == 200


async def test_reset_by_email_sets_the_new_password(world: World) -> None:
    await sign_up(world)
    response = await ask_code(world, "BUYER@example.com", channel="email")
    assert response.status_code == 202, response.text

    [message] = world.mail_to("Buyer@example.com")
    assert "CIIE" in message["Subject"] and "密码" in message["Subject"]
    assert not SIX_DIGITS.search(message["Subject"])  # the code is in the body only
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    text = body.get_content()
    assert "验证码" in text and "password reset code" in text and "10" in text
    assert world.sms() == []

    assert (await confirm(world, code_in(text))).status_code == 204
    assert (await log_in(world, password=NEW_PASSWORD)).status_code == 201


async def test_sms_to_a_mobile_outside_the_mainland_comes_by_email(world: World) -> None:
    await sign_up(world, "hk@example.com", mobile="+85291234567")
    assert (await ask_code(world, "hk@example.com", channel="sms")).status_code == 202
    assert world.sms() == []
    [message] = world.mail_to("hk@example.com")
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    assert (await confirm(world, code_in(body.get_content()), "hk@example.com")).status_code == 204


async def test_an_unknown_login_gets_the_same_answer_and_nothing_is_sent(world: World) -> None:
    await sign_up(world)
    known = await ask_code(world, "buyer@example.com")
    unknown = await ask_code(world, "nobody@example.com")
    assert known.status_code == unknown.status_code == 202
    assert known.json() == unknown.json()
    assert len(world.sms()) == 1
    assert world.inbox.messages == []
    refusal(await confirm(world, "123456", "nobody@example.com"), 400, "invalid_code")


async def test_a_wrong_code_is_refused_and_five_wrong_tries_kill_the_code(world: World) -> None:
    await sign_up(world)
    await ask_code(world)
    code = last_sms_code(world)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    for _ in range(5):
        body = refusal(await confirm(world, wrong), 400, "invalid_code")
        assert body["field"] == "code"
    refusal(await confirm(world, code), 400, "invalid_code")  # dead now, even right
    assert (await log_in(world)).status_code == 201  # the password did not change

    await ask_code(world)  # a new code works
    assert (await confirm(world, last_sms_code(world))).status_code == 204


async def test_an_expired_code_is_refused(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    await sign_up(world)
    await ask_code(world)
    code = last_sms_code(world)
    later(monkeypatch, timedelta(minutes=10, seconds=1))
    refusal(await confirm(world, code), 400, "code_expired")
    assert (await log_in(world)).status_code == 201  # old password still in force


async def test_a_code_works_once_and_a_newer_code_voids_the_older(world: World) -> None:
    await sign_up(world)
    await ask_code(world)
    first = last_sms_code(world)
    await ask_code(world)
    second = last_sms_code(world)
    if first != second:  # one chance in a million that they are the same
        refusal(await confirm(world, first), 400, "invalid_code")
    assert (await confirm(world, second)).status_code == 204
    refusal(await confirm(world, second, password="Another-pass-99"), 400, "invalid_code")
    assert (await log_in(world, password=NEW_PASSWORD)).status_code == 201


async def test_a_weak_new_password_is_refused_and_the_code_stays_usable(world: World) -> None:
    await sign_up(world)
    await ask_code(world)
    code = last_sms_code(world)
    body = refusal(await confirm(world, code, password="short1"), 422, "weak_password")
    assert body["field"] == "new_password"
    assert (await confirm(world, code)).status_code == 204


async def test_at_most_five_codes_an_hour(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    await sign_up(world)
    for _ in range(5):
        assert (await ask_code(world)).status_code == 202
    refusal(await ask_code(world), 429, "too_many_codes")
    refusal(await ask_code(world, channel="email"), 429, "too_many_codes")
    assert len(world.sms()) == 5
    assert world.inbox.messages == []
    later(monkeypatch, timedelta(hours=1, seconds=1))
    assert (await ask_code(world)).status_code == 202
    assert len(world.sms()) == 6


async def test_a_reset_lifts_a_lockout(world: World) -> None:
    await sign_up(world)
    for _ in range(5):
        await log_in(world, password="Wrong-password-1")
    refusal(await log_in(world), 423, "account_locked")
    await ask_code(world)
    assert (await confirm(world, last_sms_code(world))).status_code == 204
    assert (await log_in(world, password=NEW_PASSWORD)).status_code == 201


async def test_a_code_that_cannot_be_sent_is_not_kept(world: World) -> None:
    await sign_up(world)
    world.stop_mail_server()
    refusal(await ask_code(world, channel="email"), 503, "message_not_sent")
    async with world.ctx.db.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(PasswordResetCode)) == 0


async def test_no_code_phone_or_address_is_logged(world: World, caplog: pytest.LogCaptureFixture) -> None:
    await sign_up(world)
    with caplog.at_level(logging.INFO):  # what the services log at (shared.logs.configure_logging)
        await ask_code(world, channel="sms")
        await ask_code(world, channel="email")
    sms_code = last_sms_code(world)
    [message] = world.mail_to("Buyer@example.com")
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    email_code = code_in(body.get_content())

    ours = [r for r in caplog.records if not r.name.startswith("mail.log")]  # not the test's SMTP server
    assert any("sent by sms" in r.getMessage() for r in ours)
    assert any("sent by email" in r.getMessage() for r in ours)
    logged = "\n".join(r.getMessage() for r in ours)
    for secret in (sms_code, email_code, MOBILE, "13812345678", "buyer@example.com", "Buyer@example.com"):
        assert secret not in logged


# ---------------------------------------------------------------------------------------- notification route


async def test_the_notification_route_needs_the_service_token_and_a_reachable_recipient(world: World) -> None:
    url = f"{NOTIFICATION_URL}/internal/messages"
    message = {
        "channel": "sms",
        "to": MOBILE,
        "template": "password_reset",
        "params": {"code": "123456", "minutes": 10},
    }
    auth = bearer(TOKEN)
    post: Callable[..., Any] = world.ctx.http.post

    refusal(await post(url, json=message), 401, "unauthorised")
    refusal(await post(url, json=message, headers=bearer("wrong")), 401, "unauthorised")
    refusal(await post(url, json={**message, "to": "+85291234567"}, headers=auth), 422, "sms_unreachable")
    refusal(await post(url, json={**message, "to": "13812345678"}, headers=auth), 422, "invalid_recipient")
    refusal(
        await post(url, json={**message, "channel": "email", "to": "nope"}, headers=auth),
        422,
        "invalid_recipient",
    )
    refusal(await post(url, json={**message, "template": "other"}, headers=auth), 422, "invalid_input")
    assert world.sms() == []

    sent = await post(url, json=message, headers=auth)
    assert sent.status_code == 202, sent.text
    [sms] = world.sms()
    assert sms["to"] == MOBILE and "123456" in sms["text"] and sms["key"] == sent.json()["key"]
