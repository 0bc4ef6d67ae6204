"""The lifecycle's branches through the real services and workflows, every step a real HTTP call:
withdrawal, changes of personal data (and their refusal after the pass), a bank transfer rejected and
then confirmed by finance, and an organiser's deadline extension reaching a waiting registration."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from deploy.local.demo import Demo, demo_credit_code, demo_id_number, expo_day
from deploy.local.stack import Stack
from shared.http import internal_headers
from shared.types import RegistrationStatus as S

pytestmark = pytest.mark.stack


def person(stack: Stack, name: str, birth: str, mobile: str) -> dict[str, Any]:
    return {
        "entrance_date": expo_day(stack.settings),
        "name": name, "id_type": "resident_id", "id_number": demo_id_number(birth), "mobile": mobile,
        "email": f"{mobile}@jiangsu-trade.example", "job_title": "Buyer", "personnel_label": "purchaser",
        "delivery_method": "mission_collection",
    }  # fmt: skip


def refused(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["code"] == code and body["message"] and body["message_zh"], body
    return body


def steps(demo: Demo, registration_id: str) -> list[str]:
    timeline = demo.call("GET", f"{demo.s.registration_url}/v1/registrations/{registration_id}/timeline")
    return [step["step"] for step in timeline["steps"]]


def test_withdrawal_changes_transfer_and_extension_through_the_services(stack: Stack) -> None:
    demo = Demo(stack.settings, timeout=60)
    demo.sign_up()
    demo.staff_login()
    demo.finance_login()
    reg, review, pay = stack.settings.registration_url, stack.settings.review_url, stack.settings.payment_url
    unit = demo.call("POST", f"{reg}/v1/units", json={
        "kind": "enterprise", "name": "南京江海贸易有限公司", "credit_code": demo_credit_code("320105"),
        "address": "南京市建邺区", "industry": "Trade",
        "contact": {"name": "周", "mobile": "13800000002", "email": "zhou@jiangsu-trade.example"},
        "mission": {"affiliation": "residence"},
    })  # fmt: skip
    leaving, paying, changing = (
        demo.call("POST", f"{reg}/v1/units/{unit['id']}/people", json=body)["registration_id"]
        for body in (
            person(stack, "钱进", "19800101", "13900004441"),
            person(stack, "孙莉", "19850202", "13900004442"),
            person(stack, "吴昊", "19900303", "13900004443"),
        )
    )
    demo.wait_in_queue("unit", unit["id"])
    demo.call("POST", f"{review}/v1/units/{unit['id']}/decision", json={"decision": "approve"})
    for rid in (leaving, paying, changing):
        demo.wait_for(rid, {S.UNPAID})

    # Withdrawal before payment: the registration ends, and says so.
    withdrawn = demo.call("POST", f"{reg}/v1/registrations/{leaving}/withdraw", json={})
    assert withdrawn["status"]["code"] == "withdrawn"
    demo.wait_for(leaving, {S.WITHDRAWN})
    assert steps(demo, leaving)[-1] == "withdrawn"

    # The organiser extends QR/B2B payment by a week: the waiting registrations hear of it at once.
    current = demo.call("GET", f"{reg}/v1/editions/{stack.settings.edition}/payment-deadlines")
    later = datetime.fromisoformat(current["qr"]["utc"]) + timedelta(days=7)
    extended = demo.call(
        "POST",
        f"{reg}/v1/editions/{stack.settings.edition}/payment-deadlines",
        json={
            "qr": later.isoformat(),
            "b2b": later.isoformat(),
            "extended_by": "organiser",
            "reason": "demand",
        },
        headers=internal_headers(stack.settings),
    )
    assert datetime.fromisoformat(extended["qr"]["utc"]) == later
    demo.wait_until(lambda: "deadline_extended" in steps(demo, changing), "the extension on the timeline")

    # A bank transfer: voucher to the object store, finance rejects it, then confirms a new one.
    order = demo.call("POST", f"{pay}/v1/orders", json={
        "unit_id": unit["id"], "registration_ids": [paying], "method": "transfer",
    })  # fmt: skip
    assert order["qr_payload"] is None
    for attempt in ("first", "second"):
        upload = demo.call("POST", f"{pay}/v1/orders/{order['order_no']}/voucher-upload", json={})
        demo.http.put(
            upload["url"], content=b"%PDF-1.4 remittance " + attempt.encode(), headers=upload["headers"]
        ).raise_for_status()
        submitted = demo.call(
            "POST",
            f"{pay}/v1/orders/{order['order_no']}/voucher",
            json={"voucher_key": upload["voucher_key"]},
        )
        assert submitted["status"] == "awaiting_confirmation"
        demo.wait_for(paying, {S.AWAITING_TRANSFER_CONFIRMATION})
        waiting = demo.call("GET", f"{pay}/v1/transfers", headers=demo.finance)
        assert order["order_no"] in {o["order_no"] for o in waiting}
        if attempt == "first":
            refused(
                demo.http.post(f"{reg}/v1/registrations/{paying}/withdraw", json={}, headers=demo.buyer),
                409,
                "transfer_being_confirmed",
            )
            demo.call("POST", f"{pay}/v1/orders/{order['order_no']}/transfer-decision", json={
                "decision": "reject", "reason": "汇款金额不符 amount differs",
            }, headers=demo.finance)  # fmt: skip
            unpaid = demo.wait_for(paying, {S.UNPAID})
            assert unpaid["status"]["code"] == "unpaid"
    confirmed = demo.call("POST", f"{pay}/v1/orders/{order['order_no']}/transfer-decision", json={
        "decision": "approve", "bank_reference": "BOC-20231012-77",
    }, headers=demo.finance)  # fmt: skip
    assert confirmed["status"] == "paid"
    demo.wait_for(paying, {S.TO_BE_REVIEWED})
    assert steps(demo, paying)[-4:] == ["voucher_uploaded", "transfer_rejected", "voucher_uploaded", "paid"]
    paid_order = demo.call("GET", f"{pay}/v1/orders/{order['order_no']}")
    assert paid_order["transaction_id"] == "BOC-20231012-77"
    assert [d["decision"] for d in paid_order["transfer_decisions"]] == ["reject", "approve"]
    assert {d["reviewer"] for d in paid_order["transfer_decisions"]} == {stack.settings.admin_login}

    # Personal data change before the review; once the review passes, changes and refunds are refused.
    change = {k: v for k, v in person(stack, "吴昊", "19900303", "13900004449").items() if k in CHANGEABLE}
    changed = demo.call("PUT", f"{reg}/v1/registrations/{changing}", json=change)
    assert changed["registration_id"] == changing
    assert steps(demo, changing)[-1] == "person_changed"
    demo.wait_in_queue("person", paying)
    demo.call("POST", f"{review}/v1/registrations/{paying}/decision", json={"decision": "approve"})
    demo.wait_for(paying, {S.AWAITING_COLLECTION})
    refused(
        demo.http.put(f"{reg}/v1/registrations/{paying}", json=change, headers=demo.buyer),
        409,
        "certificate_in_production",
    )
    refused(
        demo.http.post(f"{reg}/v1/registrations/{paying}/withdraw", json={}, headers=demo.buyer),
        409,
        "certificate_in_production",
    )


CHANGEABLE = {"name", "mobile", "email", "job_title", "personnel_label", "delivery_address", "entrance_date"}
