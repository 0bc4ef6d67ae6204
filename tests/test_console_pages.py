"""The staff console (``/console``) and the detail routes it reads, in process.

The review app serves the pages; they call its public API over HTTP at ``settings.review_url`` as any
client would, and the API asks the registration app's internal routes for the subjects' data: both
apps run in process behind httpx's ASGI transport, each on its own migrated SQLite database. The
units' and people's workflows run on the time-skipping server with fake services
(``tests/workflow_env.py``), so a decision sent from a page really reaches a workflow, whose validators
accept or refuse it; photos are in a real SeaweedFS (``tests/object_store.py``).
"""

from __future__ import annotations

import io
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from services.registration import api as registration_api
from services.registration.models import PersonRegistration
from services.registration.models import Unit as UnitRow
from services.review import api as review_api
from services.review.activities import ReviewActivities
from services.review.models import ReviewTask, StaffRole
from shared import contracts as c
from shared.db import utcnow
from shared.ids import new_id
from shared.service import ServiceContext
from shared.settings import Settings
from shared.types import (
    Affiliation,
    DeliveryMethod,
    IdType,
    RegistrationStatus,
    UnitKind,
    UnitStatus,
)
from tests.object_store import SeaweedFS
from tests.page_env import CSRF, add_staff, page_browser, text_of
from tests.service_env import service_context
from tests.workflow_world import (
    Registration,
    Unit,
    World,
    approved_unit_with_unpaid,
    eventually,
    paid_for,
)

OWN, OTHER = "shanghai", "beijing"
REVIEW_URL, REGISTRATION_URL = "http://review.test", "http://registration.test"
PASSWORD = "console-Pass-2023"
ID_NUMBER = "310101199001011234"
DETAIL_ROUTES = (
    "/v1/units/{unit_id}",
    "/v1/registrations/{registration_id}",
    "/v1/registrations/{registration_id}/photo",
)


# ------------------------------------------------------------------------------------------ the world


@dataclass
class Console:
    world: World
    review: ServiceContext
    registration: ServiceContext
    seaweedfs: SeaweedFS
    units: dict[str, Unit]  # "own", "other": under review; "approved": its unit review passed
    person: Registration  # paid, awaiting the personnel review, of the own mission
    other_person: str  # a registration of the other mission, awaiting the personnel review
    photo: bytes  # the person's photo

    def browser(self, token: str | None = None) -> httpx.AsyncClient:
        """A browser on the review app: the staff cookie (if logged in) and a form token."""
        return page_browser(review_api.app, REVIEW_URL, "expo_staff", token)

    async def staff(self, role: StaffRole, mission: str | None = None) -> tuple[str, str]:
        """A staff account with PASSWORD, logged in: (login, token)."""
        async with self.review.db.transaction() as session:
            return await add_staff(session, role, mission, PASSWORD)


def _photo() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (295, 413), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def _unit_row(unit_id: str, mission: str, status: UnitStatus) -> UnitRow:
    return UnitRow(
        id=unit_id, edition="ciie6", kind=UnitKind.ENTERPRISE, affiliation=Affiliation.RESIDENCE,
        name=f"测试贸易有限公司 {unit_id}", credit_code=None, country="CN", address="上海市黄浦区中山东一路1号",
        industry="贸易", contact_name="王芳", contact_mobile="+8613900000000", contact_email="wang@example.com",
        mission=mission, sub_mission=None, statistics_mission=mission, statistics_sub_mission=None,
        status=status, workflow_id=f"unit-ciie6-{unit_id}",
    )  # fmt: skip


def _person_row(registration_id: str, unit_id: str, photo_key: str | None, number: str) -> PersonRegistration:
    return PersonRegistration(
        id=registration_id, edition="ciie6", unit_id=unit_id, name=f"李明 {registration_id}",
        id_type=IdType.RESIDENT_ID, id_number=number, nationality="CN", mobile="+8613900000001",
        email="li@example.com", job_title="采购经理", personnel_label="采购商", delivery_method=DeliveryMethod.EXPRESS,
        photo_key=photo_key, status=RegistrationStatus.TO_BE_REVIEWED,
        workflow_id=f"registration-ciie6-{registration_id}",
    )  # fmt: skip


