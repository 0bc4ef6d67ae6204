"""Every buyer-facing route of the registration service is authenticated and scoped to the caller's
own unit: walked over the app's own route table, so a route added later is covered too."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import httpx
import pytest

from services.registration import api
from services.registration.models import AccountKind, PersonRegistration, Unit
from shared.catalogue import load_edition, years_until_open
from shared.db import utcnow
from shared.settings import Settings
from shared.types import Affiliation, DeliveryMethod, IdType, UnitKind
from tests.service_env import buyer_headers, service_context

# Routes anyone may call: signing up, logging in, resetting a password, reading the public deadlines.
PUBLIC = {
    ("POST", "/v1/accounts"),
    ("POST", "/v1/sessions"),
    ("POST", "/v1/password-resets"),
    ("POST", "/v1/password-resets/confirm"),
    ("GET", "/v1/editions/{edition}"),
    ("GET", "/v1/editions/{edition}/payment-deadlines"),
}
# Staff routes, behind the service token (staff accounts come with the staff services).
STAFF = {("POST", "/v1/editions/{edition}/payment-deadlines")}


def buyer_routes() -> list[tuple[str, str]]:
    """Every /v1 operation the API publishes (its OpenAPI schema), but the public and staff ones."""
    paths = api.app.openapi()["paths"]
    routes = [
        (method.upper(), path) for path, ops in paths.items() if path.startswith("/v1/") for method in ops
    ]
    return [r for r in routes if r not in PUBLIC | STAFF]


@dataclass
class World:
    client: httpx.AsyncClient
    owner: dict[str, str]  # Authorization headers
    stranger: dict[str, str]
    unit_id: str
    registration_id: str

    def url(self, path: str) -> str:
        return re.sub(
            r"\{(\w+)\}",
            lambda m: {"unit_id": self.unit_id, "registration_id": self.registration_id}.get(m[1], "x"),
            path,
        )


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    # The rehearsal calendar: registration open today.
    settings = Settings(
        data_dir=tmp_path, edition_year_shift=years_until_open(load_edition("ciie6"), utcnow())
    )
    async with service_context("registration", settings) as ctx:
        async with ctx.db.transaction() as session:
            session.add(
                Unit(
                    id="UOWNED", edition="ciie6", kind=UnitKind.ENTERPRISE, affiliation=Affiliation.RESIDENCE,
                    name="上海测试贸易有限公司", credit_code="91310115MA1K000000", country="CN",
                    address="上海", industry="Trade", contact_name="王", contact_mobile="+8613800000000",
                    contact_email="wang@example.test", mission="shanghai", statistics_mission="shanghai",
                    workflow_id="unit-ciie6-UOWNED",
                )
            )  # fmt: skip
            await session.flush()
            session.add(
                PersonRegistration(
                    id="ROWNED", edition="ciie6", unit_id="UOWNED", name="王芳", id_type=IdType.RESIDENT_ID,
                    id_number="310104198503120000", nationality="CN", mobile="+8613900001111",
                    email="wang.fang@example.test", job_title="Buyer", personnel_label="purchaser",
                    delivery_method=DeliveryMethod.MISSION_COLLECTION, entrance_date=date(2023, 11, 5),
                    workflow_id="registration-ciie6-ROWNED",
                )
            )  # fmt: skip
        owner = await buyer_headers(ctx, AccountKind.UNIT, "UOWNED")
        stranger = await buyer_headers(ctx, AccountKind.UNIT)
        api.app.state.ctx = ctx
        transport = httpx.ASGITransport(app=api.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://registration.test") as client:
            yield World(client, owner, stranger, "UOWNED", "ROWNED")


def test_the_route_table_has_the_buyer_routes() -> None:
    routes = buyer_routes()
    assert ("POST", "/v1/units") in routes
    assert ("GET", "/v1/registrations/{registration_id}/timeline") in routes
    assert len(routes) >= 12


async def test_every_buyer_route_needs_a_login(world: World) -> None:
    for method, path in buyer_routes():
        for headers in ({}, {"Authorization": "Bearer not-a-token"}):
            response = await world.client.request(method, world.url(path), headers=headers, json={})
            assert response.status_code == 401, (method, path, response.text)
            body = response.json()
            assert body["code"] == "unauthenticated" and body["message_zh"], (method, path)


async def test_no_route_shows_or_changes_another_units_data(world: World) -> None:
    scoped = [(m, p) for m, p in buyer_routes() if "{unit_id}" in p or "{registration_id}" in p]
    assert len(scoped) >= 10
    for method, path in scoped:
        response = await world.client.request(method, world.url(path), headers=world.stranger, json={})
        # 404, as for an id that does not exist; or 422 where the body is checked first: nothing leaks
        assert response.status_code in (404, 422), (method, path, response.text)
        assert "UOWNED" not in response.text and "王芳" not in response.text, (method, path)
        if response.status_code == 404:
            assert response.json()["code"] == "not_found"


async def test_the_owner_reads_its_unit_people_and_timelines(world: World) -> None:
    unit = await world.client.get(f"/v1/units/{world.unit_id}", headers=world.owner)
    assert unit.status_code == 200 and unit.json()["name"] == "上海测试贸易有限公司"
    people = await world.client.get(f"/v1/units/{world.unit_id}/people", headers=world.owner)
    assert [p["registration_id"] for p in people.json()] == [world.registration_id]
    assert people.json()[0]["id_number_masked"] == "310***********0000"
    timeline = await world.client.get(
        f"/v1/registrations/{world.registration_id}/timeline", headers=world.owner
    )
    assert timeline.status_code == 200 and timeline.json()["status"]["code"] == "submitted"


async def test_an_account_registers_one_unit(world: World) -> None:
    again = await world.client.post("/v1/units", headers=world.owner, json=UNIT)
    assert again.status_code == 409 and again.json()["code"] == "unit_exists", again.text


UNIT = {
    "kind": "enterprise", "name": "上海第二贸易有限公司", "credit_code": "91310115MA1K000000",
    "address": "上海", "industry": "Trade",
    "contact": {"name": "李", "mobile": "13800000002", "email": "li@shanghai-trade.example.com"},
    "mission": {"affiliation": "residence"},
}  # fmt: skip
