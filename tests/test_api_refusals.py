"""Bad input gets a clear refusal (a 4xx with a code, and messages in Chinese and English where a
buyer sees them) and loses nothing that was already saved. Against the running stack."""

from __future__ import annotations

import asyncio
import io
import json
import secrets
from typing import Any

import httpx
import pytest
from PIL import Image

from deploy.local.demo import Demo, demo_credit_code, demo_id_number, demo_photo, expo_day
from deploy.local.stack import Stack
from shared import signing
from shared.db import utcnow
from shared.types import RegistrationStatus

pytestmark = pytest.mark.stack


def unit_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "enterprise", "name": "青岛海洋贸易有限公司", "credit_code": demo_credit_code("370212"),
        "address": "青岛市崂山区", "industry": "Trade",
        "contact": {"name": "赵", "mobile": "13800000001", "email": "zhao@haiyang.example"},
        "mission": {"affiliation": "residence"},
    }  # fmt: skip
    return body | changes


def person_body(stack: Stack, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "entrance_date": expo_day(stack.settings),
        "name": "赵敏", "id_type": "resident_id", "id_number": demo_id_number("19920101"),
        "mobile": "13900003333", "email": "zhao.min@haiyang.example", "job_title": "Buyer",
        "personnel_label": "purchaser", "delivery_method": "mission_collection",
    }  # fmt: skip
    return body | changes


def assert_refused(
    response: httpx.Response, status: int, code: str, field: str | None = None
) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["code"] == code and body["message"] and body["message_zh"]
    if field:
        assert body["field"] == field
    return body


def gif_photo() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (354, 472), (200, 200, 200)).save(out, "GIF")
    return out.getvalue()


def buyer(stack: Stack) -> httpx.Client:
    """A new unit account, logged in."""
    return httpx.Client(headers=Demo(stack.settings).sign_up(), timeout=30)


def test_registration_refusals_name_the_field_in_both_languages(stack: Stack) -> None:
    api, client = stack.settings.registration_url, buyer(stack)
    good = demo_credit_code("370212")
    bad_code = unit_body(credit_code=good[:-1] + ("0" if good[-1] != "0" else "1"))  # wrong check digit
    assert_refused(client.post(f"{api}/v1/units", json=bad_code), 422, "invalid_credit_code", "credit_code")
    missing = unit_body()
    del missing["contact"]
    body = assert_refused(client.post(f"{api}/v1/units", json=missing), 422, "invalid_input", "contact")
    assert "部分信息" in body["message_zh"]

    unit = client.post(f"{api}/v1/units", json=unit_body()).json()
    assert unit["mission"] == "qingdao"
    people = f"{api}/v1/units/{unit['id']}/people"
    first = person_body(stack)
    assert client.post(people, json=first).status_code == 201
    assert_refused(
        client.post(people, json=first), 409, "already_registered", "id_number"
    )  # once per edition
    assert_refused(
        client.post(people, json=person_body(stack, mobile="123")), 422, "invalid_mobile", "mobile"
    )
    assert_refused(
        client.post(people, json=person_body(stack, delivery_method="express")),
        422,
        "address_required",
        "delivery_address",
    )
    assert_refused(
        client.post(people, json=person_body(stack, delivery_method="onsite_pickup")),
        422,
        "onsite_pickup_overseas_only",
    )
    # Nothing that was saved was lost: the first person is still there, alone.
    members = httpx.get(
        f"{api}/internal/units/{unit['id']}/registrations",
        headers={"Authorization": f"Bearer {stack.settings.internal_token.get_secret_value()}"},
    ).json()["members"]
    assert len(members) == 1
    assert_refused(httpx.get(f"{api}/internal/units/{unit['id']}/registrations"), 401, "unauthorised")


def test_photos_are_checked_by_decoding_them(stack: Stack) -> None:
    api, client = stack.settings.registration_url, buyer(stack)
    unit = client.post(f"{api}/v1/units", json=unit_body()).json()
    person = client.post(f"{api}/v1/units/{unit['id']}/people", json=person_body(stack)).json()
    confirm = f"{api}/v1/registrations/{person['registration_id']}/photo-confirm"
    assert_refused(client.post(confirm), 409, "photo_missing", "photo")
    upload = person["photo_upload"]
    for content, code in [
        (b"%PDF-1.4 not a photo", "photo_unreadable"),
        (demo_photo("x", (200, 300)), "photo_too_small"),
        (gif_photo(), "photo_format"),
        (secrets.token_bytes(2 * 1024 * 1024 + 1), "photo_too_large"),
    ]:
        httpx.put(upload["url"], content=content, headers=upload["headers"]).raise_for_status()
        assert_refused(client.post(confirm), 422, code, "photo")
    httpx.put(upload["url"], content=demo_photo("ok"), headers=upload["headers"]).raise_for_status()
    assert client.post(confirm).json()["photo_uploaded"] is True