def _task(
    kind: c.ReviewKind, subject_id: str, unit_id: str, mission: str, workflow_id: str, **more: Any
) -> ReviewTask:
    return ReviewTask(
        kind=kind, subject_id=subject_id, round=1, workflow_id=workflow_id, edition="ciie6", mission=mission,
        sub_mission=None, unit_id=unit_id, unit_kind=UnitKind.ENTERPRISE, opened_at=utcnow(), **more,
    )  # fmt: skip


def _opened(
    kind: c.ReviewKind, subject_id: str, unit_id: str, mission: str, workflow_id: str, round: int = 1
) -> c.OpenReviewTask:
    return c.OpenReviewTask(
        kind=kind, subject_id=subject_id, round=round, workflow_id=workflow_id, edition="ciie6", mission=mission,
        sub_mission=None, unit_id=unit_id, opened_at=utcnow(), unit_kind=UnitKind.ENTERPRISE,
    )  # fmt: skip


@pytest.fixture
async def console(world: World, seaweedfs: SeaweedFS, tmp_path: Path) -> AsyncIterator[Console]:
    own, other = await world.start_unit(), await world.start_unit()
    approved, (person,) = await approved_unit_with_unpaid(world)
    await paid_for(world, approved, person)
    other_person, other_unit = new_id("R"), new_id("U")
    photo = _photo()
    photo_key = f"ciie6/{approved.id}/{person.id}.jpg"
    await seaweedfs.store.put(seaweedfs.settings["bucket_photos"], photo_key, photo, "image/png")

    settings = Settings(
        data_dir=tmp_path, review_url=REVIEW_URL, registration_url=REGISTRATION_URL, **seaweedfs.settings
    )
    # The services reach each other (and the pages their own API) over HTTP, in process.
    http = httpx.AsyncClient(
        mounts={
            REVIEW_URL: httpx.ASGITransport(app=review_api.app),
            REGISTRATION_URL: httpx.ASGITransport(app=registration_api.app),
        }
    )
    async with (
        service_context(
            "review", settings, temporal=world.client, http=http, store=seaweedfs.store
        ) as review,
        service_context(
            "registration", settings, temporal=world.client, store=seaweedfs.store
        ) as registration,
    ):
        async with registration.db.transaction() as session:
            session.add_all([
                _unit_row(own.id, OWN, UnitStatus.UNDER_REVIEW),
                _unit_row(other.id, OTHER, UnitStatus.UNDER_REVIEW),
                _unit_row(approved.id, OWN, UnitStatus.APPROVED),
                _unit_row(other_unit, OTHER, UnitStatus.APPROVED),
            ])  # fmt: skip
            await session.flush()
            session.add_all([
                _person_row(person.id, approved.id, photo_key, ID_NUMBER),
                _person_row(other_person, other_unit, None, "11010519491231002X"),
            ])  # fmt: skip
        unit = c.ReviewKind.UNIT
        async with review.db.transaction() as session:  # rounds decided before
            session.add_all([
                _task(unit, approved.id, approved.id, OWN, approved.handle.id, decided_at=utcnow(),
                      decision="approve"),
                _task(unit, other_unit, other_unit, OTHER, f"unit-ciie6-{other_unit}", decided_at=utcnow(),
                      decision="approve"),
            ])  # fmt: skip
        review_api.app.state.ctx = review
        registration_api.app.state.ctx = registration
        # The rounds awaiting review, as the workflows open them: the review service's activity queues
        # each with its names, read from the registration service.
        for kind, subject, unit_id, mission, workflow_id in (
            (unit, own.id, own.id, OWN, own.handle.id),
            (unit, other.id, other.id, OTHER, other.handle.id),
            (c.ReviewKind.PERSON, person.id, approved.id, OWN, person.handle.id),
            (c.ReviewKind.PERSON, other_person, other_unit, OTHER, f"registration-ciie6-{other_person}"),
        ):
            await ReviewActivities(review).open_task(_opened(kind, subject, unit_id, mission, workflow_id))
        yield Console(
            world, review, registration, seaweedfs, {"own": own, "other": other, "approved": approved},
            person, other_person, photo,
        )  # fmt: skip
    seaweedfs.delete(seaweedfs.settings["bucket_photos"], photo_key)


