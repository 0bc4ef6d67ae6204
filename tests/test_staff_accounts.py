"""Staff accounts of the review service, as the organiser, a mission secretariat and an observer meet them:
the staff router in a small app on a migrated SQLite database, logins as secure as the buyers', roles
and their scopes, and the audit log of every staff change.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from services.registration.missions import place_unit
from services.review import staff_api
from services.review.models import ReviewTask, StaffAccount, StaffChange, StaffRole
from services.review.staff import (
    CurrentStaff,
    ensure_administrator,
    issue_staff_token,
    mission_filter,
    require_administrator,
    require_decider,
    sees_mission,
)
from shared.catalogue import load_missions
from shared.contracts import ReviewKind
from shared.db import utcnow
from shared.http import ApiError, install_error_handlers, not_found
from shared.migrate import upgrade
from shared.security import STAFF_TOKEN_LIFETIME
from shared.service import ServiceContext
from shared.settings import Settings
from shared.types import Affiliation
from tests.service_env import service_context

BEIJING = ZoneInfo("Asia/Shanghai")
REPO = Path(__file__).resolve().parents[1]
ADMIN = "organiser@expo.example"
ADMIN_PASSWORD = "Hongqiao-Admin-88"
PASSWORD = "Secretariat-2023"
NEW_PASSWORD = "Pudong-Reviews-77"
WRONG = "Wrong-password-1"
# A Shanghai (Pudong) unit that joined with the CCCME's referral code: the industrial mission manages and
# reviews it; its statistics roll into Shanghai.
SHANGHAI_CREDIT_CODE = "91310115MA1K000000"
INDUSTRIAL = place_unit(
    load_missions(),
    affiliation=Affiliation.RESIDENCE,
    credit_code=SHANGHAI_CREDIT_CODE,
    referral_code="CCCMEM2ZF",
)
REGIONAL = place_unit(load_missions(), affiliation=Affiliation.RESIDENCE, credit_code=SHANGHAI_CREDIT_CODE)


# ---------------------------------------------------------------------------------------- fixtures


def scoped_queue_routes(app: FastAPI) -> None:
    """Routes built the way the review API uses the scope helpers: a queue filtered by
    ``mission_filter``, a decision guarded by ``require_decider`` and ``sees_mission``."""

    @app.get("/test/queue")
    async def queue(staff: CurrentStaff) -> list[str]:
        ctx: ServiceContext = app.state.ctx
        query = select(ReviewTask.unit_id).order_by(ReviewTask.unit_id)
        mission = mission_filter(staff)
        if mission is not None:
            query = query.where(ReviewTask.mission == mission)
        async with ctx.db.sessions() as session:
            return list(await session.scalars(query))

    @app.post("/test/units/{unit_id}/decision")
    async def decide(unit_id: str, staff: CurrentStaff) -> dict[str, str]:
        require_decider(staff)
        ctx: ServiceContext = app.state.ctx
        async with ctx.db.sessions() as session:
            task = await session.scalar(select(ReviewTask).where(ReviewTask.unit_id == unit_id))
        if task is None or not sees_mission(staff, task.mission):
            raise not_found("review task", "审核任务")
        return {"decided_by": staff.login}


@dataclass
class World:
    client: httpx.AsyncClient
    ctx: ServiceContext
    admin: str  # the bootstrap administrator's token

    async def log_in(self, login: str, password: str = PASSWORD) -> httpx.Response:
        return await self.client.post("/v1/staff/sessions", json={"login": login, "password": password})

    async def token_of(self, login: str, password: str = PASSWORD) -> str:
        response = await self.log_in(login, password)
        assert response.status_code == 201, response.text
        token: str = response.json()["token"]
        return token

    async def me(self, token: str) -> httpx.Response:
        return await self.client.get("/v1/staff/me", headers=bearer(token))

    async def create(self, token: str | None = None, **fields: Any) -> httpx.Response:
        body = {"password": PASSWORD, "reason": "joins the secretariat", **fields}
        return await self.client.post("/v1/staff", json=body, headers=bearer(token or self.admin))

    async def staff(
        self, login: str, role: StaffRole = StaffRole.MISSION_STAFF, mission: str | None = "shanghai"
    ) -> tuple[str, str]:
        """A new staff account, logged in: its id and token."""
        response = await self.create(
            login=login, name=login.split("@")[0].title(), role=role.value, mission=mission
        )
        assert response.status_code == 201, response.text
        staff_id: str = response.json()["id"]
        return staff_id, await self.token_of(login)

    async def patch(self, staff_id: str, token: str | None = None, **fields: Any) -> httpx.Response:
        return await self.client.patch(
            f"/v1/staff/{staff_id}",
            json={"reason": "reorganisation", **fields},
            headers=bearer(token or self.admin),
        )

    async def changes(self, token: str | None = None, **params: Any) -> list[dict[str, Any]]:
        response = await self.client.get(
            "/v1/audit/staff-changes", params=params, headers=bearer(token or self.admin)
        )
        assert response.status_code == 200, response.text
        rows: list[dict[str, Any]] = response.json()
        return rows

    async def account(self, login: str) -> StaffAccount:
        async with self.ctx.db.sessions() as session:
            account = await session.scalar(select(StaffAccount).where(StaffAccount.login == login))
        assert account is not None
        return account

    async def count(self, table: type[StaffAccount] | type[StaffChange]) -> int:
        async with self.ctx.db.sessions() as session:
            return await session.scalar(select(func.count()).select_from(table)) or 0


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def refusal(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["code"] == code
    assert body["message"] and body["message_zh"] and body["message"] != body["message_zh"]
    return body


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    settings = Settings(data_dir=tmp_path)
    async with service_context("review", settings) as ctx:
        assert await ensure_administrator(ctx.db, ADMIN, "Organiser", ADMIN_PASSWORD)
        app = FastAPI()
        install_error_handlers(app)
        app.include_router(staff_api.router)
        scoped_queue_routes(app)
        app.state.ctx = ctx
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://review.test"
        ) as client:
            response = await client.post(
                "/v1/staff/sessions", json={"login": ADMIN, "password": ADMIN_PASSWORD}
            )
            assert response.status_code == 201, response.text
            yield World(client, ctx, response.json()["token"])


def later(monkeypatch: pytest.MonkeyPatch, by: timedelta) -> None:
    """The staff login's clock moves ``by`` ahead of the real one."""
    monkeypatch.setattr(staff_api, "utcnow", lambda: utcnow() + by)


