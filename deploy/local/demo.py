"""One unit, two buyers, end to end against the running stack, every step a real HTTP call:

register the unit and its people (with photos) -> the mission approves the unit -> the unit pays by QR
code (the sandbox gateway calls back, signed) -> the mission passes both people -> the certificate
service makes the certificates and the courier (sandbox) delivers them, as its tracking shows. Then
each buyer's timeline is printed.

    expo-demo            # against ./expo start's stack (or the EXPO_* URLs in the environment)
"""

from __future__ import annotations

import io
import secrets
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
from PIL import Image, ImageDraw
from stdnum.cn import ric, uscc

from shared.catalogue import current_edition
from shared.settings import Settings, get_settings
from shared.types import RegistrationStatus

DONE = {RegistrationStatus.SHIPPED, RegistrationStatus.AWAITING_COLLECTION, RegistrationStatus.ONSITE_PICKUP}


def demo_credit_code(division: str = "310115") -> str:
    """A valid Unified Social Credit Code of an enterprise registered in ``division`` (default: Pudong,
    Shanghai)."""
    while True:
        body = "91" + division + "".join(secrets.choice("0123456789ABCDEFGHJKLMNPQRTUWXY") for _ in range(9))
        code = body + uscc.calc_check_digit(body)
        if uscc.is_valid(code):
            return code


def demo_id_number(birth: str) -> str:
    body = "310104" + birth + f"{secrets.randbelow(1000):03d}"  # born in Xuhui, Shanghai
    return body + ric.calc_check_digit(body + "0")  # stdnum expects a placeholder check digit


def demo_photo(label: str, size: tuple[int, int] = (354, 472)) -> bytes:
    """A passport-style JPEG (354×472 px is a 30×40 mm photo at 300 dpi)."""
    image = Image.new("RGB", size, (196, 214, 236))
    draw = ImageDraw.Draw(image)
    draw.ellipse((107, 70, 247, 230), fill=(238, 206, 170))
    draw.rectangle((77, 260, 277, 472), fill=(40, 60, 110))
    draw.text((10, 10), label, fill=(0, 0, 0))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


def expo_day(settings: Settings) -> str:
    """The expo's first day (Beijing date): the day of entrance the demo's buyers choose."""
    edition = current_edition(settings)
    return edition.local(edition.deadlines.expo_opens).date().isoformat()


@dataclass
class DemoResult:
    unit_id: str
    registration_ids: list[str]
    order_no: str
    timelines: dict[str, dict[str, Any]] = field(default_factory=dict)


