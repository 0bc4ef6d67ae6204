"""Previous editions' certificate holders (FAQ VII): the shipped records and their import, the
lookup that fills a returning buyer's unit form, re-validation checked field by field, and the fee
each card earns. Against a migrated SQLite database."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import create_engine, func, select
from stdnum.cn import ric, uscc

from deploy.local.demo import demo_credit_code
from services.registration.auth import hash_password, issue_token
from services.registration.models import Account, AccountKind, PersonRegistration, PreviousBuyer, Unit
from services.registration.previous import (
    ImportRefused,
    fee_kind_for,
    holder_certificate,
    import_previous,
    import_shipped,
    revalidation_refusal,
    revalidation_refusal_for,
)
from services.registration.previous_api import router
from services.registration.revisions import unit_data
from services.registration.schemas import UnitIn
from shared.catalogue import Edition, load_edition, load_missions
from shared.db import sync_url, utcnow
from shared.http import ApiError, install_error_handlers
from shared.migrate import upgrade
from shared.service import ServiceContext
from shared.settings import Settings
from shared.types import FeeKind, IdType
from tests.service_env import service_context

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "shared" / "data" / "previous"
CIIE6 = load_edition("ciie6")

# Holders in the shipped samples
ZHANG_SAN = "31010419850312011X"  # cards of the 5th (B05-0102345) and the 4th (B04-0098765) CIIE
CHEN_YI = "370212199103120373"  # the 4th CIIE only
WU_SHI = "330106199501010882"  # the 5th CIIE, card lost
YANG_QI = "31011219970918042X"  # the 4th CIIE only, card lost


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path)


@pytest.fixture
async def ctx(settings: Settings) -> AsyncIterator[ServiceContext]:
    async with service_context("registration", settings) as context:
        yield context


@pytest.fixture
async def imported(ctx: ServiceContext) -> ServiceContext:
    await import_shipped(ctx.db)
    return ctx


async def previous(ctx: ServiceContext, certificate_no: str) -> PreviousBuyer:
    async with ctx.db.sessions() as session:
        row = await session.get(PreviousBuyer, certificate_no)
    assert row is not None
    return row


async def count(ctx: ServiceContext) -> int:
    async with ctx.db.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(PreviousBuyer)) or 0)


def shipped_lines(name: str = "ciie5") -> list[dict[str, Any]]:
    text = (SHIPPED / f"{name}.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def write_lines(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------- the shipped data


@pytest.mark.parametrize("name,prefix", [("ciie5", "B05-"), ("ciie4", "B04-")])
def test_each_shipped_edition_holds_a_dozen_realistic_holders(name: str, prefix: str) -> None:
    records = shipped_lines(name)
    assert len(records) == 12
    assert {r["edition"] for r in records} == {name}
    assert all(r["certificate_no"].startswith(prefix) for r in records)
    residents = [r for r in records if r["id_type"] == "resident_id"]
    assert residents and all(ric.is_valid(r["id_number"]) for r in residents)
    domestic = [r for r in records if r["affiliation"] != "overseas"]
    assert all(uscc.is_valid(r["credit_code"]) for r in domestic)
    overseas = [r for r in records if r["affiliation"] == "overseas"]
    assert len(overseas) >= 2 and all(r["id_type"] == "passport" for r in overseas)
    assert all(r["country"] != "CN" and r["foreign_registration_no"] for r in overseas)
    assert sum(r["lost_or_damaged"] for r in records) == 1
    catalogue = load_missions()
    assert all(catalogue.get(r["mission"]) is not None for r in records)


def test_the_5th_ciie_photos_are_shipped_with_the_hash_the_records_hold() -> None:
    """A rehearsal re-validates a 5th CIIE card by uploading its shipped photo."""
    for record in shipped_lines("ciie5"):
        photo = SHIPPED / "photos" / f"{record['certificate_no']}.png"
        assert hashlib.sha256(photo.read_bytes()).hexdigest() == record["photo_sha256"]


# ---------------------------------------------------------------------------------------- import


async def test_the_shipped_files_import_and_importing_again_changes_nothing(ctx: ServiceContext) -> None:
    assert await import_shipped(ctx.db) == 24
    zhang = await previous(ctx, "B05-0102345")
    assert (zhang.edition, zhang.name, zhang.id_number) == ("ciie5", "张三", ZHANG_SAN)
    assert (zhang.mission, zhang.sub_mission, zhang.entrance_date) == (
        "shanghai",
        "shanghai-pudong",
        date(2022, 11, 5),
    )
    jane = await previous(ctx, "B05-0900112")
    assert (jane.id_type, jane.credit_code, jane.country) == (IdType.PASSPORT, None, "DE")
    assert (await previous(ctx, "B05-0187650")).lost_or_damaged

    assert await import_shipped(ctx.db) == 0
    assert await import_previous(ctx.db, SHIPPED / "ciie5.jsonl") == 0
    assert await count(ctx) == 24
    assert (await previous(ctx, "B05-0102345")).imported_at == zhang.imported_at


async def test_a_corrected_record_is_updated_in_place(ctx: ServiceContext, tmp_path: Path) -> None:
    await import_previous(ctx.db, SHIPPED / "ciie5.jsonl")
    records = shipped_lines()
    records[0]["lost_or_damaged"] = True  # Zhang San reports his card lost
    assert await import_previous(ctx.db, write_lines(tmp_path / "ciie5.jsonl", records)) == 1
    assert (await previous(ctx, "B05-0102345")).lost_or_damaged
    assert await count(ctx) == 12


def _bad(field: str, value: Any) -> Any:
    def change(record: dict[str, Any], records: list[dict[str, Any]]) -> dict[str, Any]:
        return record | {field: value}

    return change


BAD_LINES = {
    "id checksum": (_bad("id_number", "110105197811040336"), "id_number: not a valid resident identity card"),
    "credit code": (_bad("credit_code", "91110105MA0000000X"), "credit_code: not a valid Unified Social"),
    "other edition's number": (_bad("certificate_no", "B04-0215577"), "certificate_no: 'B04-0215577' is not"),
    "number shape": (_bad("certificate_no", "B05-12345"), "certificate_no"),
    "photo hash": (_bad("photo_sha256", "not-a-hash"), "photo_sha256"),
    "date": (_bad("entrance_date", "2022-11-31"), "entrance_date"),
    "unknown mission": (_bad("mission", "atlantis"), "mission: no trade mission 'atlantis'"),
    "foreign sub-mission": (_bad("sub_mission", "jiangsu-suzhou"), "sub_mission: 'jiangsu-suzhou' is not"),
    "domestic abroad": (_bad("country", "DE"), "country: a domestic unit's country is CN"),
    "unknown column": (_bad("nickname", "Wu"), "nickname: not a column of the format"),
    "missing column": (
        lambda record, records: {k: v for k, v in record.items() if k != "lost_or_damaged"},
        "lost_or_damaged: missing",
    ),
    "duplicate": (
        lambda record, records: record | {"certificate_no": records[0]["certificate_no"]},
        "already on line 1",
    ),
}


@pytest.mark.parametrize("case", BAD_LINES)
async def test_a_bad_line_refuses_the_whole_file_naming_the_line(
    ctx: ServiceContext, tmp_path: Path, case: str
) -> None:
    change, reason = BAD_LINES[case]
    records = shipped_lines()
    records[4] = change(records[4], records)
    with pytest.raises(ImportRefused) as refused:
        await import_previous(ctx.db, write_lines(tmp_path / "ciie5.jsonl", records))
    assert refused.value.line == 5
    assert "line 5" in str(refused.value) and reason in str(refused.value)
    assert await count(ctx) == 0  # the four good lines before it are not imported either


async def test_a_line_that_is_not_json_is_named(ctx: ServiceContext, tmp_path: Path) -> None:
    path = tmp_path / "ciie5.jsonl"
    lines = (SHIPPED / "ciie5.jsonl").read_text(encoding="utf-8").splitlines()
    lines[2] = lines[2].rstrip("}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(ImportRefused, match=r"line 3: not JSON"):
        await import_previous(ctx.db, path)
    assert await count(ctx) == 0


async def test_a_refused_file_leaves_the_imported_records_as_they_were(
    ctx: ServiceContext, tmp_path: Path
) -> None:
    await import_previous(ctx.db, SHIPPED / "ciie5.jsonl")
    records = shipped_lines()
    records[0]["name"] = "张叁"  # a correction on line 1 ...
    records[7]["id_number"] = "12345"  # ... in a file with a bad line 8
    with pytest.raises(ImportRefused, match="line 8"):
        await import_previous(ctx.db, write_lines(tmp_path / "ciie5.jsonl", records))
    assert (await previous(ctx, "B05-0102345")).name == "张三"


def test_the_import_command_uses_the_configured_database(settings: Settings, tmp_path: Path) -> None:
    upgrade(("registration",), settings)
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXPO_")} | {
        "EXPO_DATA_DIR": str(settings.data_dir)
    }
    if settings.database_url:  # the suite's PostgreSQL pass
        env["EXPO_DATABASE_URL"] = settings.database_url

    def command(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "services.registration.previous", *args],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    first = command("import", "shared/data/previous/ciie5.jsonl", "shared/data/previous/ciie4.jsonl")
    assert first.returncode == 0, first.stderr
    assert "ciie5.jsonl: 12 records, 12 new or changed" in first.stdout
    again = command("import-shipped")
    assert again.returncode == 0 and again.stdout.count("12 records, 0 new or changed") == 2

    records = shipped_lines()
    records[10]["credit_code"] = "91310115000000000X"
    bad = command("import", str(write_lines(tmp_path / "bad.jsonl", records)))
    assert bad.returncode == 1 and "line 11: credit_code" in bad.stderr
    engine = create_engine(sync_url(settings.service_database_url("registration")))
    try:
        with engine.connect() as db:
            assert db.scalar(select(func.count()).select_from(PreviousBuyer)) == 24
    finally:
        engine.dispose()


# ---------------------------------------------------------------------------------------- lookup


@pytest.fixture
async def client(imported: ServiceContext) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(router)
    app.state.ctx = imported
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://registration.test"
    ) as http:
        yield http


async def login(ctx: ServiceContext, *, issued_ago: timedelta = timedelta(0)) -> dict[str, str]:
    async with ctx.db.transaction() as session:
        account = Account(
            id=f"A{os.urandom(4).hex()}",
            kind=AccountKind.UNIT,
            login=f"{os.urandom(4).hex()}@returning.example",
            email="buyer@returning.example",
            mobile="+8613800000001",
            password_hash=hash_password("correct horse battery staple"),
        )
        session.add(account)
        await session.flush()
        token, _ = await issue_token(session, account, utcnow() - issued_ago)
    return {"Authorization": f"Bearer {token}"}


async def lookup(
    client: httpx.AsyncClient, headers: dict[str, str], id_number: str, id_type: str = "resident_id"
) -> httpx.Response:
    return await client.get(
        "/v1/previous-buyers/lookup", params={"id_type": id_type, "id_number": id_number}, headers=headers
    )


async def test_a_holder_of_both_cards_gets_the_5th_ciie_card_and_its_affiliation(
    client: httpx.AsyncClient, imported: ServiceContext
) -> None:
    response = await lookup(client, await login(imported), ZHANG_SAN.lower())  # a lower-case x is read
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["certificate_no"], body["edition"], body["edition_number"]) == ("B05-0102345", "ciie5", 5)
    assert (body["revalidatable"], body["preferential_reissue"], body["lost_or_damaged"]) == (
        True,
        False,
        False,
    )
    assert (body["fee_kind"], body["fee"]) == ("revalidation", CIIE6.fees.revalidation)
    zhang = await previous(imported, "B05-0102345")
    assert body["unit"] == {
        "kind": "enterprise",
        "name": "上海示例进口贸易有限公司",
        "credit_code": zhang.credit_code,
        "country": "CN",
        "registration_no": None,
        "address": zhang.address,
        "industry": zhang.industry,
        "mission": {
            "affiliation": "residence",
            "mission": "shanghai",
            "sub_mission": "shanghai-pudong",
            "referral_code": None,
        },
    }
    assert (body["personnel_label"], body["entrance_date"]) == ("purchaser", "2022-11-05")
    # The ID number never comes back in full; the name only as a hint.
    assert ZHANG_SAN not in response.text and body["id_number_masked"] == "310***********011X"
    assert body["name_masked"] == "张*"


async def test_a_4th_ciie_holder_is_offered_the_preferential_reissue(
    client: httpx.AsyncClient, imported: ServiceContext
) -> None:
    body = (await lookup(client, await login(imported), CHEN_YI)).json()
    assert (body["certificate_no"], body["revalidatable"], body["preferential_reissue"]) == (
        "B04-0330017",
        False,
        True,
    )
    assert (body["fee_kind"], body["fee"]) == ("preferential_reissue", CIIE6.fees.preferential_reissue)


@pytest.mark.parametrize("id_number,certificate_no", [(WU_SHI, "B05-0187650"), (YANG_QI, "B04-0102870")])
async def test_a_lost_card_fills_the_unit_but_earns_no_reduced_fee(
    client: httpx.AsyncClient, imported: ServiceContext, id_number: str, certificate_no: str
) -> None:
    body = (await lookup(client, await login(imported), id_number)).json()
    assert (body["certificate_no"], body["lost_or_damaged"]) == (certificate_no, True)
    assert (body["revalidatable"], body["preferential_reissue"], body["fee_kind"]) == (
        False,
        False,
        "standard",
    )
    assert body["unit"]["name"]


async def test_an_overseas_passport_holder_gets_the_registration_number_and_chosen_mission(
    client: httpx.AsyncClient, imported: ServiceContext
) -> None:
    body = (await lookup(client, await login(imported), "C0000001X", "passport")).json()
    assert body["certificate_no"] == "B05-0900112" and body["name_masked"] == "Jane ***"
    assert body["id_number_masked"] == "*****001X"
    unit = body["unit"]
    assert (unit["credit_code"], unit["country"], unit["registration_no"]) == (
        None,
        "DE",
        "HRB 000001 (Amtsgericht Beispielstadt)",
    )
    assert unit["mission"] == {
        "affiliation": "overseas",
        "mission": "shanghai",
        "sub_mission": None,
        "referral_code": None,
    }


@pytest.mark.parametrize(
    "certificate_no", ["B05-0102345", "B05-0120004", "B05-0130981", "B05-0401276", "B05-0900112"]
)
async def test_the_filled_unit_form_places_the_unit_as_before_and_passes_re_validation(
    client: httpx.AsyncClient, imported: ServiceContext, certificate_no: str
) -> None:
    """Residence, central enterprise, NHC, industrial by referral code, overseas: the form filled from
    the lookup, with a contact added, registers a unit in the same mission, and the card's data match."""
    card = await previous(imported, certificate_no)
    body = (await lookup(client, await login(imported), card.id_number, card.id_type.value)).json()
    contact = {"name": "联系人", "mobile": "13800000002", "email": "contact@returning.example"}
    unit = unit_data(UnitIn.model_validate(body["unit"] | {"contact": contact}))
    assert (unit.mission, unit.sub_mission, unit.referral_code) == (
        card.mission,
        card.sub_mission,
        card.referral_code,
    )
    refusal = revalidation_refusal(
        card,
        edition=CIIE6,
        name=card.name,
        unit_name=unit.name,
        credit_code_or_registration_no=unit.credit_code or unit.foreign_registration_no,
        mission=unit.mission,
        sub_mission=unit.sub_mission,
        personnel_label=card.personnel_label,
        photo_sha256=card.photo_sha256,
        entrance_date=date(2023, 11, 5) + (card.entrance_date - date(2022, 11, 5)),  # the same expo day
    )
    assert refusal is None