# ------------------------------------------------------------------------------------------ login


async def test_login_sets_an_httponly_cookie_and_every_page_needs_it(console: Console) -> None:
    login, _ = await console.staff(StaffRole.ADMINISTRATOR)
    async with console.browser() as browser:
        browser.cookies.clear()
        for url in ("/console", "/console/units/U1", "/console/audit", "/console/statistics"):
            sent = await browser.get(url)
            assert sent.status_code == 303 and sent.headers["location"].startswith("/console/login?next="), (
                url
            )
        form = await browser.get("/console/login", params={"next": "/console/audit", "lang": "en"})
        assert form.status_code == 200 and "Staff login" in form.text
        token = browser.cookies["expo_csrf"]  # the form's token, set with the form
        assert f'name="csrf" value="{token}"' in form.text

        wrong = await browser.post(
            "/console/login",
            data={"csrf": token, "login": login, "password": "wrong-password-1", "next": "/console/audit"},
        )
        assert wrong.status_code == 401 and text_of(wrong.text, "form-error") == "wrong login or password"
        assert "expo_staff" not in browser.cookies
        forged = await browser.post(
            "/console/login", data={"csrf": "forged", "login": login, "password": PASSWORD}
        )
        assert forged.status_code == 403 and "expo_staff" not in browser.cookies

        done = await browser.post(
            "/console/login",
            data={"csrf": token, "login": login, "password": PASSWORD, "next": "/console/audit"},
        )
        assert done.status_code == 303 and done.headers["location"] == "/console/audit"
        cookie = done.headers["set-cookie"]
        assert cookie.startswith("expo_staff=") and "HttpOnly" in cookie and "Max-Age=28800" in cookie
        audit = await browser.get("/console/audit")
        assert audit.status_code == 200
        assert login in (text_of(audit.text, "who") or "") and "Administrator" in (
            text_of(audit.text, "who") or ""
        )

        # Another site is never where a login sends the browser.
        elsewhere = await browser.post(
            "/console/login",
            data={"csrf": token, "login": login, "password": PASSWORD, "next": "//evil.example"},
        )
        assert elsewhere.headers["location"] == "/console"

        last = browser.cookies["expo_staff"]
        out = await browser.post("/console/logout", data={"csrf": token})
        assert out.status_code == 303 and out.headers["location"] == "/console/login"
        assert "expo_staff" not in browser.cookies
        browser.cookies.set("expo_staff", last)  # a copy kept of the token: it was revoked at the API
        assert (await browser.get("/console")).status_code == 303


async def test_the_page_speaks_the_language_asked_for(console: Console) -> None:
    _, token = await console.staff(StaffRole.ADMINISTRATOR)
    async with console.browser(token) as browser:
        chinese = await browser.get("/console", params={"lang": "zh"})
        assert '<html lang="zh-CN">' in chinese.text and "单位审核队列" in chinese.text
        english = await browser.get("/console", params={"lang": "en", "kind": "person"})
        assert '<html lang="en">' in english.text and "Personnel review queue" in english.text
        # The language switch keeps the filters; the choice is remembered for the next page.
        assert 'href="?kind=person&amp;lang=zh"' in english.text
        assert '<html lang="en">' in (await browser.get("/console/audit")).text


# ------------------------------------------------------------------------------------------ the queue


