"""The buyer's registration API, rule by rule: every kind of bad input gets its code, its field and
messages in Chinese and English, and nothing saved is lost. The API runs in process on its own SQLite
database; Temporal is the time-skipping test server, where the workflows the API starts wait."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from deploy.local.demo import demo_credit_code, demo_id_number
from services.registration import api
from services.registration.models import AccountKind, PreviousBuyer
from services.registration.previous import import_shipped
from shared.catalogue import current_edition, load_edition, years_until_open
from shared.db import utcnow
from shared.service import ServiceContext
from shared.settings import Settings
from shared.types import Affiliation, IdType
from tests.service_env import buyer_headers, service_context
from tests.workflow_env import time_skipping_environment

REHEARSAL = years_until_open(load_edition("ciie6"), utcnow())  # registration open today


@dataclass
class Api:
    ctx: ServiceContext
    client: httpx.AsyncClient
    settings: Settings
    unit_headers: dict[str, str]  # a unit account's login
    individual_headers: dict[str, str]  # an individual's

    async def new_buyer(self) -> dict[str, str]:
        return await buyer_headers(self.ctx, AccountKind.UNIT)

    @property
    def expo_day(self) -> str:
        edition = current_edition(self.settings)
        return edition.local(edition.deadlines.expo_opens).date().isoformat()


def unit_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "enterprise", "name": "宁波港城贸易有限公司", "credit_code": demo_credit_code("330203"),
        "address": "宁波市海曙区", "industry": "Trade",
        "contact": {"name": "林", "mobile": "13800000003", "email": "lin@ningbo-trade.example.com"},
        "mission": {"affiliation": "residence"},
    }  # fmt: skip
    return body | changes


def person_body(day: str, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "林晓", "id_type": "resident_id", "id_number": demo_id_number("19880808"),
        "mobile": "13900005555", "email": "lin.xiao@ningbo-trade.example.com", "job_title": "Buyer",
        "personnel_label": "purchaser", "delivery_method": "mission_collection", "entrance_date": day,
    }  # fmt: skip
    return body | changes


def address(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "recipient": "林晓", "mobile": "13900005555", "province": "浙江省", "city": "宁波市", "district": "海曙区",
        "detail": "中山西路1号", "postal_code": "315000", "valid_for_six_months": True,
    }  # fmt: skip
    return body | changes


def wrong_check_digit(number: str) -> str:
    return number[:-1] + ("1" if number[-1] != "1" else "2")


async def serve(settings: Settings) -> AsyncIterator[Api]:
    async with (
        time_skipping_environment() as env,
        service_context("registration", settings, temporal=env.client) as ctx,
    ):
        api.app.state.ctx = ctx
        transport = httpx.ASGITransport(app=api.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://registration.test") as client:
            yield Api(
                ctx,
                client,
                settings,
                await buyer_headers(ctx, AccountKind.UNIT),
                await buyer_headers(ctx, AccountKind.INDIVIDUAL),
            )


@pytest.fixture
async def open_api(tmp_path: Path) -> AsyncIterator[Api]:
    async for served in serve(Settings(data_dir=tmp_path, edition_year_shift=REHEARSAL)):
        yield served


def refused(response: httpx.Response, status: int, code: str, field: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    assert body["message"] and body["message_zh"] and body["message"] != body["message_zh"], body
    if field is not None:
        assert body.get("field") == field, body
    return body


async def test_unit_data_is_checked_field_by_field(open_api: Api) -> None:
    post = open_api.client.post
    headers = open_api.unit_headers
    cases: list[tuple[dict[str, Any], int, str, str | None]] = [
        (unit_body(credit_code=None), 422, "credit_code_required", "credit_code"),
        (unit_body(credit_code="91330203MA2ABCDEF0"), 422, "invalid_credit_code", "credit_code"),
        (unit_body(credit_code=demo_credit_code("999999")), 422, "unknown_division", "credit_code"),
        (unit_body(contact={"name": "林", "mobile": "12345", "email": "lin@ningbo-trade.example.com"}),
         422, "invalid_mobile", "contact.mobile"),
        (unit_body(contact={"name": "林", "mobile": "13800000003", "email": "not-an-email"}),
         422, "invalid_input", "contact.email"),
        (unit_body(mission={"affiliation": "overseas", "mission": "shanghai"}, credit_code=None, country="DE"),
         422, "registration_no_required", "registration_no"),
        (unit_body(mission={"affiliation": "central_enterprise"}), 422, "central_group_required", None),
        (unit_body(mission={"affiliation": "residence", "referral_code": "NOSUCHCODE"}),
         422, "unknown_referral_code", None),
        (unit_body(kind="individual"), 422, "unit_kind_mismatch", "kind"),
        (unit_body(name=""), 422, "invalid_input", "name"),
    ]  # fmt: skip
    for body, status, code, field in cases:
        refused(await post("/v1/units", json=body, headers=headers), status, code, field)
    # None of it was saved: the account still registers its unit, once.
    unit = await post("/v1/units", json=unit_body(), headers=headers)
    assert unit.status_code == 201, unit.text
    assert unit.json()["mission"] == "ningbo"  # Ningbo is its own mission, not Zhejiang's
    refused(await post("/v1/units", json=unit_body(), headers=headers), 409, "unit_exists")


async def test_missions_follow_the_units_affiliation(tmp_path: Path) -> None:
    async for served in serve(Settings(data_dir=tmp_path, edition_year_shift=REHEARSAL)):
        placements = [
            (unit_body(credit_code=demo_credit_code("440305")), ("shenzhen", None)),
            (unit_body(mission={"affiliation": "central_enterprise", "sub_mission": "central-enterprises-cnnc"}),
             ("central-enterprises", "central-enterprises-cnnc")),
            (unit_body(mission={"affiliation": "nhc", "sub_mission": "nhc-hospitals"}), ("nhc", "nhc-hospitals")),
            (unit_body(credit_code=demo_credit_code("110108"),
                       mission={"affiliation": "residence", "referral_code": "CCCMEM2ZF"}),
             ("industrial-cccme", None)),
        ]  # fmt: skip
        for body, (mission, sub_mission) in placements:
            headers = await served.new_buyer()
            unit = (await served.client.post("/v1/units", json=body, headers=headers)).json()
            assert (unit["mission"], unit["sub_mission"] if sub_mission else None) == (mission, sub_mission)
            if mission.startswith("industrial"):
                assert unit["statistics_mission"] == "beijing"  # its statistics roll into Beijing's
                assert unit["referral_code"] == "CCCMEM2ZF"


async def test_people_are_checked_field_by_field_and_registered_once(open_api: Api) -> None:
    post, day = open_api.client.post, open_api.expo_day
    headers = open_api.unit_headers
    unit = (await post("/v1/units", json=unit_body(), headers=headers)).json()
    people = f"/v1/units/{unit['id']}/people"
    cases: list[tuple[dict[str, Any], int, str, str | None]] = [
        (person_body(day, id_number=wrong_check_digit(demo_id_number("19880808"))), 422, "invalid_id_number",
         "id_number"),
        (person_body(day, id_type="passport", id_number="E1-23", nationality="GB"), 422, "invalid_id_number", "id_number"),
        (person_body(day, id_type="hk_macao_permit", id_number="X1234567"), 422, "invalid_id_number", "id_number"),
        (person_body(day, id_type="taiwan_permit", id_number="A1234567"), 422, "invalid_id_number", "id_number"),
        (person_body(day, nationality="US"), 422, "nationality_mismatch", "nationality"),
        (person_body(day, mobile="555"), 422, "invalid_mobile", "mobile"),
        (person_body(day, email="lin.xiao@"), 422, "invalid_input", "email"),
        (person_body(day, delivery_method="express"), 422, "address_required", "delivery_address"),
        (person_body(day, delivery_method="express", delivery_address=address(
            mobile="+85291234567", province="香港", city="香港", district="中西区", detail="皇后大道中1号",
            postal_code="999077")), 422, "mainland_only", "delivery_address.mobile"),
        (person_body(day, delivery_method="onsite_pickup"), 422, "onsite_pickup_overseas_only", "delivery_method"),
        (person_body("2020-01-01"), 422, "entrance_date_outside_expo", "entrance_date"),
        (person_body(day, revalidate_certificate_no="B06-0000001"), 422, "invalid_certificate_no",
         "revalidate_certificate_no"),
        (person_body(day, unknown_field="x"), 422, "invalid_input", "unknown_field"),
    ]  # fmt: skip
    for body, status, code, field in cases:
        refused(await post(people, json=body, headers=headers), status, code, field)
    first = person_body(day)
    assert (await post(people, json=first, headers=headers)).status_code == 201
    refused(await post(people, json=first, headers=headers), 409, "already_registered", "id_number")
    # A foreign buyer of the unit, with a passport, may pick the certificate up on site (FAQ VIII).
    overseas = person_body(day, id_type="passport", id_number="C01234567", nationality="DE",
                           name="Anna Schmidt", delivery_method="onsite_pickup")  # fmt: skip
    assert (await post(people, json=overseas, headers=headers)).status_code == 201
    listed = (await open_api.client.get(f"/v1/units/{unit['id']}/people", headers=headers)).json()
    assert [p["name"] for p in listed] == ["林晓", "Anna Schmidt"]  # the refusals saved nothing
    assert listed[0]["entrance_date"] == day


async def test_express_delivery_goes_to_a_confirmed_mainland_address_only(open_api: Api) -> None:
    """FAQ VIII: express delivery is limited to the Chinese mainland, to an address valid for six months."""
    post, day, headers = open_api.client.post, open_api.expo_day, open_api.unit_headers
    unit = (await post("/v1/units", json=unit_body(), headers=headers)).json()
    people = f"/v1/units/{unit['id']}/people"

    def express(**changes: Any) -> dict[str, Any]:
        return person_body(day, delivery_method="express", delivery_address=address(**changes))

    cases: list[tuple[dict[str, Any], str, str]] = [
        (express(province="台湾省", city="台北市", district="中正区"), "mainland_only", "delivery_address.province"),
        (express(province="澳门"), "mainland_only", "delivery_address.province"),
        (express(mobile="+886912345678"), "mainland_only", "delivery_address.mobile"),
        (express(valid_for_six_months=False), "address_validity_unconfirmed",
         "delivery_address.valid_for_six_months"),
        (express(postal_code="31500"), "invalid_input", "delivery_address.postal_code"),
    ]  # fmt: skip
    for body, code, field in cases:
        answer = await post(people, json=body, headers=headers)
        refused(answer, 422, code, field)
        assert answer.json()["message_zh"], "a buyer sees the refusal in Chinese too"
    created = await post(
        people, json=express(province="宁夏", city="银川市", postal_code="750000"), headers=headers
    )
    assert created.status_code == 201, created.text
    listed = (await open_api.client.get(people, headers=headers)).json()
    assert len(listed) == 1, "the refusals saved nothing"
    stored = listed[0]["delivery_address"]
    assert stored["province"] == "宁夏回族自治区", "a short name is stored as the region's full name"
    assert stored["mobile"] == "+8613900005555"


async def test_an_individual_registers_themself_once_with_a_referral_code(open_api: Api) -> None:
    post, headers = open_api.client.post, open_api.individual_headers
    refused(await post("/v1/units", json=unit_body(), headers=headers), 422, "unit_kind_mismatch", "kind")
    me = unit_body(kind="individual", name="赵个人", credit_code=None,
                   mission={"affiliation": "overseas", "mission": "shanghai", "referral_code": "CCCMEM2ZF"},
                   country="SG", registration_no="S8812345A")  # fmt: skip
    unit = await post("/v1/units", json=me, headers=headers)
    assert unit.status_code == 201, unit.text
    assert (unit.json()["mission"], unit.json()["statistics_mission"]) == ("industrial-cccme", "shanghai")
    people = f"/v1/units/{unit.json()['id']}/people"
    myself = person_body(open_api.expo_day, id_type="passport", id_number="K12345678", nationality="SG",
                         delivery_method="onsite_pickup")  # fmt: skip
    assert (await post(people, json=myself, headers=headers)).status_code == 201
    another = myself | {"id_number": "K87654321", "name": "赵二"}
    refused(await post(people, json=another, headers=headers), 409, "individual_registers_once")


async def test_nothing_new_is_accepted_after_registration_closes(tmp_path: Path) -> None:
    # The 6th CIIE's own calendar: registration closed on 30 September 2023.
    async for closed in serve(Settings(data_dir=tmp_path, edition_year_shift=0)):
        body = refused(
            await closed.client.post("/v1/units", json=unit_body(), headers=closed.unit_headers),
            409,
            "registration_closed",
        )
        assert "2023-10-01 00:00 Beijing time" in body["message"] and "on-site" in body["message"]
        assert "不设现场报名" in body["message_zh"]


async def test_a_returning_buyer_is_prefilled_then_revalidated_only_with_unchanged_data(
    open_api: Api,
) -> None:
    await import_shipped(open_api.ctx.db)  # the 4th and 5th CIIE's certificate holders
    client, headers, day = open_api.client, open_api.unit_headers, open_api.expo_day
    holder = {"id_type": "resident_id", "id_number": "31010419850312011X"}  # 张三, card B05-0102345
    found = await client.get("/v1/previous-buyers/lookup", params=holder, headers=headers)
    assert found.status_code == 200, found.text
    card = found.json()
    assert (card["certificate_no"], card["fee_kind"], card["revalidatable"]) == (
        "B05-0102345",
        "revalidation",
        True,
    )
    assert "31010419850312011X" not in found.text  # the ID number is never sent back whole
    # "Registered buyer of the previous CIIE": the unit form is filled from the card's affiliation.
    prefilled = card["unit"] | {"contact": {"name": "张三", "mobile": "13800000009",
                                            "email": "zhang.san@example-trade.example.com"}}  # fmt: skip
    unit = await client.post("/v1/units", json=prefilled, headers=headers)
    assert unit.status_code == 201, unit.text
    people = f"/v1/units/{unit.json()['id']}/people"
    same = person_body(
        day, name="张三", personnel_label="purchaser", revalidate_certificate_no="B05-0102345", **holder
    )
    # Each field that differs from the card is named (FAQ VII): a refusal saves nothing.
    for change, field in [({"name": "张叁"}, "name"), ({"personnel_label": "manager"}, "personnel_label")]:
        refused(await client.post(people, json=same | change, headers=headers), 409, "revalidation_field_changed",
                field)  # fmt: skip
    other = person_body(day, revalidate_certificate_no="B05-0102345")  # someone else's card
    refused(await client.post(people, json=other, headers=headers), 404, "no_previous_certificate")
    revalidated = await client.post(people, json=same, headers=headers)
    assert revalidated.status_code == 201, revalidated.text
    assert (revalidated.json()["fee_kind"], revalidated.json()["revalidate_certificate_no"]) == (
        "revalidation", "B05-0102345"
    )  # fmt: skip


async def test_a_card_of_the_edition_before_is_reissued_at_the_preferential_rate(open_api: Api) -> None:
    await import_shipped(open_api.ctx.db)
    client, headers = open_api.client, open_api.unit_headers
    async with open_api.ctx.db.sessions() as session:
        card = await session.scalar(
            select(PreviousBuyer).where(
                PreviousBuyer.edition == "ciie4",
                PreviousBuyer.lost_or_damaged.is_(False),
                PreviousBuyer.id_type == IdType.RESIDENT_ID,
                PreviousBuyer.affiliation == Affiliation.RESIDENCE,
            )
        )
    assert card is not None
    found = (
        await client.get(
            "/v1/previous-buyers/lookup",
            params={"id_type": card.id_type.value, "id_number": card.id_number},
            headers=headers,
        )
    ).json()
    prefilled = found["unit"] | {"contact": {"name": card.name, "mobile": "13800000008",
                                             "email": "reissue@example-trade.example.com"}}  # fmt: skip
    unit = (await client.post("/v1/units", json=prefilled, headers=headers)).json()
    body = person_body(open_api.expo_day, name=card.name, id_number=card.id_number,
                       personnel_label=card.personnel_label, revalidate_certificate_no=card.certificate_no)  # fmt: skip
    person = await client.post(f"/v1/units/{unit['id']}/people", json=body, headers=headers)
    assert person.status_code == 201, person.text
    assert person.json()["fee_kind"] == "preferential_reissue"  # a new card, at the lower fee