async def test_no_previous_card_is_a_bilingual_404(
    client: httpx.AsyncClient, imported: ServiceContext
) -> None:
    never_came = "11010519900101001" + ric.calc_check_digit("110105199001010010")
    response = await lookup(client, await login(imported), never_came)
    assert response.status_code == 404
    error = response.json()
    assert error["code"] == "no_previous_certificate"
    assert "5th CIIE" in error["message"] and "第五届进博会" in error["message_zh"]


async def test_a_mistyped_id_number_is_refused_not_looked_up(
    client: httpx.AsyncClient, imported: ServiceContext
) -> None:
    response = await lookup(client, await login(imported), ZHANG_SAN[:-1] + "1")
    assert response.status_code == 422 and response.json()["code"] == "invalid_id_number"


async def test_the_lookup_needs_a_login(client: httpx.AsyncClient, imported: ServiceContext) -> None:
    for headers in (
        {},
        {"Authorization": "Bearer not-a-token"},
        await login(imported, issued_ago=timedelta(hours=13)),  # expired
    ):
        response = await lookup(client, headers, ZHANG_SAN)
        assert response.status_code == 401 and response.json()["code"] == "unauthenticated"
        assert "B05-0102345" not in response.text


# ---------------------------------------------------------------------------------------- re-validation