async def test_the_queue_lists_filters_pages_and_exports(console: Console) -> None:
    _, admin = await console.staff(StaffRole.ADMINISTRATOR)
    _, own_staff = await console.staff(StaffRole.MISSION_STAFF, OWN)
    own, other = console.units["own"].id, console.units["other"].id
    async with console.browser(admin) as browser:
        queue = (await browser.get("/console", params={"lang": "en"})).text
        assert text_of(queue, f"task-{own}") and text_of(queue, f"task-{other}")
        assert text_of(queue, f"task-{console.units['approved'].id}") is None  # decided: not pending
        assert "2 in all" in (text_of(queue, "queue-table-caption") or "")
        assert f'href="/console/units/{own}"' in queue and 'id="bulk-form"' in queue

        only_own = (await browser.get("/console", params={"mission": OWN})).text
        assert text_of(only_own, f"task-{own}") and text_of(only_own, f"task-{other}") is None
        decided = (await browser.get("/console", params={"status": "decided"})).text
        assert text_of(decided, f"task-{console.units['approved'].id}") is not None
        people = (await browser.get("/console", params={"kind": "person"})).text
        assert text_of(people, f"task-{console.person.id}") and text_of(
            people, f"task-{console.other_person}"
        )
        paged = (await browser.get("/console", params={"page": 2})).text
        assert text_of(paged, f"task-{own}") is None and text_of(paged, "queue-empty")

        bad_date = await browser.get("/console", params={"opened_from": "2023-13-45", "lang": "en"})
        assert bad_date.status_code == 422 and text_of(bad_date.text, "f-opened_from-error")

        export = await browser.get(
            "/console/queue/export", params={"kind": "unit", "mission": OWN, "format": "csv"}
        )
        assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")
        assert "attachment" in export.headers["content-disposition"]
        text = export.content.decode("utf-8-sig")
        assert own in text and other not in text
        excel = await browser.get("/console/queue/export", params={"kind": "unit", "format": "xlsx"})
        assert excel.status_code == 200 and excel.content.startswith(b"PK")  # a zip: the workbook

    async with console.browser(own_staff) as browser:
        queue = (await browser.get("/console")).text
        assert text_of(queue, f"task-{own}") and text_of(queue, f"task-{other}") is None
        refused = await browser.get("/console", params={"mission": OTHER, "lang": "en"})
        assert refused.status_code == 403
        assert text_of(refused.text, "f-mission-error") == "that mission is not yours to see"


async def test_the_queue_names_the_people_and_units_under_review(console: Console) -> None:
    """Rows name the person and the unit as registered (and the mission), not bare ids; a unit that
    changes its data renames itself in its people's open reviews. No ID number or phone in the list."""
    _, own_staff = await console.staff(StaffRole.MISSION_STAFF, OWN)
    own, approved, person = console.units["own"].id, console.units["approved"].id, console.person.id
    async with console.browser(own_staff) as browser:
        units = (await browser.get("/console", params={"lang": "en"})).text
        assert text_of(units, f"open-{own}") == f"测试贸易有限公司 {own}"
        assert "Shanghai Trade Mission" in (text_of(units, f"task-{own}") or "")
        people = (await browser.get("/console", params={"kind": "person", "lang": "en"})).text
        assert text_of(people, f"open-{person}") == f"李明 {person}"
        assert (text_of(people, f"unit-of-{person}") or "").startswith(f"测试贸易有限公司 {approved}")
        assert "Shanghai Trade Mission" in (text_of(people, f"task-{person}") or "")
        assert f"李明 {console.other_person}" not in people  # another mission's people stay unseen
        assert ID_NUMBER not in people and "+8613900000001" not in people

        async with console.registration.db.transaction() as session:
            renamed = await session.get(UnitRow, approved)
            assert renamed is not None
            renamed.name = "青岛海洋贸易有限公司"
        reopened = _opened(c.ReviewKind.UNIT, approved, approved, OWN, f"unit-ciie6-{approved}", round=2)
        await ReviewActivities(console.review).open_task(reopened)
        people = (await browser.get("/console", params={"kind": "person", "lang": "en"})).text
        assert text_of(people, f"unit-of-{person}") == f"青岛海洋贸易有限公司 {approved}"
        units = (await browser.get("/console", params={"lang": "en"})).text
        assert text_of(units, f"open-{approved}") == "青岛海洋贸易有限公司"