# ---------------------------------------------------------------------------------------- bootstrap


def create_admin(tmp_path: Path, password: str | None, *args: str) -> subprocess.CompletedProcess[str]:
    # The test's database (PostgreSQL on the suite's second pass), nothing else of the shell's settings.
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXPO_") or k == "EXPO_DATABASE_URL"}
    env |= {"EXPO_DATA_DIR": str(tmp_path), "PYTHONPATH": str(REPO)}
    if password is not None:
        env["EXPO_ADMIN_PASSWORD"] = password
    return subprocess.run(
        [sys.executable, "-m", "services.review.staff", "create-admin", *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


async def test_the_bootstrap_command_creates_one_administrator_and_again_changes_nothing(
    tmp_path: Path,
) -> None:
    settings = Settings(data_dir=tmp_path)
    upgrade(("review",), settings)
    args = ("--login", "Chief2023@Expo.example", "--name", "Chief Organiser")

    missing = create_admin(tmp_path, None, *args)
    assert missing.returncode == 2 and "EXPO_ADMIN_PASSWORD" in missing.stderr
    for weak_password in ("chief2023", "CHIEF2023@expo.example"):  # too short; the login itself
        weak = create_admin(tmp_path, weak_password, *args)
        assert weak.returncode == 2, weak.stdout
        assert "password" in weak.stderr and weak_password not in weak.stderr
    short_name = create_admin(tmp_path, ADMIN_PASSWORD, "--login", "Chief2023@Expo.example", "--name", " ")
    assert short_name.returncode == 2 and "name" in short_name.stderr

    first = create_admin(tmp_path, ADMIN_PASSWORD, *args)
    assert first.returncode == 0, first.stderr
    assert "created" in first.stdout
    again = create_admin(tmp_path, "Another-Password-9", *args)
    assert again.returncode == 0, again.stderr
    assert "exists already" in again.stdout

    async with service_context("review", settings) as ctx:
        async with ctx.db.sessions() as session:
            accounts = list(await session.scalars(select(StaffAccount)))
            changes = list(await session.scalars(select(StaffChange)))
        assert [(a.login, a.name, a.role, a.mission, a.active) for a in accounts] == [
            ("chief2023@expo.example", "Chief Organiser", StaffRole.ADMINISTRATOR, None, True)
        ]
        assert accounts[0].password_hash.startswith("$argon2id$")
        assert [(c.actor_id, c.staff_id, c.action, c.reason) for c in changes] == [
            (None, accounts[0].id, "created", "bootstrap")
        ]
        assert ADMIN_PASSWORD not in str(changes[0].detail) and "argon2" not in str(changes[0].detail)
        # the function the stack launcher calls is idempotent too, and the first password still holds
        assert not await ensure_administrator(
            ctx.db, "chief2023@expo.example", "Someone Else", "Third-Password-7"
        )
        assert await ensure_administrator(ctx.db, "deputy@expo.example", "Deputy", "Deputy-Organiser-5")
        # the embedded stack's default login, on a special-use domain, is a fine login
        assert await ensure_administrator(ctx.db, " Admin@Expo.local ", "Organiser", "dev-Admin-2023-expo")
        for login in ("not-an-email", "two@at@signs.example", "with space@expo.example"):
            with pytest.raises(ValueError, match="email"):
                await ensure_administrator(ctx.db, login, "Nobody", "Nobody-Password-5")

    app = FastAPI()
    install_error_handlers(app)
    app.include_router(staff_api.router)
    async with service_context("review", settings) as ctx:
        app.state.ctx = ctx
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            ok = await client.post(
                "/v1/staff/sessions", json={"login": "chief2023@expo.example", "password": ADMIN_PASSWORD}
            )
            assert ok.status_code == 201, ok.text
            assert ok.json()["staff"]["role"] == "administrator"
            local = await client.post(
                "/v1/staff/sessions", json={"login": "admin@expo.local", "password": "dev-Admin-2023-expo"}
            )
            assert local.status_code == 201, local.text
            refusal(
                await client.post(
                    "/v1/staff/sessions",
                    json={"login": "chief2023@expo.example", "password": "Another-Password-9"},
                ),
                401,
                "invalid_credentials",
            )
        async with ctx.db.sessions() as session:
            logins = set(await session.scalars(select(StaffAccount.login)))
        assert logins == {"chief2023@expo.example", "deputy@expo.example", "admin@expo.local"}


# ---------------------------------------------------------------------------------------- sessions


async def test_log_in_gives_an_eight_hour_token_and_unknown_logins_look_like_wrong_passwords(
    world: World,
) -> None:
    staff_id, _ = await world.staff("pudong@expo.example")
    response = await world.log_in("  Pudong@EXPO.example ")
    assert response.status_code == 201, response.text
    body = response.json()
    expires_at = datetime.fromisoformat(body["expires_at"])
    assert abs(expires_at - (utcnow() + timedelta(hours=8))) < timedelta(minutes=1)
    assert body["staff"] == {
        "id": staff_id,
        "login": "pudong@expo.example",
        "name": "Pudong",
        "role": "mission_staff",
        "mission": "shanghai",
        "active": True,
        "created_at": body["staff"]["created_at"],
    }
    mine = await world.me(body["token"])
    assert mine.status_code == 200 and mine.json()["id"] == staff_id

    wrong = await world.log_in("pudong@expo.example", WRONG)
    unknown = await world.log_in("nobody@expo.example")
    refusal(wrong, 401, "invalid_credentials")
    assert wrong.json() == unknown.json()
    refusal(await world.me("not-a-token"), 401, "unauthenticated")
    refusal(await world.client.get("/v1/staff/me"), 401, "unauthenticated")


async def test_an_expired_token_is_refused(world: World) -> None:
    account = await world.account(ADMIN)
    async with world.ctx.db.transaction() as session:
        stale, _ = await issue_staff_token(
            session, account, now=utcnow() - STAFF_TOKEN_LIFETIME - timedelta(seconds=1)
        )
        fresh, _ = await issue_staff_token(
            session, account, now=utcnow() - STAFF_TOKEN_LIFETIME + timedelta(minutes=1)
        )
    refusal(await world.me(stale), 401, "unauthenticated")
    refusal(await world.client.get("/v1/staff", headers=bearer(stale)), 401, "unauthenticated")
    assert (await world.me(fresh)).status_code == 200


async def test_log_out_ends_only_the_token_used(world: World) -> None:
    await world.staff("pudong@expo.example")
    desk, laptop = await world.token_of("pudong@expo.example"), await world.token_of("pudong@expo.example")
    assert (await world.client.delete("/v1/staff/sessions/current", headers=bearer(desk))).status_code == 204
    refusal(await world.me(desk), 401, "unauthenticated")
    refusal(
        await world.client.delete("/v1/staff/sessions/current", headers=bearer(desk)), 401, "unauthenticated"
    )
    assert (await world.me(laptop)).status_code == 200


async def test_five_failures_lock_the_login_for_fifteen_minutes(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    await world.staff("pudong@expo.example")
    for _ in range(4):
        refusal(await world.log_in("pudong@expo.example", WRONG), 401, "invalid_credentials")
    locked = refusal(await world.log_in("pudong@expo.example", WRONG), 423, "account_locked")
    account = await world.account("pudong@expo.example")
    assert account.locked_until is not None
    assert abs(account.locked_until - (utcnow() + timedelta(minutes=15))) < timedelta(minutes=1)
    unlocks = f"{account.locked_until.astimezone(BEIJING):%Y-%m-%d %H:%M:%S}"
    assert unlocks in locked["message"] and "Beijing" in locked["message"]
    assert unlocks in locked["message_zh"] and "北京时间" in locked["message_zh"]
    assert "administrator" in locked["message"]

    # while locked, even the right password is refused; an unknown login still looks the same as before
    refusal(await world.log_in("pudong@expo.example"), 423, "account_locked")
    later(monkeypatch, timedelta(minutes=14, seconds=50))
    refusal(await world.log_in("pudong@expo.example"), 423, "account_locked")

    # fifteen minutes on, the right password works and the count starts again from nothing
    later(monkeypatch, timedelta(minutes=15, seconds=1))
    assert (await world.log_in("pudong@expo.example")).status_code == 201
    for _ in range(4):
        refusal(await world.log_in("pudong@expo.example", WRONG), 401, "invalid_credentials")
    assert (await world.log_in("pudong@expo.example")).status_code == 201


async def test_a_new_password_from_an_administrator_ends_sessions_and_lifts_a_lockout(world: World) -> None:
    staff_id, token = await world.staff("pudong@expo.example")
    for _ in range(5):
        await world.log_in("pudong@expo.example", WRONG)
    refusal(await world.log_in("pudong@expo.example"), 423, "account_locked")

    weak = await world.client.post(
        f"/v1/staff/{staff_id}/password",
        json={"password": "Pudong@Expo.example", "reason": "r"},  # no digit
        headers=bearer(world.admin),
    )
    assert refusal(weak, 422, "weak_password")["field"] == "password"
    response = await world.client.post(
        f"/v1/staff/{staff_id}/password",
        json={"password": NEW_PASSWORD, "reason": "forgotten at the hotel"},
        headers=bearer(world.admin),
    )
    assert response.status_code == 204, response.text
    refusal(await world.me(token), 401, "unauthenticated")
    refusal(await world.log_in("pudong@expo.example"), 401, "invalid_credentials")
    assert (await world.log_in("pudong@expo.example", NEW_PASSWORD)).status_code == 201

    (latest, *_) = await world.changes()
    assert latest["action"] == "password_set" and latest["staff_id"] == staff_id
    assert latest["actor_login"] == ADMIN and latest["reason"] == "forgotten at the hotel"
    assert latest["detail"] == {"sessions_ended": 1}


async def test_a_deactivated_account_is_locked_out_at_once(world: World) -> None:
    staff_id, token = await world.staff("pudong@expo.example")
    assert (await world.me(token)).status_code == 200
    response = await world.patch(staff_id, active=False, reason="left the secretariat")
    assert response.status_code == 200, response.text
    assert response.json()["active"] is False

    refusal(await world.me(token), 401, "unauthenticated")
    refusal(await world.client.get("/test/queue", headers=bearer(token)), 401, "unauthenticated")
    # a login that raced the deactivation (its token issued just after) is refused as well
    async with world.ctx.db.transaction() as session:
        raced, _ = await issue_staff_token(session, await world.account("pudong@expo.example"))
    refusal(await world.me(raced), 401, "unauthenticated")
    # the right password answers exactly as an unknown login does
    right = await world.log_in("pudong@expo.example")
    refusal(right, 401, "invalid_credentials")
    assert right.json() == (await world.log_in("nobody@expo.example")).json()

    assert (await world.patch(staff_id, active=True, reason="back from leave")).status_code == 200
    refusal(await world.me(token), 401, "unauthenticated")  # the old token stays ended
    assert (await world.me(await world.token_of("pudong@expo.example"))).status_code == 200

    reactivated, deactivated, _created = await world.changes(staff_id=staff_id)
    assert (deactivated["action"], deactivated["reason"]) == ("deactivated", "left the secretariat")
    assert deactivated["detail"] == {"active": {"from": True, "to": False}, "sessions_ended": 1}
    assert (reactivated["action"], reactivated["reason"]) == ("reactivated", "back from leave")


async def test_the_last_active_administrator_cannot_be_demoted_or_deactivated(world: World) -> None:
    admin_id = (await world.account(ADMIN)).id
    refusal(await world.patch(admin_id, active=False), 409, "last_administrator")
    refusal(await world.patch(admin_id, role="observer"), 409, "last_administrator")
    await world.staff("deputy@expo.example", StaffRole.ADMINISTRATOR, None)
    response = await world.patch(admin_id, role="observer", reason="retired")
    assert response.status_code == 200, response.text
    assert (await world.me(world.admin)).json()["role"] == "observer"  # takes effect on the same token
    refusal(await world.client.get("/v1/staff", headers=bearer(world.admin)), 403, "administrators_only")


# ---------------------------------------------------------------------------------------- who may do what


async def test_administrator_routes_refuse_mission_staff_observers_and_anonymous_callers(
    world: World,
) -> None:
    target_id, _ = await world.staff("pudong@expo.example")
    _, secretariat = await world.staff("beijing@expo.example", mission="beijing")
    _, observer = await world.staff("watcher@expo.example", StaffRole.OBSERVER, None)
    accounts, changes = await world.count(StaffAccount), await world.count(StaffChange)
    new_staff = {
        "login": "new@expo.example",
        "name": "New",
        "role": "administrator",
        "password": PASSWORD,
        "reason": "promotion",
    }
    calls: list[tuple[str, str, dict[str, Any] | None]] = [
        ("POST", "/v1/staff", new_staff),
        ("GET", "/v1/staff", None),
        ("GET", f"/v1/staff/{target_id}", None),
        ("PATCH", f"/v1/staff/{target_id}", {"role": "administrator", "mission": None, "reason": "coup"}),
        ("POST", f"/v1/staff/{target_id}/password", {"password": NEW_PASSWORD, "reason": "takeover"}),
    ]
    for method, path, body in calls:
        refusal(await world.client.request(method, path, json=body), 401, "unauthenticated")
        for token in (secretariat, observer):
            refusal(
                await world.client.request(method, path, json=body, headers=bearer(token)),
                403,
                "administrators_only",
            )
    # nothing changed: no account, no audit entry, the target keeps its role and password
    assert (await world.count(StaffAccount), await world.count(StaffChange)) == (accounts, changes)
    assert (await world.account("pudong@expo.example")).role is StaffRole.MISSION_STAFF
    assert (await world.log_in("pudong@expo.example")).status_code == 201
    refusal(await world.client.get("/v1/audit/staff-changes"), 401, "unauthenticated")


async def test_mission_is_required_for_mission_staff_refused_for_other_roles_and_must_exist(
    world: World,
) -> None:
    def person(login: str, role: str, **mission: Any) -> dict[str, Any]:
        return {"login": login, "name": "X", "role": role, **mission}

    cases = [
        (person("a@expo.example", "mission_staff"), "mission_required"),
        (person("b@expo.example", "mission_staff", mission=None), "mission_required"),
        (person("c@expo.example", "mission_staff", mission="atlantis"), "unknown_mission"),
        (
            person("d@expo.example", "mission_staff", mission="shanghai-pudong"),
            "unknown_mission",
        ),  # a sub-mission
        (person("e@expo.example", "administrator", mission="shanghai"), "mission_not_allowed"),
        (person("f@expo.example", "observer", mission="shanghai"), "mission_not_allowed"),
    ]
    for body, code in cases:
        assert refusal(await world.create(**body), 422, code)["field"] == "mission"
    assert await world.count(StaffAccount) == 1  # the administrator alone

    industrial = await world.create(
        **person("cccme@expo.example", "mission_staff", mission=INDUSTRIAL.mission)
    )
    assert industrial.status_code == 201, industrial.text
    assert industrial.json()["mission"] == "industrial-cccme"
    observer_id, _ = await world.staff("watcher@expo.example", StaffRole.OBSERVER, None)
    staff_id = industrial.json()["id"]

    refusal(await world.patch(observer_id, role="mission_staff"), 422, "mission_required")
    refusal(await world.patch(observer_id, mission="shanghai"), 422, "mission_not_allowed")
    refusal(await world.patch(staff_id, mission="atlantis"), 422, "unknown_mission")
    refusal(await world.patch(staff_id, mission=None), 422, "mission_required")
    assert (await world.account("cccme@expo.example")).mission == "industrial-cccme"

    # becoming an observer drops the mission; becoming mission staff again needs one
    observer = await world.patch(staff_id, role="observer", reason="moved to the organiser's office")
    assert observer.status_code == 200, observer.text
    assert (observer.json()["role"], observer.json()["mission"]) == ("observer", None)
    back = await world.patch(staff_id, role="mission_staff", mission="shanghai", reason="back to a mission")
    assert (back.json()["role"], back.json()["mission"]) == ("mission_staff", "shanghai")


async def test_a_weak_password_or_a_taken_login_creates_nothing(world: World) -> None:
    body = {
        "login": "pudong2023@expo.example",
        "name": "Pudong",
        "role": "mission_staff",
        "mission": "shanghai",
    }
    # too short; no digit; the login's name part; the login itself
    for weak in ("short1", "no-digits-here", "Pudong2023", "pudong2023@EXPO.example"):
        assert refusal(await world.create(**body, password=weak), 422, "weak_password")["field"] == "password"
    refusal(await world.create(**{**body, "login": "not-an-email"}), 422, "invalid_input")
    refusal(await world.create(**body, reason=" "), 422, "invalid_input")
    assert (await world.create(**body)).status_code == 201
    refusal(await world.create(**{**body, "login": "PUDONG2023@expo.example"}), 409, "staff_exists")
    assert await world.count(StaffAccount) == 2
    assert await world.count(StaffChange) == 2  # the bootstrap and this creation


async def test_the_staff_list_filters_by_role_and_mission_and_pages(world: World) -> None:
    for login, role, mission in [
        ("b-shanghai@expo.example", StaffRole.MISSION_STAFF, "shanghai"),
        ("a-shanghai@expo.example", StaffRole.MISSION_STAFF, "shanghai"),
        ("beijing@expo.example", StaffRole.MISSION_STAFF, "beijing"),
        ("watcher@expo.example", StaffRole.OBSERVER, None),
    ]:
        await world.staff(login, role, mission)

    async def logins(**params: Any) -> list[str]:
        response = await world.client.get("/v1/staff", params=params, headers=bearer(world.admin))
        assert response.status_code == 200, response.text
        return [row["login"] for row in response.json()]

    assert await logins(mission="shanghai") == ["a-shanghai@expo.example", "b-shanghai@expo.example"]
    assert await logins(role="observer") == ["watcher@expo.example"]
    assert await logins(role="administrator") == [ADMIN]
    assert len(await logins()) == 5
    assert await logins(limit=2) + await logins(limit=2, offset=2) + await logins(offset=4) == await logins()
    refusal(
        await world.client.get("/v1/staff", params={"limit": 0}, headers=bearer(world.admin)),
        422,
        "invalid_input",
    )


# ---------------------------------------------------------------------------------------- the audit log


async def test_every_staff_change_is_audited_and_readable_within_each_roles_scope(world: World) -> None:
    shanghai_id, shanghai = await world.staff("shanghai-lead@expo.example")
    moved_id, _ = await world.staff("mover@expo.example")
    beijing_id, _ = await world.staff("beijing-lead@expo.example", mission="beijing")
    _, observer = await world.staff("watcher@expo.example", StaffRole.OBSERVER, None)
    assert (await world.patch(moved_id, mission="beijing", reason="seconded to Beijing")).status_code == 200
    assert (await world.patch(beijing_id, active=False, reason="left")).status_code == 200
    assert (
        await world.patch(shanghai_id, role="administrator", mission=None, reason="promoted")
    ).status_code == 200

    everything = await world.changes()
    assert [(c["action"], c["staff_login"]) for c in everything] == [
        ("role_changed", "shanghai-lead@expo.example"),
        ("deactivated", "beijing-lead@expo.example"),
        ("mission_changed", "mover@expo.example"),
        ("created", "watcher@expo.example"),
        ("created", "beijing-lead@expo.example"),
        ("created", "mover@expo.example"),
        ("created", "shanghai-lead@expo.example"),
        ("created", ADMIN),
    ]
    promoted, _, moved, *_, created_shanghai, bootstrap = everything
    assert promoted["actor_login"] == ADMIN and promoted["reason"] == "promoted"
    assert promoted["detail"] == {
        "role": {"from": "mission_staff", "to": "administrator"},
        "mission": {"from": "shanghai", "to": None},
    }
    assert moved["detail"] == {"mission": {"from": "shanghai", "to": "beijing"}}
    assert moved["reason"] == "seconded to Beijing"
    assert created_shanghai["detail"] == {
        "login": {"from": None, "to": "shanghai-lead@expo.example"},
        "name": {"from": None, "to": "Shanghai-Lead"},
        "role": {"from": None, "to": "mission_staff"},
        "mission": {"from": None, "to": "shanghai"},
    }
    assert created_shanghai["reason"] == "joins the secretariat"
    assert (bootstrap["actor_id"], bootstrap["actor_login"], bootstrap["reason"]) == (None, None, "bootstrap")
    times = [datetime.fromisoformat(c["at"]) for c in everything]
    assert times == sorted(times, reverse=True)

    # passwords and their hashes never reach the log
    response = await world.client.get("/v1/audit/staff-changes", headers=bearer(world.admin))
    assert (
        PASSWORD not in response.text
        and ADMIN_PASSWORD not in response.text
        and "argon2" not in response.text
    )
    async with world.ctx.db.sessions() as session:
        details = [str(c.detail) for c in await session.scalars(select(StaffChange))]
    assert not any("argon2" in detail or PASSWORD in detail for detail in details)

    # pages
    assert (
        await world.changes(limit=3) + await world.changes(limit=3, offset=3) + await world.changes(offset=6)
        == everything
    )

    # the observer reads everything; mission staff read their own mission's accounts, and the one moved
    # from Shanghai to Beijing is seen by both
    assert await world.changes(observer) == everything
    _, pudong = await world.staff("pudong@expo.example")
    seen_from_shanghai = {(c["action"], c["staff_login"]) for c in await world.changes(pudong)}
    assert seen_from_shanghai == {
        ("created", "pudong@expo.example"),
        ("mission_changed", "mover@expo.example"),
        ("created", "mover@expo.example"),
        ("role_changed", "shanghai-lead@expo.example"),
        ("created", "shanghai-lead@expo.example"),
    }
    assert (await world.patch(beijing_id, active=True, reason="returned")).status_code == 200
    beijing = await world.token_of("beijing-lead@expo.example")
    seen_from_beijing = {(c["action"], c["staff_login"]) for c in await world.changes(beijing)}
    assert seen_from_beijing == {
        ("reactivated", "beijing-lead@expo.example"),
        ("deactivated", "beijing-lead@expo.example"),
        ("created", "beijing-lead@expo.example"),
        ("mission_changed", "mover@expo.example"),
        ("created", "mover@expo.example"),
    }
    # the promoted Shanghai lead is an administrator now, and reads everything
    assert len(await world.changes(shanghai)) == len(await world.changes())


# ---------------------------------------------------------------------------------------- scope helpers


async def test_each_role_sees_and_decides_within_its_scope(world: World) -> None:
    assert INDUSTRIAL.mission == "industrial-cccme" and INDUSTRIAL.statistics_mission == "shanghai"
    async with world.ctx.db.transaction() as session:
        for unit_id, placement in [("U-INDUSTRIAL", INDUSTRIAL), ("U-SHANGHAI", REGIONAL)]:
            session.add(
                ReviewTask(
                    kind=ReviewKind.UNIT,
                    subject_id=unit_id,
                    round=1,
                    workflow_id=f"unit-{unit_id}",
                    edition="ciie6",
                    mission=placement.mission,
                    sub_mission=placement.sub_mission,
                    unit_id=unit_id,
                    opened_at=utcnow(),
                )
            )
        session.add(
            ReviewTask(
                kind=ReviewKind.UNIT,
                subject_id="U-BEIJING",
                round=1,
                workflow_id="unit-U-BEIJING",
                edition="ciie6",
                mission="beijing",
                sub_mission=None,
                unit_id="U-BEIJING",
                opened_at=utcnow(),
            )
        )
    _, cccme = await world.staff("cccme@expo.example", mission="industrial-cccme")
    _, shanghai = await world.staff("shanghai@expo.example", mission="shanghai")
    _, observer = await world.staff("watcher@expo.example", StaffRole.OBSERVER, None)

    async def queue(token: str) -> list[str]:
        response = await world.client.get("/test/queue", headers=bearer(token))
        assert response.status_code == 200, response.text
        units: list[str] = response.json()
        return units

    async def decide(token: str, unit_id: str) -> httpx.Response:
        return await world.client.post(f"/test/units/{unit_id}/decision", headers=bearer(token))

    everything = ["U-BEIJING", "U-INDUSTRIAL", "U-SHANGHAI"]
    assert await queue(world.admin) == everything
    assert await queue(observer) == everything
    # the industrial mission's staff see the unit that joined with its referral code, and nothing else;
    # Shanghai's staff do not see it, though its statistics roll into Shanghai
    assert await queue(cccme) == ["U-INDUSTRIAL"]
    assert await queue(shanghai) == ["U-SHANGHAI"]

    assert (await decide(cccme, "U-INDUSTRIAL")).json() == {"decided_by": "cccme@expo.example"}
    refusal(await decide(cccme, "U-SHANGHAI"), 404, "not_found")
    refusal(await decide(shanghai, "U-INDUSTRIAL"), 404, "not_found")
    assert (await decide(world.admin, "U-BEIJING")).status_code == 200
    refusal(await decide(observer, "U-BEIJING"), 403, "read_only")
    refusal(await world.client.get("/test/queue"), 401, "unauthenticated")


def account(role: StaffRole, mission: str | None = None) -> StaffAccount:
    return StaffAccount(
        id="S1", login="x@expo.example", name="X", role=role, mission=mission, password_hash="-"
    )


@pytest.mark.parametrize(
    ("staff", "only", "sees", "hidden", "decides", "administers"),
    [
        (account(StaffRole.ADMINISTRATOR), None, ["beijing", "industrial-cccme"], [], True, True),
        (account(StaffRole.OBSERVER), None, ["beijing", "industrial-cccme"], [], False, False),
        (
            account(StaffRole.MISSION_STAFF, "industrial-cccme"),
            "industrial-cccme",
            ["industrial-cccme"],
            ["shanghai", "beijing", "industrial-cfna"],
            True,
            False,
        ),
        (
            account(StaffRole.MISSION_STAFF, "shanghai"),
            "shanghai",
            ["shanghai"],
            ["industrial-cccme"],
            True,
            False,
        ),
        # never written so, but were it: a mission that matches nothing, never "all"
        (account(StaffRole.MISSION_STAFF, None), "", [], ["shanghai", ""], True, False),
    ],
)
def test_scope_helpers_for_each_role(
    staff: StaffAccount,
    only: str | None,
    sees: list[str],
    hidden: list[str],
    decides: bool,
    administers: bool,
) -> None:
    assert mission_filter(staff) == only
    assert all(sees_mission(staff, mission) for mission in sees)
    assert not any(sees_mission(staff, mission) for mission in hidden)

    def allowed(check: Any) -> bool:
        try:
            check(staff)
        except ApiError as exc:
            assert exc.status == 403 and exc.body.message_zh != exc.body.message
            return False
        return True

    assert allowed(require_decider) is decides
    assert allowed(require_administrator) is administers