def unchanged(card: PreviousBuyer) -> dict[str, Any]:
    """What a returning holder registers with when nothing changed (a 6th CIIE day of entrance)."""
    return {
        "edition": CIIE6,
        "name": card.name,
        "unit_name": card.unit_name,
        "credit_code_or_registration_no": card.credit_code or card.foreign_registration_no,
        "mission": card.mission,
        "sub_mission": card.sub_mission,
        "personnel_label": card.personnel_label,
        "photo_sha256": card.photo_sha256,
        "entrance_date": card.entrance_date.replace(year=2023),
    }


CHANGES: dict[str, tuple[dict[str, Any], str, str]] = {
    "name": ({"name": "张叁"}, "the name differs", "姓名与第五届进博会证件"),
    "unit_name": (
        {"unit_name": "上海示例进出口贸易有限公司"},
        "the affiliation (unit name) differs",
        "所属单位名称与",
    ),
    "credit_code": (
        {"credit_code_or_registration_no": demo_credit_code("310115")},
        "the affiliation's Unified Social Credit Code differs",
        "所属单位统一社会信用代码与",
    ),
    "mission": (
        {"mission": "jiangsu", "sub_mission": "jiangsu-suzhou"},
        "the trade mission differs",
        "所属交易团与",
    ),
    "sub_mission": ({"sub_mission": "shanghai-xuhui"}, "the trade sub-mission differs", "所属交易分团与"),
    "personnel_label": ({"personnel_label": "manager"}, "the personnel label differs", "人员标签与"),
    "photo": ({"photo_sha256": hashlib.sha256(b"a new photo").hexdigest()}, "the photo differs", "照片与"),
    "entrance_date": ({"entrance_date": date(2023, 11, 6)}, "the entrance date differs", "入场日期与"),
}