async def test_a_bulk_decision_shows_each_items_outcome(console: Console) -> None:
    _, admin = await console.staff(StaffRole.ADMINISTRATOR)
    own, approved = console.units["own"].id, console.units["approved"].id
    async with console.browser(admin) as browser:
        nothing = await browser.post(
            "/console/decisions", data={"csrf": CSRF, "kind": "unit", "decision": "approve", "lang": "en"}
        )
        assert nothing.status_code == 422 and text_of(nothing.text, "f-subject_id-error")

        # A rejection without a reason: refused item by item, and said next to the reason too.
        no_reason = await browser.post(
            "/console/decisions?lang=en",
            data={
                "csrf": CSRF,
                "kind": "unit",
                "decision": "reject",
                "subject_id": [own],
                "back": "kind=unit",
            },
        )
        assert no_reason.status_code == 200
        assert text_of(no_reason.text, "f-reason-error") == "a rejection needs a reason"
        assert "Refused" in (text_of(no_reason.text, f"result-{own}") or "")
        assert f'id="select-{own}" checked' in no_reason.text  # the selection is kept to try again

        answer = await browser.post(
            "/console/decisions?lang=en",
            data={
                "csrf": CSRF, "kind": "unit", "decision": "approve", "back": "kind=unit&status=all",
                "subject_id": [own, approved, "UNOSUCHUNIT"],
            },
        )  # fmt: skip
        assert answer.status_code == 200
        assert text_of(answer.text, "bulk-summary") == "1 done, 2 refused."
        assert text_of(answer.text, f"result-{own}") == f"{own} Done Status now: Approved"
        assert "Refused" in (text_of(answer.text, f"result-{approved}") or "")
        assert "(not_under_review)" in (text_of(answer.text, f"result-{approved}") or "")
        assert "(not_in_queue)" in (text_of(answer.text, "result-UNOSUCHUNIT") or "")
        chinese = await browser.post(
            "/console/decisions?lang=zh",
            data={"csrf": CSRF, "kind": "unit", "decision": "approve", "subject_id": [approved]},
        )
        assert "该单位当前不在审核中" in (text_of(chinese.text, f"result-{approved}") or "")
    assert (await console.units["own"].progress()).status is UnitStatus.APPROVED
    assert (await console.units["approved"].progress()).status is UnitStatus.APPROVED

    _, observer = await console.staff(StaffRole.OBSERVER)
    async with console.browser(observer) as browser:
        assert 'id="bulk-form"' not in (await browser.get("/console")).text
        refused = await browser.post(
            "/console/decisions?lang=en",
            data={
                "csrf": CSRF,
                "kind": "unit",
                "decision": "approve",
                "subject_id": [console.units["other"].id],
            },
        )
        assert refused.status_code == 403 and "observers may read" in (
            text_of(refused.text, "bulk-error") or ""
        )
    assert (await console.units["other"].progress()).status is UnitStatus.UNDER_REVIEW


# ------------------------------------------------------------------------------------------ subjects


async def test_a_rejection_without_a_reason_is_refused_next_to_the_reason(console: Console) -> None:
    _, token = await console.staff(StaffRole.MISSION_STAFF, OWN)
    unit = console.units["own"]
    async with console.browser(token) as browser:
        page = await browser.get(f"/console/units/{unit.id}", params={"lang": "en"})
        assert page.status_code == 200 and 'id="decision-form"' in page.text
        refused = await browser.post(
            f"/console/units/{unit.id}/decision", data={"csrf": CSRF, "decision": "reject", "reason": "  "}
        )
        assert refused.status_code == 409
        assert text_of(refused.text, "f-reason-error") == "a rejection needs a reason"
        assert re.search(r'<textarea id="f-reason"[^>]*aria-invalid="true"', refused.text)
        expired = await browser.post(
            f"/console/units/{unit.id}/decision", data={"csrf": "stale", "decision": "approve"}
        )
        assert expired.status_code == 403 and text_of(expired.text, "f-decision-error")
    assert (await unit.progress()).status is UnitStatus.UNDER_REVIEW


def passed(progress: c.RegistrationProgress) -> bool:
    return any(entry.step is c.Step.REVIEW_PASSED for entry in progress.timeline)


