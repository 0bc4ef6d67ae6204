"""Statistics per mission and sub-mission: the registration service counts its own tables (a real,
migrated SQLite database), the review service asks it over HTTP and answers rows, totals, CSV and
Excel. Industrial-mission units count in their industrial mission and roll into their statistics
mission."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi import FastAPI
from openpyxl import load_workbook  # type: ignore[import-untyped, unused-ignore]
from pydantic import SecretStr

from services.registration import statistics as registration_statistics
from services.registration.models import PersonRegistration, Unit
from services.review import statistics_api
from services.review.statistics import EXPORT_COLUMNS, FIGURE_COLUMNS, PEOPLE_COLUMNS, people_figures
from shared import exports
from shared.http import install_error_handlers
from shared.service import ServiceContext
from shared.settings import Settings, get_settings
from shared.types import (
    Affiliation,
    DeliveryMethod,
    IdType,
    RegistrationStatus,
    UnitKind,
    UnitStatus,
)
from tests.service_env import service_context

S = RegistrationStatus
REGISTRATION = "http://registration.test"
TOKEN = "statistics-test-token"
FIGURES = [key for key, _, _ in FIGURE_COLUMNS]
PARTITION = ["awaiting_unit_review", "unpaid", "paid", "refunded", "expired", "withdrawn"]


# ------------------------------------------------------------------------------------------ the data


@dataclass(frozen=True)
class SeedUnit:
    id: str
    mission: str
    sub_mission: str | None
    status: UnitStatus
    people: list[RegistrationStatus]
    statistics: tuple[str, str | None] | None = None  # where an industrial unit is counted
    referral_code: str | None = None
    edition: str = "ciie6"


UNITS = [
    SeedUnit(
        "U1",
        "shanghai",
        "shanghai-xuhui",
        UnitStatus.APPROVED,
        [
            S.UNPAID,
            S.UNPAID,
            S.AWAITING_TRANSFER_CONFIRMATION,
            S.TO_BE_REVIEWED,
            S.APPROVED,
            S.CERTIFICATE_IN_PRODUCTION,
            S.CERTIFICATE_ISSUED,
            S.SHIPPED,
            S.DELIVERED,
            S.REFUNDED,
            S.EXPIRED,
            S.WITHDRAWN,
            S.REVIEW_FAILED,
        ],
    ),
    SeedUnit("U2", "shanghai", "shanghai-pudong", UnitStatus.UNDER_REVIEW, [S.SUBMITTED, S.SUBMITTED]),
    SeedUnit("U3", "shanghai", "shanghai-xuhui", UnitStatus.REJECTED, [S.UNIT_REJECTED]),
    # Joined the machinery chamber's industrial mission with its referral code; counted in Xuhui.
    SeedUnit(
        "U4",
        "industrial-cccme",
        None,
        UnitStatus.APPROVED,
        [S.TO_BE_REVIEWED, S.CERTIFICATE_REACTIVATED, S.AWAITING_COLLECTION, S.ONSITE_PICKUP, S.UNPAID],
        statistics=("shanghai", "shanghai-xuhui"),
        referral_code="CCCMEM2ZF",
    ),
    SeedUnit(
        "U5",
        "industrial-ccpit",
        None,
        UnitStatus.UNDER_REVIEW,
        [S.SUBMITTED],
        statistics=("shanghai", "shanghai-pudong"),
        referral_code="CCPITN9NG",
    ),
    SeedUnit(
        "U6",
        "central-enterprises",
        "central-enterprises-cnnc",
        UnitStatus.APPROVED,
        [S.CERTIFICATE_ISSUED, S.CERTIFICATE_ISSUED, S.REFUNDED],
    ),
    # A central enterprise's unit that joined an industrial mission: counted in its group's sub-mission.
    SeedUnit(
        "U7",
        "industrial-cccme",
        None,
        UnitStatus.APPROVED,
        [S.APPROVED],
        statistics=("central-enterprises", "central-enterprises-casc"),
        referral_code="CCCME8JL2",
    ),
    SeedUnit("U8", "beijing", "beijing-haidian", UnitStatus.APPROVED, [S.UNPAID]),
    SeedUnit("U9", "shanghai", None, UnitStatus.APPROVED, [S.EXPIRED]),  # overseas: no sub-mission
    # Last edition's: never counted in this edition's statistics.
    SeedUnit("U10", "shanghai", "shanghai-xuhui", UnitStatus.APPROVED, [S.DELIVERED] * 3, edition="ciie5"),
]


def figures(**counts: int) -> dict[str, int]:
    assert set(counts) <= set(FIGURES), set(counts) - set(FIGURES)
    return {key: counts.get(key, 0) for key in FIGURES}


# What one unit contributes, worked out by hand from the column definitions.
U4 = figures(
    units_registered=1, units_approved=1, people_registered=5, under_review=1, awaiting_personnel_review=1,
    unpaid=1, paid=4, approved=3, certificates_issued=3,
)  # fmt: skip
U5 = figures(
    units_registered=1, units_under_review=1, people_registered=1, under_review=1, awaiting_unit_review=1
)
U7 = figures(units_registered=1, units_approved=1, people_registered=1, paid=1, approved=1)
SHANGHAI = figures(
    units_registered=6, units_under_review=2, units_approved=3, units_rejected=1,
    people_registered=23, under_review=6, awaiting_unit_review=4, awaiting_personnel_review=2,
    unpaid=4, paid=11, approved=8, certificates_issued=6, review_failed=1, refunded=1, expired=2,
    withdrawn=1,
)  # fmt: skip
XUHUI = figures(
    units_registered=3, units_approved=2, units_rejected=1,
    people_registered=19, under_review=3, awaiting_unit_review=1, awaiting_personnel_review=2,
    unpaid=4, paid=11, approved=8, certificates_issued=6, review_failed=1, refunded=1, expired=1,
    withdrawn=1,
)  # fmt: skip
PUDONG = figures(
    units_registered=2, units_under_review=2, people_registered=3, under_review=3, awaiting_unit_review=3
)
SHANGHAI_NO_SUB = figures(units_registered=1, units_approved=1, people_registered=1, expired=1)
CENTRAL = figures(
    units_registered=2, units_approved=2, people_registered=4, paid=3, approved=3, certificates_issued=2,
    refunded=1,
)  # fmt: skip
CNNC = figures(
    units_registered=1, units_approved=1, people_registered=3, paid=2, approved=2, certificates_issued=2,
    refunded=1,
)  # fmt: skip
BEIJING = figures(units_registered=1, units_approved=1, people_registered=1, unpaid=1)
TOTALS = figures(
    units_registered=9, units_under_review=2, units_approved=6, units_rejected=1,
    people_registered=28, under_review=6, awaiting_unit_review=4, awaiting_personnel_review=2,
    unpaid=5, paid=14, approved=11, certificates_issued=8, review_failed=1, refunded=2, expired=2,
    withdrawn=1,
)  # fmt: skip


async def seed(ctx: ServiceContext) -> None:
    serial = 0
    async with ctx.db.transaction() as session:
        for seeded in UNITS:
            statistics_mission, statistics_sub = seeded.statistics or (seeded.mission, seeded.sub_mission)
            session.add(
                Unit(
                    id=seeded.id, edition=seeded.edition, kind=UnitKind.ENTERPRISE,
                    affiliation=Affiliation.RESIDENCE, name=f"测试单位{seeded.id}", credit_code=None,
                    country="CN", address="上海", industry="Trade", contact_name="王",
                    contact_mobile="+8613800000000", contact_email="unit@example.test",
                    mission=seeded.mission, sub_mission=seeded.sub_mission,
                    statistics_mission=statistics_mission, statistics_sub_mission=statistics_sub,
                    referral_code=seeded.referral_code, status=seeded.status,
                    workflow_id=f"unit-{seeded.edition}-{seeded.id}",
                )
            )  # fmt: skip
            await session.flush()
            for status in seeded.people:
                serial += 1
                session.add(
                    PersonRegistration(
                        id=f"R{serial}", edition=seeded.edition, unit_id=seeded.id, name=f"买家{serial}",
                        id_type=IdType.PASSPORT, id_number=f"E{serial:08d}", nationality="CN",
                        mobile="+8613900000000", email=f"buyer{serial}@example.test", job_title="Buyer",
                        personnel_label="purchaser", delivery_method=DeliveryMethod.EXPRESS,
                        status=status, workflow_id=f"registration-{seeded.edition}-R{serial}",
                    )
                )  # fmt: skip


# ------------------------------------------------------------------------------------------ the services


@dataclass
class World:
    review: httpx.AsyncClient  # the review service's statistics routes
    review_app: FastAPI
    registration: httpx.AsyncClient  # the registration service's internal route


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path,
        database_url=None,
        edition="ciie6",
        edition_year_shift=0,
        registration_url=REGISTRATION,
        internal_token=SecretStr(TOKEN),
    )


def registration_app(ctx: ServiceContext, settings: Settings) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(registration_statistics.router)
    app.dependency_overrides[get_settings] = lambda: settings  # the service token
    app.state.ctx = ctx
    return app


def review_app(ctx: ServiceContext) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(statistics_api.router)
    app.state.ctx = ctx
    return app


@pytest.fixture
async def world(settings: Settings) -> AsyncIterator[World]:
    async with service_context("registration", settings) as registration_ctx:
        await seed(registration_ctx)
        registration = registration_app(registration_ctx, settings)
        http = httpx.AsyncClient(mounts={REGISTRATION: httpx.ASGITransport(app=registration)})
        async with service_context("review", settings, http=http) as review_ctx:
            review = review_app(review_ctx)
            async with (
                httpx.AsyncClient(transport=httpx.ASGITransport(app=review), base_url="http://review") as rc,
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=registration), base_url=REGISTRATION
                ) as gc,
            ):
                yield World(rc, review, gc)


async def statistics(world: World, **params: str) -> dict[str, Any]:
    answer = await world.review.get("/v1/statistics", params=params)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def pick(
    rows: list[dict[str, Any]],
    level: str,
    mission: str,
    sub_mission: str | None = None,
    industrial_mission: str | None = None,
) -> dict[str, Any]:
    found = [
        row
        for row in rows
        if (row["level"], row["mission"], row["sub_mission"], row["industrial_mission"])
        == (level, mission, sub_mission, industrial_mission)
    ]
    assert len(found) == 1, (level, mission, sub_mission, industrial_mission, found)
    return found[0]


def counts(row: dict[str, Any]) -> dict[str, int]:
    return {key: row[key] for key in FIGURES}


# ------------------------------------------------------------------------------------------ registration


def group_key(group: dict[str, Any]) -> tuple[str | None, ...]:
    fields = ("mission", "sub_mission", "statistics_mission", "statistics_sub_mission", "status")
    return tuple(group[name] for name in fields)


async def test_the_registration_service_counts_people_and_units_by_placement_and_status(world: World) -> None:
    refused = await world.registration.get("/internal/statistics", params={"edition": "ciie6"})
    assert refused.status_code == 401 and refused.json()["code"] == "unauthorised"

    answer = await world.registration.get(
        "/internal/statistics", params={"edition": "ciie6"}, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["edition"] == "ciie6"
    people = {group_key(g): g["people"] for g in body["people"]}
    assert len(people) == len(body["people"])  # one group per placement and status
    assert people["shanghai", "shanghai-xuhui", "shanghai", "shanghai-xuhui", "unpaid"] == 2
    assert people["industrial-cccme", None, "shanghai", "shanghai-xuhui", "onsite_pickup"] == 1
    assert (
        people["industrial-cccme", None, "central-enterprises", "central-enterprises-casc", "approved"] == 1
    )
    central = ("central-enterprises", "central-enterprises-cnnc") * 2
    assert people[(*central, "certificate_issued")] == 2
    assert sum(people.values()) == 28  # last edition's three are not counted
    units = {group_key(g): g["units"] for g in body["units"]}
    assert units["shanghai", "shanghai-xuhui", "shanghai", "shanghai-xuhui", "approved"] == 1
    assert units["shanghai", "shanghai-xuhui", "shanghai", "shanghai-xuhui", "rejected"] == 1
    assert units["industrial-cccme", None, "shanghai", "shanghai-xuhui", "approved"] == 1
    assert sum(units.values()) == 9

    last = await world.registration.get(
        "/internal/statistics", params={"edition": "ciie5"}, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert [(g["status"], g["people"]) for g in last.json()["people"]] == [("delivered", 3)]


# ------------------------------------------------------------------------------------------ rows


async def test_each_mission_and_sub_mission_has_its_counts_in_every_column(world: World) -> None:
    body = await statistics(world)
    assert body["edition"] == "ciie6" and body["mission"] is None
    rows = body["rows"]
    shanghai = pick(rows, "mission", "shanghai")
    assert (shanghai["mission_name_zh"], shanghai["mission_name_en"]) == (
        "上海市交易团",
        "Shanghai Trade Mission",
    )
    assert shanghai["mission_kind"] == "regional"
    assert counts(shanghai) == SHANGHAI
    xuhui = pick(rows, "sub_mission", "shanghai", "shanghai-xuhui")
    assert (xuhui["sub_mission_name_zh"], xuhui["sub_mission_name_en"]) == (
        "徐汇区交易分团",
        "Xuhui District Sub-mission",
    )
    assert counts(xuhui) == XUHUI
    assert counts(pick(rows, "sub_mission", "shanghai", "shanghai-pudong")) == PUDONG
    no_sub = pick(rows, "sub_mission", "shanghai", None)  # the overseas unit that chose no sub-mission
    assert no_sub["sub_mission_name_en"] == "No sub-mission" and counts(no_sub) == SHANGHAI_NO_SUB
    assert counts(pick(rows, "mission", "central-enterprises")) == CENTRAL
    assert counts(pick(rows, "sub_mission", "central-enterprises", "central-enterprises-cnnc")) == CNNC
    assert counts(pick(rows, "mission", "beijing")) == BEIJING
    assert counts(pick(rows, "sub_mission", "beijing", "beijing-haidian")) == BEIJING
    # Missions and sub-missions where no one registered are listed, with zeros.
    assert counts(pick(rows, "mission", "tianjin")) == figures()
    assert counts(pick(rows, "sub_mission", "beijing", "beijing-dongcheng")) == figures()
    assert counts(pick(rows, "mission", "nhc")) == figures()


async def test_the_columns_add_up_in_every_row(world: World) -> None:
    body = await statistics(world)
    for row in [*body["rows"], body["totals"]]:
        label = (row["level"], row["mission"], row["sub_mission"], row["industrial_mission"])
        assert sum(row[key] for key in PARTITION) == row["people_registered"], label
        assert row["under_review"] == row["awaiting_unit_review"] + row["awaiting_personnel_review"], label
        assert row["paid"] >= row["approved"] + row["awaiting_personnel_review"] + row["review_failed"], label
        assert row["approved"] >= row["certificates_issued"], label
        units = row["units_under_review"] + row["units_approved"] + row["units_rejected"]
        assert units == row["units_registered"], label
    # Whatever a person's status, they are in exactly one of the partition's columns.
    for status in RegistrationStatus:
        counted = people_figures(status, 1)
        assert sum(counted[key] for key in PARTITION) == 1, status
        assert counted["people_registered"] == 1, status
    assert PEOPLE_COLUMNS["paid"] >= PEOPLE_COLUMNS["approved"]


async def test_an_industrial_unit_counts_in_its_industrial_mission_and_rolls_into_its_statistics_mission(
    world: World,
) -> None:
    rows = (await statistics(world))["rows"]
    # The machinery chamber's mission manages two units: one counted in Shanghai, one in a central group.
    cccme = pick(rows, "mission", "industrial-cccme")
    assert cccme["mission_kind"] == "industrial"
    assert cccme["mission_name_zh"] == "中国机电产品进出口商会行业交易团"
    assert counts(cccme) == {key: U4[key] + U7[key] for key in FIGURES}
    assert counts(pick(rows, "mission", "industrial-ccpit")) == U5
    assert not [r for r in rows if r["mission"] == "industrial-cccme" and r["level"] != "mission"]

    # Shanghai's row includes them, and says how much came from each industrial mission.
    shanghai = pick(rows, "from_industrial", "shanghai", industrial_mission="industrial-cccme")
    assert shanghai["industrial_mission_name_en"].startswith(
        "China Chamber of Commerce for Import and Export"
    )
    assert counts(shanghai) == U4
    assert counts(pick(rows, "from_industrial", "shanghai", industrial_mission="industrial-ccpit")) == U5
    assert counts(pick(rows, "from_industrial", "shanghai", "shanghai-xuhui", "industrial-cccme")) == U4
    assert counts(pick(rows, "from_industrial", "shanghai", "shanghai-pudong", "industrial-ccpit")) == U5
    assert not [
        r
        for r in rows
        if r["level"] == "from_industrial"
        and r["sub_mission"] == "shanghai-xuhui"
        and r["industrial_mission"] != "industrial-cccme"
    ]
    # Rolled into the Central Enterprise mission and the group's sub-mission too.
    assert (
        counts(pick(rows, "from_industrial", "central-enterprises", industrial_mission="industrial-cccme"))
        == U7
    )
    casc = pick(rows, "sub_mission", "central-enterprises", "central-enterprises-casc")
    assert counts(casc) == U7
    assert (
        counts(
            pick(
                rows, "from_industrial", "central-enterprises", "central-enterprises-casc", "industrial-cccme"
            )
        )
        == U7
    )
    # Missions without industrial units have no breakdown.
    assert not [r for r in rows if r["level"] == "from_industrial" and r["mission"] == "beijing"]

    # Each breakdown follows the row it belongs to.
    where = [(r["level"], r["mission"], r["sub_mission"], r["industrial_mission"]) for r in rows]
    first = where.index(("mission", "shanghai", None, None))
    assert where[first + 1 : first + 3] == [
        ("from_industrial", "shanghai", None, "industrial-cccme"),
        ("from_industrial", "shanghai", None, "industrial-ccpit"),
    ]
    xuhui = where.index(("sub_mission", "shanghai", "shanghai-xuhui", None))
    assert where[xuhui + 1] == ("from_industrial", "shanghai", "shanghai-xuhui", "industrial-cccme")


async def test_totals_count_every_unit_and_person_once(world: World) -> None:
    body = await statistics(world)
    totals = body["totals"]
    assert totals["level"] == "total"
    assert counts(totals) == TOTALS
    missions = [r for r in body["rows"] if r["level"] == "mission"]
    # The industrial units are in two mission rows: the totals are the non-industrial missions' sum.
    assert sum(r["people_registered"] for r in missions) == 28 + 6 + 1
    assert {
        key: sum(r[key] for r in missions if r["mission_kind"] != "industrial") for key in FIGURES
    } == TOTALS


# ------------------------------------------------------------------------------------------ scope


async def test_a_mission_sees_its_own_rows_with_the_industrial_units_rolled_into_it(world: World) -> None:
    world.review_app.dependency_overrides[statistics_api.statistics_scope] = lambda: "shanghai"
    body = await statistics(world)
    assert body["mission"] == "shanghai"
    assert {r["mission"] for r in body["rows"]} == {"shanghai"}
    assert counts(pick(body["rows"], "mission", "shanghai")) == SHANGHAI
    assert (
        counts(pick(body["rows"], "from_industrial", "shanghai", industrial_mission="industrial-cccme")) == U4
    )
    assert counts(body["totals"]) == SHANGHAI
    assert (await statistics(world, mission="shanghai"))["rows"] == body["rows"]

    other = await world.review.get("/v1/statistics", params={"mission": "beijing"})
    assert other.status_code == 403 and other.json()["code"] == "outside_your_mission"
    other_csv = await world.review.get("/v1/statistics", params={"mission": "beijing", "format": "csv"})
    assert other_csv.status_code == 403

    # An industrial mission sees its own units, wherever they are counted.
    world.review_app.dependency_overrides[statistics_api.statistics_scope] = lambda: "industrial-cccme"
    body = await statistics(world)
    assert [(r["level"], r["mission"]) for r in body["rows"]] == [("mission", "industrial-cccme")]
    assert counts(body["totals"]) == {key: U4[key] + U7[key] for key in FIGURES}


async def test_everyone_may_choose_one_mission_and_an_unknown_one_is_not_found(world: World) -> None:
    body = await statistics(world, mission="central-enterprises")
    assert {r["mission"] for r in body["rows"]} == {"central-enterprises"}
    assert counts(body["totals"]) == CENTRAL
    unknown = await world.review.get("/v1/statistics", params={"mission": "atlantis"})
    assert unknown.status_code == 404 and unknown.json()["code"] == "unknown_mission"


async def test_an_edition_without_registrations_has_zeros(world: World) -> None:
    body = await statistics(world, edition="ciie7")
    assert body["edition"] == "ciie7"
    assert counts(body["totals"]) == figures()
    assert counts(pick(body["rows"], "mission", "shanghai")) == figures()


async def test_the_registration_service_unreachable_is_a_503(settings: Settings) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    http = httpx.AsyncClient(mounts={REGISTRATION: httpx.MockTransport(refuse)})
    async with service_context("review", settings, http=http) as ctx:
        transport = httpx.ASGITransport(app=review_app(ctx))
        async with httpx.AsyncClient(transport=transport, base_url="http://review") as client:
            answer = await client.get("/v1/statistics")
    assert answer.status_code == 503
    assert answer.json()["code"] == "registration_unavailable" and answer.json()["message_zh"]


# ------------------------------------------------------------------------------------------ exports


def csv_heading(key: str) -> str:
    return next(exports.heading(column) for column in EXPORT_COLUMNS if column[0] == key)


async def test_csv_export_opens_in_excel_with_the_same_numbers(world: World) -> None:
    body = await statistics(world)
    answer = await world.review.get("/v1/statistics", params={"format": "csv"})
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/csv; charset=utf-8"
    disposition = answer.headers["content-disposition"]
    assert re.fullmatch(r'attachment; filename="statistics-ciie6-\d{8}-\d{4}\.csv"', disposition), disposition
    assert answer.content.startswith(b"\xef\xbb\xbf")  # the BOM: Excel reads UTF-8

    table = list(csv.DictReader(io.StringIO(answer.content.decode("utf-8-sig"), newline="")))
    assert csv_heading("people_registered") == "报名人数 / People registered"
    assert len(table) == len(body["rows"]) + 1  # and the totals
    mission_code, level = csv_heading("mission"), csv_heading("level")
    shanghai = [r for r in table if r[mission_code] == "shanghai" and r[level] == "交易团 Mission"]
    assert len(shanghai) == 1
    assert shanghai[0][csv_heading("mission_name_zh")] == "上海市交易团"
    assert {key: int(shanghai[0][csv_heading(key)]) for key in FIGURES} == SHANGHAI
    rolled = [
        r
        for r in table
        if r[mission_code] == "shanghai"
        and r[csv_heading("sub_mission")] == ""
        and r[csv_heading("industrial_mission")] == "industrial-cccme"
    ]
    assert [r[level] for r in rolled] == ["其中：行业交易团 Of which: industrial mission"]
    assert {key: int(rolled[0][csv_heading(key)]) for key in FIGURES} == U4
    assert table[-1][level] == "合计 Total"
    assert {key: int(table[-1][csv_heading(key)]) for key in FIGURES} == TOTALS


async def test_excel_export_has_a_frozen_bilingual_header_and_numbers_as_numbers(world: World) -> None:
    world.review_app.dependency_overrides[statistics_api.statistics_scope] = lambda: "shanghai"
    body = await statistics(world)
    answer = await world.review.get("/v1/statistics", params={"format": "xlsx"})
    assert answer.status_code == 200
    assert answer.headers["content-type"] == exports.XLSX_MEDIA_TYPE
    assert re.fullmatch(
        r'attachment; filename="statistics-ciie6-shanghai-\d{8}-\d{4}\.xlsx"',
        answer.headers["content-disposition"],
    )
    sheet = load_workbook(io.BytesIO(answer.content)).active
    assert sheet.freeze_panes == "A2"
    header = [cell.value for cell in sheet[1]]
    assert header == [exports.heading(column) for column in EXPORT_COLUMNS]
    assert all(cell.font.b for cell in sheet[1])
    table = [dict(zip(header, row, strict=True)) for row in sheet.iter_rows(min_row=2, values_only=True)]
    assert len(table) == len(body["rows"]) + 1
    shanghai = table[0]
    assert (shanghai[csv_heading("mission")], shanghai[csv_heading("level")]) == (
        "shanghai",
        "交易团 Mission",
    )
    assert shanghai[csv_heading("mission_name_en")] == "Shanghai Trade Mission"
    assert {key: shanghai[csv_heading(key)] for key in FIGURES} == SHANGHAI
    assert all(type(shanghai[csv_heading(key)]) is int for key in FIGURES)
    xuhui = [r for r in table if r[csv_heading("sub_mission")] == "shanghai-xuhui"]
    assert {key: xuhui[0][csv_heading(key)] for key in FIGURES} == XUHUI
    assert {key: table[-1][csv_heading(key)] for key in FIGURES} == SHANGHAI  # the totals of the scope


COLUMNS = [
    ("name", "Unit", "单位"),
    ("mobile", "Mobile", "手机"),
    ("people", "People", "人数"),
    ("opened_at", "Opened (Beijing)", "进入队列时间（北京时间）"),
    ("note", "Note", "备注"),
]
ROWS: list[dict[str, Any]] = [
    {
        "name": '=HYPERLINK("http://evil.example","点击")',
        "mobile": "+8613900000000",
        "people": 3,
        "opened_at": datetime(2023, 10, 2, 2, 30, tzinfo=UTC),
        "note": None,
    },
    {"name": "上海测试贸易有限公司", "mobile": "-1+cmd|' /C calc'!A0", "people": 0, "opened_at": None},
]


def test_csv_cells_a_spreadsheet_would_run_as_formulas_are_made_text() -> None:
    table = list(csv.reader(io.StringIO(exports.to_csv(COLUMNS, ROWS).decode("utf-8-sig"), newline="")))
    assert table[0] == [
        "单位 / Unit",
        "手机 / Mobile",
        "人数 / People",
        "进入队列时间（北京时间） / Opened (Beijing)",
        "备注 / Note",
    ]
    assert table[1] == [
        '\'=HYPERLINK("http://evil.example","点击")',
        "+8613900000000",
        "3",
        "2023-10-02T02:30:00+00:00",
        "",
    ]
    assert table[2] == ["上海测试贸易有限公司", "'-1+cmd|' /C calc'!A0", "0", "", ""]


def test_excel_cells_keep_text_as_text_and_times_in_the_zone_asked() -> None:
    data = exports.to_xlsx(COLUMNS, ROWS, sheet_title="队列 Queue", tz=ZoneInfo("Asia/Shanghai"))
    sheet = load_workbook(io.BytesIO(data)).active
    assert sheet.title == "队列 Queue"
    first = sheet[2]
    assert first[0].value == '=HYPERLINK("http://evil.example","点击")' and first[0].data_type == "s"
    assert first[1].value == "+8613900000000"
    assert first[2].value == 3 and first[2].data_type == "n"
    assert first[3].value == datetime(2023, 10, 2, 10, 30)  # Beijing wall-clock time
    assert first[4].value is None
    assert sheet[3][3].value is None