@pytest.mark.parametrize("field", CHANGES)
async def test_each_changed_field_is_named_in_the_refusal(imported: ServiceContext, field: str) -> None:
    card = await previous(imported, "B05-0102345")
    change, english, chinese = CHANGES[field]
    refusal = revalidation_refusal(card, **(unchanged(card) | change))
    assert refusal is not None
    assert (refusal.status, refusal.body.code, refusal.body.field) == (
        409,
        "revalidation_field_changed",
        field,
    )
    assert refusal.body.message.startswith(english)
    assert "from the 5th CIIE's certificate B05-0102345" in refusal.body.message
    assert "register for a new certificate" in refusal.body.message
    assert refusal.body.message_zh.startswith(chinese) and "请改为办理新证件" in refusal.body.message_zh


async def test_the_first_changed_field_in_the_faqs_order_is_named(imported: ServiceContext) -> None:
    card = await previous(imported, "B05-0102345")
    order = list(CHANGES)
    for first in range(len(order)):
        changes: dict[str, Any] = {}
        for field in order[first:]:
            changes |= CHANGES[field][0]
        if "mission" in order[first:]:
            changes["sub_mission"] = "jiangsu-suzhou"  # a new mission brings its own sub-mission
        refusal = revalidation_refusal(card, **(unchanged(card) | changes))
        assert refusal is not None and refusal.body.field == order[first]


