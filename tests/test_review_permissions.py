"""Who may see and decide what in the review service: every route for every role and mission, and
bulk decisions with a mix of good and bad items reaching real workflows.

The review API runs in process on its own SQLite database; the unit workflows run on the
time-skipping server with fake services (``tests/workflow_env.py``), so a decision really reaches
the unit's workflow, whose validators accept or refuse it.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.review import api
from services.review.models import ReviewTask, StaffRole
from shared.service import ServiceContext
from shared.settings import Settings
from shared.types import UnitKind, UnitStatus
from tests.page_env import add_staff
from tests.service_env import service_context
from tests.workflow_world import Unit, World, eventually

OWN, OTHER, INDUSTRIAL = "shanghai", "beijing", "industrial-cccme"
ANYONE = {("POST", "/v1/staff/sessions")}  # logging in


@dataclass
class Review:
    world: World
    ctx: ServiceContext
    client: httpx.AsyncClient
    logins: dict[str, dict[str, str]]  # who -> Authorization header
    units: dict[str, Unit]  # mission -> a unit of it, under review

    async def get(self, who: str, url: str, **params: Any) -> httpx.Response:
        return await self.client.get(url, params=params, headers=self.logins[who])

    async def post(self, who: str, url: str, body: Any) -> httpx.Response:
        return await self.client.post(url, json=body, headers=self.logins[who])


async def staff_login(session: Any, role: StaffRole, mission: str | None) -> dict[str, str]:
    _, token = await add_staff(session, role, mission)
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def review(world: World, tmp_path: Path) -> AsyncIterator[Review]:
    units = {}
    for mission in (OWN, OTHER, INDUSTRIAL):
        unit = await world.start_unit()
        units[mission] = unit

    async def queued() -> int:
        return len(world.services.review_tasks)

    await eventually(queued, lambda n: n == 3, "the units in the review queue")
    settings = Settings(data_dir=tmp_path)
    async with service_context("review", settings, temporal=world.client) as ctx:
        async with ctx.db.transaction() as session:
            for mission, unit in units.items():
                (task,) = [t for t in world.services.review_tasks if t.subject_id == unit.id]
                # What the review service's activity stores, placed in the mission the test needs.
                session.add(
                    ReviewTask(**(task.model_dump() | {"mission": mission, "unit_kind": UnitKind.ENTERPRISE}))
                )
            logins = {
                "admin": await staff_login(session, StaffRole.ADMINISTRATOR, None),
                "observer": await staff_login(session, StaffRole.OBSERVER, None),
                "own": await staff_login(session, StaffRole.MISSION_STAFF, OWN),
                "industrial": await staff_login(session, StaffRole.MISSION_STAFF, INDUSTRIAL),
                "finance": await staff_login(session, StaffRole.FINANCE, OTHER),
                "certificate_office": await staff_login(session, StaffRole.CERTIFICATE_OFFICE, None),
            }
        api.app.state.ctx = ctx
        transport = httpx.ASGITransport(app=api.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://review.test") as client:
            yield Review(world, ctx, client, logins, units)


def routes() -> list[tuple[str, str]]:
    """Every /v1 operation the API publishes (its OpenAPI schema: what clients see)."""
    paths = api.app.openapi()["paths"]
    return sorted(
        (method.upper(), path) for path, ops in paths.items() if path.startswith("/v1/") for method in ops
    )


async def test_every_route_needs_a_staff_login(review: Review) -> None:
    assert len(routes()) >= 10
    for method, path in routes():
        if (method, path) in ANYONE:
            continue
        url = re.sub(r"\{\w+\}", "X", path)
        for headers in ({}, {"Authorization": "Bearer forged"}):
            response = await review.client.request(method, url, headers=headers, json={})
            assert response.status_code == 401, (method, path, response.text)


async def test_mission_staff_see_only_their_missions_queue_audit_and_statistics(review: Review) -> None:
    for who, expected in [
        ("own", {OWN}),
        ("industrial", {INDUSTRIAL}),  # the units that joined with its referral codes
        ("admin", {OWN, OTHER, INDUSTRIAL}),
        ("observer", {OWN, OTHER, INDUSTRIAL}),
    ]:
        queue = await review.get(who, "/v1/queue", kind="unit")
        assert queue.status_code == 200, queue.text
        assert {task["mission"] for task in queue.json()} == expected, who
        assert queue.headers["X-Total-Count"] == str(len(expected))
        exported = await review.get(who, "/v1/queue/export", kind="unit", format="csv")
        assert exported.status_code == 200
        text = exported.content.decode("utf-8-sig")
        assert all((mission in text) == (mission in expected) for mission in (OWN, OTHER)), who
    for who in ("own", "industrial"):
        other = OTHER
        for url in ("/v1/queue", "/v1/queue/export", "/v1/audit", "/v1/statistics"):
            refused = await review.get(who, url, kind="unit", mission=other)
            assert refused.status_code == 403 and refused.json()["code"] == "outside_your_mission", (who, url)


async def test_staff_cannot_decide_another_missions_units_and_observers_decide_nothing(
    review: Review,
) -> None:
    other_unit = review.units[OTHER].id
    for who in ("own", "industrial"):
        refused = await review.post(who, f"/v1/units/{other_unit}/decision", {"decision": "approve"})
        assert refused.status_code == 404 and refused.json()["code"] == "not_in_queue", who
    # Finance staff decide payments and the certificate office hands out cards, neither reviews.
    for reader in ("observer", "finance", "certificate_office"):
        refused = await review.post(reader, f"/v1/units/{other_unit}/decision", {"decision": "approve"})
        assert refused.status_code == 403 and refused.json()["code"] == "read_only", reader
    bulk = await review.post("observer", "/v1/decisions", {"kind": "unit", "items": [
        {"subject_id": other_unit, "decision": "approve"}]})  # fmt: skip
    assert bulk.status_code == 403
    # Nothing reached the workflow: the unit is still under review.
    assert (await review.units[OTHER].progress()).status is UnitStatus.UNDER_REVIEW
    own = await review.post("own", f"/v1/units/{review.units[OWN].id}/decision", {"decision": "approve"})
    assert own.status_code == 200 and own.json()["status"] == "approved"
    audit = (await review.get("own", "/v1/audit")).json()
    assert [(a["subject_id"], a["mission"]) for a in audit] == [(review.units[OWN].id, OWN)]
    assert (await review.get("industrial", "/v1/audit")).json() == []


async def test_bulk_decisions_report_each_item(review: Review) -> None:
    own, other = review.units[OWN].id, review.units[OTHER].id
    industrial = review.units[INDUSTRIAL].id
    await review.post("admin", f"/v1/units/{industrial}/decision", {"decision": "approve"})  # decided before
    answer = await review.post("admin", "/v1/decisions", {"kind": "unit", "items": [
        {"subject_id": own, "decision": "approve"},
        {"subject_id": other, "decision": "reject"},  # a rejection without a reason
        {"subject_id": industrial, "decision": "approve"},  # already decided
        {"subject_id": "UNOSUCHUNIT", "decision": "approve"},
    ]})  # fmt: skip
    assert answer.status_code == 200, answer.text
    body = answer.json()
    outcome = {r["subject_id"]: (r["outcome"], r["status"] or r["code"]) for r in body["results"]}
    assert outcome == {
        own: ("done", "approved"),
        other: ("refused", "reason_required"),
        industrial: ("refused", "not_under_review"),
        "UNOSUCHUNIT": ("refused", "not_in_queue"),
    }
    assert (body["done"], body["refused"]) == (1, 3)
    refusal = next(r for r in body["results"] if r["subject_id"] == other)
    assert refusal["message"] and refusal["message_zh"]
    # The refused item changed nothing; the done one reached its workflow.
    assert (await review.units[OTHER].progress()).status is UnitStatus.UNDER_REVIEW
    assert (await review.units[OWN].progress()).status is UnitStatus.APPROVED
    # Mission staff's bulk decisions on another mission's units are refused item by item.
    mixed = await review.post("own", "/v1/decisions", {"kind": "unit", "items": [
        {"subject_id": other, "decision": "reject", "reason": "not ours"}]})  # fmt: skip
    assert mixed.json()["results"][0]["code"] == "not_in_queue"
    duplicate = await review.post("admin", "/v1/decisions", {"kind": "unit", "items": [
        {"subject_id": other, "decision": "approve"}, {"subject_id": other, "decision": "approve"}]})  # fmt: skip
    assert duplicate.status_code == 422 and duplicate.json()["code"] == "duplicate_items"
