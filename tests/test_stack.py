"""The whole system, started as ./expo start starts it (on free ports), carrying one unit with two
buyers from registration to dispatched certificates over real HTTP and a real Temporal server.

Checked where a person would look: each service's database, the object store, the mail inbox, the
SMS outbox, the gate verification endpoint and the workflows' histories and search attributes.
"""

from __future__ import annotations

import base64
import io
import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text
from temporalio.client import Client

from deploy.local.demo import Demo, DemoResult, demo_credit_code, expo_day
from deploy.local.stack import DEFAULT_PORTS, Stack, free_ports, running
from shared.db import sync_url
from shared.settings import ServiceName
from shared.storage import s3_client
from shared.temporal import SA_EDITION, SA_MISSION, SA_STATUS, connect, registration_workflow_id
from shared.types import RegistrationStatus
from tests.workflow_env import history_payloads

pytestmark = pytest.mark.stack
ENCRYPTED = base64.b64encode(b"binary/encrypted").decode()  # shared/codec.py's payload encoding

BUYER_STEPS = [
    "registered",
    "unit_approved",
    "paid",
    "review_passed",
    "certificate_making",
    "certificate_made",
    "dispatched",
    "delivered",
]
NOTIFIED_STEPS = {"registered", "unit_approved", "paid", "review_passed", "dispatched"}


def rows(stack: Stack, service: ServiceName, sql: str, **params: Any) -> list[dict[str, Any]]:
    engine = create_engine(sync_url(stack.settings.service_database_url(service)))
    try:
        with engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(text(sql), params)]
    finally:
        engine.dispose()


def payload_text(payloads: list[dict[str, Any]]) -> str:
    return "\n".join(base64.b64decode(p.get("data", "")).decode("utf-8", "replace") for p in payloads)