async def test_an_approval_reaches_the_workflow_and_the_history_shows_it(console: Console) -> None:
    login, token = await console.staff(StaffRole.MISSION_STAFF, OWN)
    unit = console.units["own"]
    async with console.browser(token) as browser:
        done = await browser.post(
            f"/console/units/{unit.id}/decision", data={"csrf": CSRF, "decision": "approve"}
        )
        assert (
            done.status_code == 303
            and done.headers["location"] == f"/console/units/{unit.id}?decided=approved"
        )
        assert (await unit.progress()).status is UnitStatus.APPROVED

        person = console.person
        page = await browser.get(f"/console/registrations/{person.id}", params={"lang": "en"})
        assert page.status_code == 200
        assert text_of(page.text, "id-number") == "310***********1234"
        assert ID_NUMBER not in page.text
        workflow = f"registration-ciie6-{person.id}"
        assert f'href="http://127.0.0.1:8233/namespaces/default/workflows/{workflow}"' in page.text
        assert f'src="/console/registrations/{person.id}/photo"' in page.text
        approved = await browser.post(
            f"/console/registrations/{person.id}/decision",
            data={"csrf": CSRF, "decision": "approve", "reason": ""},
        )
        assert approved.status_code == 303
        await eventually(person.progress, passed, f"{person.id}'s personnel review passed")
        # The review service wrote the decision as it answered (the workflow's own write, to the fakes here,
        # follows).
        after = await browser.get(approved.headers["location"] + "&lang=en")
        assert text_of(after.text, "decision-none")  # nothing left to decide
        assert "Decision recorded" in after.text
        history = text_of(after.text, "audit-table") or ""
        assert "Approved" in history and login in history
        audit = (await browser.get("/console/audit", params={"kind": "person", "lang": "en"})).text
        assert person.id in (text_of(audit, "audit-table") or "")


async def test_mission_staff_cannot_open_another_missions_subjects(console: Console) -> None:
    _, own_staff = await console.staff(StaffRole.MISSION_STAFF, OWN)
    _, observer = await console.staff(StaffRole.OBSERVER)
    other, other_person = console.units["other"].id, console.other_person
    async with console.browser(own_staff) as browser:
        for url in (
            f"/console/units/{other}",
            f"/console/registrations/{other_person}",
            "/console/units/UNOSUCH",
        ):
            page = await browser.get(url, params={"lang": "en"})
            assert page.status_code == 404 and text_of(page.text, "error-title") == "Not found", url
        assert (await browser.get(f"/console/registrations/{other_person}/photo")).status_code == 404
        posted = await browser.post(
            f"/console/units/{other}/decision", data={"csrf": CSRF, "decision": "approve"}
        )
        assert posted.status_code == 404
        # The unit page lists the unit's people, each a page of its own.
        approved = await browser.get(f"/console/units/{console.units['approved'].id}")
        assert f'href="/console/registrations/{console.person.id}"' in approved.text
    assert (await console.units["other"].progress()).status is UnitStatus.UNDER_REVIEW
    async with console.browser(observer) as browser:
        page = await browser.get(f"/console/units/{other}", params={"lang": "en"})
        assert page.status_code == 200
        assert 'id="decision-form"' not in page.text and text_of(page.text, "decision-read-only")