async def test_unchanged_data_is_re_validated(imported: ServiceContext) -> None:
    card = await previous(imported, "B05-0102345")
    assert revalidation_refusal(card, **unchanged(card)) is None
    # as a person types it: spacing, case and full-width characters aside; photo and day not yet given
    retyped = unchanged(card) | {
        "name": " 张三 ",
        "unit_name": "上海示例进口贸易有限公司\u3000",
        "credit_code_or_registration_no": (card.credit_code or "").lower(),
        "photo_sha256": None,
        "entrance_date": None,
    }
    assert revalidation_refusal(card, **retyped) is None


async def test_an_overseas_unit_is_compared_by_its_registration_number(imported: ServiceContext) -> None:
    card = await previous(imported, "B05-0900112")
    assert revalidation_refusal(card, **(unchanged(card) | {"name": "jane  doe"})) is None
    assert (
        revalidation_refusal(
            card, **(unchanged(card) | {"unit_name": "Beispiel Handels GmbH（Example Trading）"})
        )
        is None
    )
    refusal = revalidation_refusal(
        card, **(unchanged(card) | {"credit_code_or_registration_no": "HRB 000002"})
    )
    assert refusal is not None and refusal.body.field == "registration_no"
    assert "registration number" in refusal.body.message and "注册号" in refusal.body.message_zh