def decoded_by_codec_endpoint(stack: Stack, payloads: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The payloads as the Temporal UI shows them to an administrator: through the review service's
    codec endpoint, with the console's login."""
    settings = stack.settings
    login = httpx.post(
        f"{stack.url('review')}/v1/staff/sessions",
        json={"login": settings.admin_login, "password": settings.admin_password.get_secret_value()},
        timeout=30,
    )
    login.raise_for_status()
    answer = httpx.post(
        f"{stack.url('review')}/codec/decode",
        json={"payloads": payloads},
        headers={"X-Namespace": settings.temporal_namespace},
        cookies={"expo_staff": login.json()["token"]},
        timeout=30,
    )
    answer.raise_for_status()
    decoded: list[dict[str, Any]] = answer.json()["payloads"]
    return decoded


def run_demo(stack: Stack) -> tuple[DemoResult, str]:
    out = io.StringIO()
    result = Demo(stack.settings, out=out, timeout=60).run()
    return result, out.getvalue()


def check_databases(stack: Stack, result: DemoResult) -> None:
    ids = result.registration_ids
    people = rows(stack, "registration", "SELECT id, status, photo_key FROM person_registrations ORDER BY id")
    assert {p["id"] for p in people} >= set(ids)
    mine = [p for p in people if p["id"] in ids]
    assert {p["status"] for p in mine} == {"delivered"}
    assert all(p["photo_key"] for p in mine)
    for rid in ids:
        steps = rows(
            stack,
            "registration",
            "SELECT step FROM registration_events WHERE registration_id = :r ORDER BY seq",
            r=rid,
        )
        assert [s["step"] for s in steps] == BUYER_STEPS
    unit = rows(
        stack,
        "registration",
        "SELECT status, mission, sub_mission FROM units WHERE id = :u",
        u=result.unit_id,
    )
    assert unit == [{"status": "approved", "mission": "shanghai", "sub_mission": "shanghai-pudong"}]

    decisions = rows(stack, "review", "SELECT kind, subject_id, decision, reviewer FROM review_decisions")
    mine_decisions = {
        (d["kind"], d["subject_id"]) for d in decisions if d["subject_id"] in {result.unit_id, *ids}
    }
    assert mine_decisions == {("unit", result.unit_id), *(("person", rid) for rid in ids)}
    open_tasks = rows(stack, "review", "SELECT subject_id FROM review_tasks WHERE decided_at IS NULL")
    assert not {t["subject_id"] for t in open_tasks} & {result.unit_id, *ids}

    order = rows(stack, "payment", "SELECT status, amount_fen, transaction_id FROM payment_orders WHERE order_no = :o",
                 o=result.order_no)  # fmt: skip
    assert order[0]["status"] == "paid" and order[0]["amount_fen"] == 2 * 20000 and order[0]["transaction_id"]
    transactions = rows(stack, "payment", "SELECT amount_fen FROM payment_transactions WHERE order_no = :o",
                        o=result.order_no)  # fmt: skip
    assert transactions == [{"amount_fen": 40000}]

    certificates = rows(
        stack, "certificate",
        "SELECT certificate_no, registration_id, tracking_no, delivered_at FROM certificates ORDER BY certificate_no",
    )  # fmt: skip
    mine_certificates = [c for c in certificates if c["registration_id"] in ids]
    assert len(mine_certificates) == 2
    assert all(c["tracking_no"] and c["delivered_at"] for c in mine_certificates)
    for certificate in mine_certificates:  # the courier's signed callbacks, each event stored once
        events = rows(stack, "certificate", "SELECT event_id, status FROM certificate_tracking_events "
                      "WHERE tracking_no = :t", t=certificate["tracking_no"])  # fmt: skip
        assert len({e["event_id"] for e in events}) == len(events)
        assert "delivered" in {e["status"] for e in events}
    assert len({c["certificate_no"] for c in certificates}) == len(certificates)  # unique per edition

    # Messages go out beside the lifecycle (retried if the mail server is slow): wait for the last one.
    query = "SELECT registration_id, step, channel FROM notification_messages WHERE status = 'sent'"
    expected = len(ids) * 2 * len(NOTIFIED_STEPS)
    deadline = time.monotonic() + 30
    while (
        len(messages := [m for m in rows(stack, "notification", query) if m["registration_id"] in ids])
        < expected
    ):
        assert time.monotonic() < deadline, f"only {len(messages)} of {expected} messages sent"
        time.sleep(0.2)
    for rid in ids:
        for channel in ("sms", "email"):
            sent = [m["step"] for m in messages if m["registration_id"] == rid and m["channel"] == channel]
            assert sorted(sent) == sorted(NOTIFIED_STEPS), (rid, channel, sent)  # exactly one per step


def check_object_store(stack: Stack, result: DemoResult) -> list[bytes]:
    settings = stack.settings
    store = s3_client(settings)
    photos = store.list_objects_v2(Bucket=settings.bucket_photos, Prefix=f"ciie6/{result.unit_id}/")
    assert len(photos.get("Contents", [])) == 2
    badges = []
    for certificate in rows(stack, "certificate", "SELECT badge_key, registration_id FROM certificates"):
        if certificate["registration_id"] in result.registration_ids:
            pdf = store.get_object(Bucket=settings.bucket_certificates, Key=certificate["badge_key"])[
                "Body"
            ].read()
            assert pdf.startswith(b"%PDF")
            badges.append(pdf)
    assert len(badges) == 2
    return badges


def admission_code_of(pdf: bytes, tmp_path: Path) -> str:
    """The code in the badge's QR, read as a gate scanner reads it: render the page and decode."""
    (tmp_path / "badge.pdf").write_bytes(pdf)
    pdftoppm, zbarimg = shutil.which("pdftoppm"), shutil.which("zbarimg")
    assert pdftoppm and zbarimg, "./expo test installs poppler-utils and zbar-tools"
    subprocess.run(
        [pdftoppm, "-png", "-r", "150", "-singlefile", tmp_path / "badge.pdf", tmp_path / "badge"], check=True
    )
    decoded = subprocess.run(
        [zbarimg, "--quiet", "--raw", tmp_path / "badge.png"], check=True, capture_output=True, text=True
    )
    return decoded.stdout.strip()


def check_mail_and_sms(stack: Stack, result: DemoResult) -> None:
    inbox = httpx.get(f"{stack.url('mail_web')}/api/messages", params={"to": "zhang.wei@"}, timeout=10).json()
    subjects = [m["subject"] for m in inbox if result.registration_ids[0] in m["subject"]]
    assert len(subjects) == len(NOTIFIED_STEPS)
    assert any("dispatched" in s for s in subjects)
    outbox = httpx.get(f"{stack.url('notification')}/v1/sms-outbox", timeout=10).json()
    texts = [m["text"] for m in outbox if result.registration_ids[0] in m["text"] or "B06-" in m["text"]]
    assert texts and all(t.startswith("【进博会】") for t in texts)


async def check_workflows(stack: Stack, result: DemoResult, personal: list[str]) -> None:
    client: Client = await connect(stack.settings)
    for rid in result.registration_ids:
        handle = client.get_workflow_handle(registration_workflow_id("ciie6", rid))
        description = await handle.describe()
        attributes = description.typed_search_attributes
        assert attributes.get(SA_STATUS) == "delivered"
        assert attributes.get(SA_EDITION) == "ciie6"
        assert attributes.get(SA_MISSION) == "shanghai"
        history = json.loads((await handle.fetch_history()).to_json())
        types = [event["eventType"] for event in history["events"]]
        assert "EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED" in types  # the personnel decision
        assert "EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED" in types  # unit approval, payment
        # At rest every payload is ciphertext: the server, its database and the UI without the codec
        # show no plaintext, not even the registration's id.
        raw = history_payloads(history)
        assert raw and all(p["metadata"]["encoding"] == ENCRYPTED for p in raw)
        assert rid not in payload_text(raw)
        decoded = payload_text(decoded_by_codec_endpoint(stack, raw))
        assert rid in decoded
        for secret in personal:  # names, ID numbers, phones never travel through Temporal
            assert secret not in decoded
    query = 'ExpoEdition="ciie6" AND ExpoMission="shanghai" AND ExpoStatus="delivered"'
    found = {wf.id async for wf in client.list_workflows(query)}
    assert {registration_workflow_id("ciie6", rid) for rid in result.registration_ids} <= found


async def test_demo_carries_two_buyers_to_delivered_certificates(stack: Stack, tmp_path: Path) -> None:
    result, printed = run_demo(stack)
    for rid in result.registration_ids:
        assert f"Timeline of {rid} — now: Delivered" in printed
    check_databases(stack, result)
    badges = check_object_store(stack, result)
    check_mail_and_sms(stack, result)

    code = admission_code_of(badges[0], tmp_path)
    tampered = code[:-3] + ("AAA" if not code.endswith("AAA") else "BBB")
    async with httpx.AsyncClient(base_url=stack.url("certificate"), timeout=10) as gate:
        assert (await gate.post("/v1/verify", json={"code": code})).json()["verdict"] == "valid"
        assert (await gate.post("/v1/verify", json={"code": tampered})).json()["verdict"] == "forged"

    person = rows(stack, "registration", "SELECT name, id_number, mobile FROM person_registrations WHERE id = :r",
                  r=result.registration_ids[0])[0]  # fmt: skip
    await check_workflows(stack, result, [person["name"], person["id_number"], person["mobile"]])


def test_a_restart_continues_open_workflows(tmp_path: Path) -> None:
    """Stop the stack while a unit awaits review; after a restart on the same data the decision
    reaches the registration that was waiting, which goes on to unpaid."""
    stack = Stack(tmp_path / "stack", free_ports(list(DEFAULT_PORTS)))
    with running(stack):
        s = stack.settings
        demo = Demo(s, out=io.StringIO(), timeout=60)
        login = demo.sign_up()
        unit = demo.call("POST", f"{s.registration_url}/v1/units", json={
            "kind": "enterprise", "name": "深圳前海贸易有限公司", "credit_code": demo_credit_code("440305"),
            "address": "深圳市南山区前海大道1号", "industry": "Trade",
            "contact": {"name": "陈先生", "mobile": "13800000000", "email": "contact@qianhai.example"},
            "mission": {"affiliation": "residence"},
        })  # fmt: skip
        assert unit["mission"] == "shenzhen"  # Shenzhen is its own mission, not Guangdong's
        person = demo.call("POST", f"{s.registration_url}/v1/units/{unit['id']}/people", json={
            "name": "陈晨", "id_type": "passport", "id_number": "E12345678", "mobile": "13911112222",
            "email": "chen@qianhai.example", "job_title": "Buyer", "personnel_label": "purchaser",
            "delivery_method": "mission_collection", "entrance_date": expo_day(s),
        })  # fmt: skip
    with running(stack):  # same data directory and ports; the login survives the restart too
        demo = Demo(stack.settings, out=io.StringIO(), timeout=60)
        demo.buyer = login
        demo.staff_login()
        demo.wait_in_queue("unit", unit["id"])
        demo.call("POST", f"{stack.settings.review_url}/v1/units/{unit['id']}/decision",
                  json={"decision": "approve"})  # fmt: skip
        unpaid = demo.wait_for(person["registration_id"], {RegistrationStatus.UNPAID})
        assert unpaid["deadline"]


@pytest.mark.postgres
async def test_demo_on_postgresql(postgres_stack: Stack, tmp_path: Path) -> None:
    result, _ = run_demo(postgres_stack)
    check_databases(postgres_stack, result)
    check_object_store(postgres_stack, result)