def test_staff_decisions_that_do_not_apply_are_refused_and_not_recorded(stack: Stack) -> None:
    api, review, client = stack.settings.registration_url, stack.settings.review_url, buyer(stack)
    unit = client.post(f"{api}/v1/units", json=unit_body()).json()
    demo = Demo(stack.settings, timeout=30)
    staff = httpx.Client(headers=demo.staff_login(), timeout=30)
    demo.wait_in_queue("unit", unit["id"])
    decide = f"{review}/v1/units/{unit['id']}/decision"
    assert_refused(httpx.post(decide, json={"decision": "approve"}), 401, "unauthenticated")
    assert_refused(staff.post(decide, json={"decision": "reject"}), 409, "reason_required")
    assert staff.get(f"{review}/v1/audit", params={"subject_id": unit["id"]}).json() == []
    assert staff.post(decide, json={"decision": "approve"}).json()["status"] == "approved"
    assert_refused(staff.post(decide, json={"decision": "approve"}), 409, "not_under_review")
    audit = staff.get(f"{review}/v1/audit", params={"subject_id": unit["id"]}).json()
    # The reviewer is the logged-in staff member, not a name the caller types.
    assert [(a["decision"], a["reviewer"], a["mission"]) for a in audit] == [
        ("approve", stack.settings.admin_login, "qingdao")
    ]
    assert_refused(staff.post(f"{review}/v1/units/UNOSUCHUNIT/decision", json={"decision": "approve"}),
                   404, "not_in_queue")  # fmt: skip


def test_forged_and_stale_gateway_callbacks_are_refused(stack: Stack) -> None:
    notify = f"{stack.settings.payment_url}/v1/gateway/notify"
    body = json.dumps({
        "merchant_id": stack.settings.gateway_merchant_id, "order_no": "PNOSUCHORDER", "transaction_id": "T1",
        "amount_fen": 40000, "paid_at": utcnow().isoformat(),
    }).encode()  # fmt: skip
    forged = signing.sign("not-the-gateway-key", body, utcnow())
    assert_refused(httpx.post(notify, content=body, headers=forged), 401, "bad_signature")
    stale = signing.sign(stack.settings.gateway_key.get_secret_value(), body, utcnow().replace(year=2023))
    assert_refused(httpx.post(notify, content=body, headers=stale), 401, "stale")
    assert_refused(httpx.post(notify, content=body), 401, "unsigned")


async def test_a_double_click_creates_one_order(stack: Stack) -> None:
    s = stack.settings
    demo = Demo(s, timeout=60)
    demo.sign_up()
    demo.staff_login()
    unit = demo.call("POST", f"{s.registration_url}/v1/units", json=unit_body())
    person = demo.call("POST", f"{s.registration_url}/v1/units/{unit['id']}/people", json=person_body(stack))
    demo.wait_in_queue("unit", unit["id"])
    demo.call(
        "POST",
        f"{s.review_url}/v1/units/{unit['id']}/decision",
        json={"decision": "approve"},
    )
    demo.wait_for(person["registration_id"], {RegistrationStatus.UNPAID})
    order = {"unit_id": unit["id"], "registration_ids": [person["registration_id"]]}
    async with httpx.AsyncClient(base_url=s.payment_url, headers=demo.buyer, timeout=30) as client:
        clicks = [
            client.post("/v1/orders", json=order, headers={"Idempotency-Key": f"click-{unit['id']}"})
            for _ in range(3)
        ]
        answers = await asyncio.gather(*clicks)
        assert {a.status_code for a in answers} <= {200, 201}
        assert len({a.json()["order_no"] for a in answers}) == 1
        assert answers[0].json()["amount_fen"] == 20000  # one person's standard fee, in fen
        other = await client.post("/v1/orders", json=order, headers={"Idempotency-Key": "another-click"})
        assert_refused(other, 409, "already_in_open_order", "registration_ids")