async def test_the_detail_routes_are_scoped_like_the_queue(console: Console) -> None:
    _, admin = await console.staff(StaffRole.ADMINISTRATOR)
    _, own_staff = await console.staff(StaffRole.MISSION_STAFF, OWN)
    _, other_staff = await console.staff(StaffRole.MISSION_STAFF, OTHER)
    person, approved = console.person.id, console.units["approved"].id
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=review_api.app), base_url=REVIEW_URL
    ) as api:

        async def get(token: str, url: str) -> httpx.Response:
            return await api.get(url, headers={"Authorization": f"Bearer {token}"})

        unit = (await get(own_staff, f"/v1/units/{approved}")).json()
        assert unit["unit_id"] == approved and unit["status"] == "approved" and unit["mission"] == OWN
        assert [p["registration_id"] for p in unit["people"]] == [person]
        assert [(r["round"], r["state"]) for r in unit["rounds"]] == [(1, "decided")]
        detail = (await get(own_staff, f"/v1/registrations/{person}")).json()
        assert {key: detail[key] for key in ("id_type", "id_number_masked", "review_round", "has_photo")} == {
            "id_type": "resident_id", "id_number_masked": "310***********1234", "review_round": 1, "has_photo": True,
        }  # fmt: skip
        assert detail["job_title"] == "采购经理" and detail["delivery_method"] == "express"
        assert ID_NUMBER not in (await get(admin, f"/v1/registrations/{person}")).text
        for url in (
            f"/v1/units/{approved}",
            f"/v1/registrations/{person}",
            f"/v1/registrations/{person}/photo",
        ):
            assert (await get(admin, url)).status_code == 200, url
            refused = await get(other_staff, url)
            assert refused.status_code == 404 and refused.json()["code"] == "not_found", url
        for url in (
            "/v1/units/UNOSUCH",
            "/v1/registrations/RNOSUCH",
            f"/v1/registrations/{console.other_person}/photo",
        ):
            assert (await get(admin, url)).status_code == 404, url
        photo = await get(admin, f"/v1/registrations/{person}/photo")
        assert photo.content == console.photo and photo.headers["content-type"] == "image/png"
        # Published like every /v1 route (the permission tests walk them), behind the staff login.
        paths = review_api.app.openapi()["paths"]
        for path in DETAIL_ROUTES:
            assert "get" in paths[path], path
            url = path.replace("{unit_id}", approved).replace("{registration_id}", person)
            assert (await api.get(url)).status_code == 401, path
        assert not [path for path in paths if path.startswith("/console")]  # pages are not the API
    # The registration service answers the data only to the services (the service token).
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=registration_api.app), base_url=REGISTRATION_URL
    ) as registration:
        for url in (f"/internal/units/{approved}", f"/internal/registrations/{person}/review-data"):
            refused = await registration.get(url)
            assert refused.status_code == 401 and refused.json()["code"] == "unauthorised", url


async def test_the_photo_comes_through_the_console(console: Console) -> None:
    _, token = await console.staff(StaffRole.MISSION_STAFF, OWN)
    async with console.browser(token) as browser:
        photo = await browser.get(f"/console/registrations/{console.person.id}/photo")
        assert photo.status_code == 200 and photo.headers["content-type"] == "image/png"
        assert photo.content == console.photo and photo.headers["cache-control"].startswith("private")
        browser.cookies.delete("expo_staff")
        assert (await browser.get(f"/console/registrations/{console.person.id}/photo")).status_code == 303


# ------------------------------------------------------------------------------------------ statistics


async def test_statistics_draw_bars_and_export(console: Console) -> None:
    _, admin = await console.staff(StaffRole.ADMINISTRATOR)
    _, own_staff = await console.staff(StaffRole.MISSION_STAFF, OWN)
    async with console.browser(admin) as browser:
        page = await browser.get("/console/statistics", params={"lang": "en"})
        assert page.status_code == 200
        chart = text_of(page.text, "statistics-chart") or ""
        assert "Shanghai" in chart and "Beijing" in chart
        assert "<svg" in page.text and "<script>" not in page.text  # drawn by the server, no script
        assert page.text.count("<rect ") >= 3 * 2 + 3  # three bars for each of two missions, the legend
        totals = text_of(page.text, "statistics-totals") or ""
        assert totals.startswith("Total 4 2 2 2")  # units registered, under review, approved; people
        export = await browser.get("/console/statistics/export", params={"format": "csv", "mission": OWN})
        assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")
        assert "attachment" in export.headers["content-disposition"]
        excel = await browser.get("/console/statistics/export", params={"format": "xlsx"})
        assert excel.status_code == 200 and excel.content.startswith(b"PK")
    async with console.browser(own_staff) as browser:
        refused = await browser.get("/console/statistics", params={"mission": OTHER, "lang": "en"})
        assert refused.status_code == 403 and text_of(refused.text, "f-mission-error")
        own = await browser.get("/console/statistics", params={"lang": "en"})
        assert "Beijing" not in (text_of(own.text, "statistics-table") or "")