class Demo:
    def __init__(self, settings: Settings, *, out: Any = sys.stdout, timeout: float = 90) -> None:
        self.s = settings
        self.http = httpx.Client(timeout=30)
        self.out = out
        self.timeout = timeout
        self.buyer: dict[str, str] = {}  # Authorization headers, once logged in
        self.staff: dict[str, str] = {}
        self.finance: dict[str, str] = {}  # for the payment service's finance routes: call(..., headers=)

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def call(self, method: str, url: str, **kwargs: Any) -> Any:
        """An API call as the buyer would make it, or as staff for the review service. ``headers``
        override the login's: ``headers=demo.finance`` calls the payment service as finance."""
        login = self.staff if url.startswith(self.s.review_url) else self.buyer
        kwargs["headers"] = login | kwargs.get("headers", {})
        response = self.http.request(method, url, **kwargs)
        if response.is_error:
            raise RuntimeError(f"{method} {url} -> {response.status_code}: {response.text}")
        return response.json() if response.content else None

    def wait_for(self, registration_id: str, statuses: set[RegistrationStatus]) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout
        while True:
            person: dict[str, Any] = self.call(
                "GET", f"{self.s.registration_url}/v1/registrations/{registration_id}"
            )
            if person["status"]["code"] in statuses:
                return person
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{registration_id} still {person['status']['code']}, waiting for {statuses}"
                )
            time.sleep(0.2)

    def wait_in_queue(self, kind: str, subject_id: str) -> None:
        """Until the subject shows in the mission's review queue, as staff would see it."""
        self.wait_until(
            lambda: any(
                task["subject_id"] == subject_id
                for task in self.call(
                    "GET", f"{self.s.review_url}/v1/queue", params={"kind": kind, "limit": 500}
                )
            ),
            f"{kind} {subject_id} in the review queue",
        )

    def wait_until(self, condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + self.timeout
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out waiting for {what}")
            time.sleep(0.2)

    def sign_up(self, kind: str = "unit", mobile: str = "13812345678") -> dict[str, str]:
        """A new buyer account, logged in: its Authorization header (the demo's buyer from now on)."""
        email = f"buyer-{secrets.token_hex(4)}@dongfang-trade.example"
        password = f"Expo-{secrets.token_urlsafe(12)}-2023"
        self.call("POST", f"{self.s.registration_url}/v1/accounts", json={
            "kind": kind, "email": email, "mobile": mobile, "password": password,
        })  # fmt: skip
        login = self.call(
            "POST", f"{self.s.registration_url}/v1/sessions", json={"login": email, "password": password}
        )
        self.buyer = {"Authorization": f"Bearer {login['token']}"}
        return self.buyer

    def _administrator_login(self) -> dict[str, str]:
        """A new login of the organiser's administrator at the review service: its Authorization header."""
        login = self.call("POST", f"{self.s.review_url}/v1/staff/sessions", json={
            "login": self.s.admin_login, "password": self.s.admin_password.get_secret_value(),
        })  # fmt: skip
        return {"Authorization": f"Bearer {login['token']}"}

    def staff_login(self) -> dict[str, str]:
        """The organiser's administrator, logged in to the review service: its Authorization header."""
        self.staff = self._administrator_login()
        return self.staff

    def finance_login(self) -> dict[str, str]:
        """The organiser's administrator, logged in for the payment service's finance routes (transfer
        queue and decisions): its Authorization header, to send with ``call(..., headers=...)``."""
        self.finance = self._administrator_login()
        return self.finance

    def run(self) -> DemoResult:
        reg, review, pay = self.s.registration_url, self.s.review_url, self.s.payment_url
        self.sign_up()
        self.staff_login()
        self.say("0. The unit's account signed up and logged in; so did the organiser's reviewer")
        unit = self.call("POST", f"{reg}/v1/units", json={
            "kind": "enterprise",
            "name": "上海东方国际贸易有限公司",
            "credit_code": demo_credit_code(),
            "address": "上海市浦东新区世纪大道100号",
            "industry": "批发和零售业 Wholesale and retail",
            "contact": {"name": "王芳", "mobile": "13812345678", "email": "contact@dongfang-trade.example"},
            "mission": {"affiliation": "residence"},
        })  # fmt: skip
        self.say(f"1. Unit {unit['id']} registered: mission {unit['mission']} / {unit['sub_mission']}")
        people = [
            (
                "张伟",
                "19850312",
                "13900001111",
                "zhang.wei@dongfang-trade.example",
                "采购经理 Purchasing manager",
            ),
            ("李娜", "19900728", "13900002222", "li.na@dongfang-trade.example", "采购专员 Buyer"),
        ]
        ids = []
        for name, birth, mobile, email, title in people:
            person = self.call("POST", f"{reg}/v1/units/{unit['id']}/people", json={
                "name": name, "id_type": "resident_id", "id_number": demo_id_number(birth),
                "mobile": mobile, "email": email, "job_title": title, "personnel_label": "purchaser",
                "delivery_method": "express", "entrance_date": expo_day(self.s),
                "delivery_address": {
                    "recipient": name, "mobile": mobile, "province": "上海市", "city": "上海市",
                    "district": "浦东新区", "detail": "世纪大道100号15楼", "postal_code": "200120",
                    "valid_for_six_months": True,
                },
            })  # fmt: skip
            upload = person["photo_upload"]
            self.http.put(
                upload["url"], content=demo_photo(name), headers=upload["headers"]
            ).raise_for_status()
            self.call("POST", f"{reg}/v1/registrations/{person['registration_id']}/photo-confirm")
            ids.append(person["registration_id"])
            self.say(f"2. {name} registered as {person['registration_id']} with a photo")
        self.wait_in_queue("unit", unit["id"])
        decision = self.call("POST", f"{review}/v1/units/{unit['id']}/decision", json={
            "decision": "approve",
        })  # fmt: skip
        self.say(f"3. The Shanghai mission approved the unit: {decision['status']}")
        for rid in ids:
            person = self.wait_for(rid, {RegistrationStatus.UNPAID})
            self.say(f"   {rid}: {person['status']['en']}, pay by {person['deadline']}")
        order = self.call(
            "POST", f"{pay}/v1/orders",
            json={"unit_id": unit["id"], "registration_ids": ids, "qr_channel": "wechat"},
            headers={"Idempotency-Key": f"demo-{unit['id']}"},
        )  # fmt: skip
        self.say(
            f"4. Order {order['order_no']}: {order['amount_fen'] / 100:.2f} yuan, QR {order['qr_payload']}"
        )
        paid = self.call("POST", order["qr_payload"])  # the buyer's phone scans and pays
        self.say(f"5. Paid through the gateway sandbox: transaction {paid['transaction_id']}")
        for rid in ids:
            self.wait_for(rid, {RegistrationStatus.TO_BE_REVIEWED})
        for rid in ids:
            decision = self.call("POST", f"{review}/v1/registrations/{rid}/decision", json={
                "decision": "approve",
            })  # fmt: skip
            self.say(f"6. Personnel review of {rid}: {decision['status']}")
        result = DemoResult(unit_id=unit["id"], registration_ids=ids, order_no=order["order_no"])
        for rid in ids:
            self.wait_for(rid, DONE)
            result.timelines[rid] = self.call("GET", f"{reg}/v1/registrations/{rid}/timeline")
        self.say("7. Certificates made and dispatched.")
        cert = self.s.certificate_url
        for rid in ids:
            card = self.call("GET", f"{cert}/v1/registrations/{rid}/certificate")
            self.say(
                f"   {rid}: card {card['certificate_no']}, {card['carrier']} waybill {card['tracking_no']}"
            )
        for rid in ids:
            self.wait_for(rid, {RegistrationStatus.DELIVERED})
            result.timelines[rid] = self.call("GET", f"{reg}/v1/registrations/{rid}/timeline")
            tracking = self.call("GET", f"{cert}/v1/registrations/{rid}/certificate/tracking")
            self.say(f"8. The courier delivered {tracking['certificate_no']} ({rid}):")
            for event in tracking["events"]:
                at = event["occurred_at"][:19].replace("T", " ")
                self.say(f"     {at}  {event['description_en']} {event['location'] or ''}".rstrip())
        self.say("")
        for rid, timeline in result.timelines.items():
            self.print_timeline(rid, timeline)
        ui = f"{self.s.temporal_ui_url}/namespaces/{self.s.temporal_namespace}/workflows"
        query = quote(f'ExpoEdition="{self.s.edition}" AND ExpoMission="{unit["mission"]}"')
        self.say(f"In the Temporal UI: {ui}?query={query}")
        return result

    def print_timeline(self, registration_id: str, timeline: dict[str, Any]) -> None:
        self.say(
            f"Timeline of {registration_id} — now: {timeline['status']['en']} ({timeline['status']['zh']})"
        )
        for step in timeline["steps"]:
            extra = ", ".join(f"{k}={v}" for k, v in step["detail"].items())
            self.say(f"  {step['at'][:19].replace('T', ' ')}  {step['status']['en']:<28} {extra}")
        if timeline["next_action"]:
            self.say(f"  next: {timeline['next_action']['en']}")
        self.say("")


def main() -> None:
    Demo(get_settings()).run()


if __name__ == "__main__":
    main()