async def test_a_lost_or_damaged_card_is_not_re_validated(imported: ServiceContext) -> None:
    card = await previous(imported, "B05-0187650")
    refusal = revalidation_refusal(card, **unchanged(card))
    assert refusal is not None
    assert (refusal.status, refusal.body.code) == (409, "certificate_lost")
    assert "B05-0187650" in refusal.body.message and "挂失" in refusal.body.message_zh


async def test_a_4th_ciie_card_is_not_re_validated_but_reissued(imported: ServiceContext) -> None:
    card = await previous(imported, "B04-0098765")
    refusal = revalidation_refusal(card, **unchanged(card))
    assert refusal is not None
    assert (refusal.status, refusal.body.code, refusal.body.field) == (
        409,
        "not_revalidatable",
        "revalidate_certificate_no",
    )
    assert "the 4th CIIE" in refusal.body.message and "preferential rate" in refusal.body.message
    assert "第四届进博会" in refusal.body.message_zh and "优惠" in refusal.body.message_zh


async def test_the_rows_of_a_registered_person_and_unit_can_be_checked(imported: ServiceContext) -> None:
    """What register_person / photo-confirm hold: the person's and the unit's rows."""
    card = await previous(imported, "B05-0102346")  # Li Si
    unit = Unit(
        name=card.unit_name,
        credit_code=card.credit_code,
        foreign_registration_no=None,
        mission=card.mission,
        sub_mission=card.sub_mission,
    )
    person = PersonRegistration(
        name=card.name,
        personnel_label=card.personnel_label,
        photo_sha256=card.photo_sha256,
        entrance_date=date(2023, 11, 5),
    )
    assert revalidation_refusal_for(card, CIIE6, person, unit) is None
    person.photo_sha256 = hashlib.sha256(b"another photo").hexdigest()
    refusal = revalidation_refusal_for(card, CIIE6, person, unit)
    assert refusal is not None and refusal.body.field == "photo"


async def test_a_card_number_counts_only_for_its_holder(imported: ServiceContext) -> None:
    async with imported.db.sessions() as session:
        card = await holder_certificate(session, CIIE6, "b05-0102345", IdType.RESIDENT_ID, ZHANG_SAN)
        assert card.name == "张三"
        with pytest.raises(ApiError) as other:  # Li Si typing Zhang San's number
            await holder_certificate(session, CIIE6, "B05-0102345", IdType.RESIDENT_ID, "310110199007280220")
    assert (other.value.status, other.value.body.code) == (404, "no_previous_certificate")


# ---------------------------------------------------------------------------------------- fees


async def test_each_card_earns_its_fee(imported: ServiceContext) -> None:
    assert fee_kind_for(await previous(imported, "B05-0102345"), CIIE6) is FeeKind.REVALIDATION
    assert fee_kind_for(await previous(imported, "B04-0098765"), CIIE6) is FeeKind.PREFERENTIAL_REISSUE
    assert fee_kind_for(await previous(imported, "B05-0187650"), CIIE6) is FeeKind.STANDARD  # lost
    assert fee_kind_for(await previous(imported, "B04-0102870"), CIIE6) is FeeKind.STANDARD  # lost
    assert fee_kind_for(None, CIIE6) is FeeKind.STANDARD
    # In a later edition the 5th CIIE's card is the one reissued, and the 4th's earns nothing.
    ciie7 = CIIE6.model_copy(
        update={
            "code": "ciie7",
            "number": 7,
            "previous_edition": "ciie6",
            "preferential_reissue_edition": "ciie5",
        }
    )
    assert isinstance(ciie7, Edition)
    assert fee_kind_for(await previous(imported, "B05-0102345"), ciie7) is FeeKind.PREFERENTIAL_REISSUE
    assert fee_kind_for(await previous(imported, "B04-0098765"), ciie7) is FeeKind.STANDARD
    assert len({CIIE6.fee(kind) for kind in FeeKind}) == 3  # each kind is a different amount
