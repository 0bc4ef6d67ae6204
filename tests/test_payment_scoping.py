"""Who may call what in the payment API: every /v1 operation of its OpenAPI schema (but the gateway's
signed callback) needs a login; a buyer reaches their own unit's orders only (another unit's are 404,
as if they did not exist); the finance routes are for finance staff, administrators and (to read)
observers, and finance staff of one mission see that mission's transfers only.

The payment API runs in process on its own migrated SQLite database; the registration and review
services are stand-ins answering their session routes (tests/service_stand_ins.py: a buyer's token
``unit:<unit id>``, a staff token ``staff:<role>[:<mission>]``), mounted on the service's HTTP
client. Temporal is a lazily connected client: every call here is refused (or answered) before a
workflow would be asked. The real session routes of the registration and review services are
checked at the end, also through the payment service.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.payment import api as payment_api
from services.payment.models import OrderItem, PaymentOrder
from services.registration import api as registration_api
from services.review import api as review_api
from services.review.models import StaffRole
from shared import auth as shared_auth
from shared.db import utcnow
from shared.http import internal_headers
from shared.ids import new_id
from shared.records import BuyerSession, StaffSessionRecord
from shared.service import ServiceContext
from shared.settings import Settings
from shared.types import FeeKind, OrderStatus, PaymentMethod
from tests.service_env import buyer_headers, service_context, staff_headers
from tests.service_stand_ins import REGISTRATION, REVIEW, URLS, StandIns, bearer, staff, unit

PAYMENT = "http://payment.test"
FEE = 20000
ORDER_NO = "{order_no}"
CALLBACK = ("post", "/v1/gateway/notify")  # authenticated by its signature (tests/test_payment_service.py)

# Every operation of the API: who it is for, and a valid body. A new route must be added here.
OPERATIONS: dict[tuple[str, str], tuple[str, dict[str, Any] | None]] = {
    ("post", "/v1/orders"): ("buyer", {"unit_id": "UOTHER", "registration_ids": ["R1"]}),
    ("get", "/v1/orders/{order_no}"): ("buyer", None),
    ("post", "/v1/orders/{order_no}/voucher-upload"): ("buyer", {"content_type": "application/pdf"}),
    ("post", "/v1/orders/{order_no}/voucher"): ("buyer", {"voucher_key": "ciie6/P1/a.pdf"}),
    ("post", "/v1/orders/{order_no}/invoice"): (
        "buyer",
        {"kind": "special", "title": "青岛海洋贸易有限公司", "taxpayer_id": "91370212MA3C1234X5"},
    ),
    ("get", "/v1/orders/{order_no}/invoices"): ("buyer", None),
    ("get", "/v1/orders/{order_no}/ledger"): ("buyer", None),
    ("get", "/v1/invoices/{invoice_no}.pdf"): ("buyer", None),
    ("get", "/v1/transfers"): ("finance", None),
    ("get", "/v1/finance/orders"): ("finance", None),
    ("get", "/v1/finance/refunds"): ("finance", None),
    ("get", "/v1/finance/orders/{order_no}"): ("finance", None),
    ("get", "/v1/finance/units"): ("finance", None),
    ("get", "/v1/transfers/{order_no}/voucher"): ("finance", None),
    ("post", "/v1/orders/{order_no}/reconcile"): ("decision", None),
    ("post", "/v1/orders/{order_no}/transfer-decision"): (
        "decision",
        {"decision": "approve", "reviewer": "someone.else", "bank_reference": "ICBC0001"},
    ),
}


# ------------------------------------------------------------------------------------------ fixtures


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path,
        edition="ciie6",
        payment_url=PAYMENT,
        **URLS,
    )


@pytest.fixture
def sessions(settings: Settings) -> StandIns:
    return StandIns.fresh(settings)


@pytest.fixture
async def ctx(settings: Settings, sessions: StandIns) -> AsyncIterator[ServiceContext]:
    http = httpx.AsyncClient(mounts=sessions.mounts())
    async with service_context("payment", settings, http=http) as context:
        yield context
    shared_auth.clear_cache()


@pytest.fixture
async def api(ctx: ServiceContext) -> AsyncIterator[httpx.AsyncClient]:
    payment_api.app.state.ctx = ctx
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=payment_api.app), base_url=PAYMENT
    ) as client:
        yield client


async def add_order(ctx: ServiceContext, unit_id: str, mission: str) -> str:
    """A bank transfer order of ``unit_id`` whose voucher awaits finance, as the service stores it."""
    order_no = new_id("P")
    async with ctx.db.transaction() as session:
        session.add(
            PaymentOrder(
                order_no=order_no,
                edition="ciie6",
                unit_id=unit_id,
                mission=mission,
                method=PaymentMethod.TRANSFER,
                qr_channel=None,
                amount_fen=FEE,
                status=OrderStatus.AWAITING_CONFIRMATION,
                deadline=utcnow() + timedelta(days=10),
                voucher_key=f"ciie6/{order_no}/a.pdf",
                voucher_uploaded_at=utcnow(),
                items=[OrderItem(registration_id=new_id("R"), fee_kind=FeeKind.STANDARD, amount_fen=FEE)],
            )
        )
    return order_no


@dataclass
class Orders:
    shanghai: str  # unit USH's
    beijing: str  # unit UBJ's


@pytest.fixture
async def orders(ctx: ServiceContext) -> Orders:
    return Orders(
        shanghai=await add_order(ctx, "USH", "shanghai"), beijing=await add_order(ctx, "UBJ", "beijing")
    )


def operations() -> list[tuple[str, str]]:
    """Every /v1 operation in the payment API's OpenAPI schema but the gateway's callback."""
    paths: dict[str, dict[str, Any]] = payment_api.app.openapi()["paths"]
    found = [
        (method, path)
        for path, ops in paths.items()
        if path.startswith("/v1/")
        for method in ops
        if (method, path) != CALLBACK
    ]
    assert found, "the schema lists no operations"
    return found


async def call(
    api: httpx.AsyncClient, method: str, path: str, order_no: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    audience_body = OPERATIONS.get((method, path))
    assert audience_body is not None, f"{method.upper()} {path} is new: say who may call it in OPERATIONS"
    body = audience_body[1]
    return await api.request(
        method.upper(), path.replace(ORDER_NO, order_no), json=body, headers=headers or {}
    )


def assert_refused(response: httpx.Response, status: int, code: str, what: str) -> None:
    assert response.status_code == status, f"{what}: {response.status_code} {response.text}"
    body = response.json()
    assert body["code"] == code and body["message"] and body["message_zh"], (what, body)
    assert body["message"] != body["message_zh"], (what, "a Chinese message, not the English one again")


# ------------------------------------------------------------------------------------------ buyers


def test_every_operation_is_classified() -> None:
    assert sorted(operations()) == sorted(OPERATIONS), "OPERATIONS and the API's schema differ"


async def test_every_operation_refuses_a_caller_without_a_valid_login(
    api: httpx.AsyncClient, orders: Orders
) -> None:
    for method, path in operations():
        what = f"{method.upper()} {path}"
        assert_refused(await call(api, method, path, orders.shanghai), 401, "unauthenticated", what)
        for wrong in (bearer("not-a-token"), {"Authorization": "Basic dXNlcjpwYXNz"}):
            assert_refused(
                await call(api, method, path, orders.shanghai, wrong), 401, "unauthenticated", what
            )


async def test_another_units_buyer_finds_nothing(
    api: httpx.AsyncClient, orders: Orders, sessions: StandIns
) -> None:
    buyer = unit("USH")
    for method, path in operations():
        what = f"{method.upper()} {path}"
        audience = OPERATIONS[(method, path)][0]
        response = await call(api, method, path, orders.beijing, buyer)
        if audience == "buyer":
            assert_refused(response, 404, "not_found", what)  # another unit's order, or unit (UOTHER)
        else:
            assert response.status_code in (401, 403), f"{what}: {response.status_code} {response.text}"
    # An account that has not registered its unit owns no order at all.
    for method, path in operations():
        if OPERATIONS[(method, path)][0] == "buyer":
            response = await call(api, method, path, orders.shanghai, unit(""))
            assert_refused(response, 404, "not_found", f"{method.upper()} {path} without a unit")
    # The buyer's own order is there: the 404s above are the scope, not a broken route.
    own = await api.get(f"/v1/orders/{orders.shanghai}", headers=buyer)
    assert own.status_code == 200 and own.json()["unit_id"] == "USH", own.text
    invoices = await api.get(f"/v1/orders/{orders.shanghai}/invoices", headers=buyer)
    assert invoices.status_code == 200 and invoices.json() == []


async def test_buyer_sessions_are_cached_for_thirty_seconds_and_refusals_are_not(
    api: httpx.AsyncClient, orders: Orders, sessions: StandIns, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = f"/v1/orders/{orders.shanghai}"
    for _ in range(3):
        assert (await api.get(path, headers=unit("USH"))).status_code == 200
    assert sessions.buyer_lookups == ["unit:USH"]  # one round trip for three calls
    assert "unit:USH" not in str(shared_auth._buyer_cache)  # kept by the token's digest only

    sessions.refused_buyers.add("unit:USH")  # logged out: known within 30 seconds
    later = shared_auth._clock() + shared_auth.CACHE_SECONDS + 1
    monkeypatch.setattr(shared_auth, "_clock", lambda: later)
    assert_refused(await api.get(path, headers=unit("USH")), 401, "unauthenticated", "after logout")
    assert_refused(await api.get(path, headers=unit("USH")), 401, "unauthenticated", "again")
    assert sessions.buyer_lookups == ["unit:USH"] * 3  # a refusal is asked again every time


async def test_an_unreachable_registration_service_is_a_503_not_a_refusal(
    api: httpx.AsyncClient, orders: Orders, sessions: StandIns
) -> None:
    sessions.down = True
    response = await api.get(f"/v1/orders/{orders.shanghai}", headers=unit("USH"))
    assert_refused(response, 503, "registration_unavailable", "registration down")
    response = await api.get("/v1/transfers", headers=staff("administrator"))
    assert_refused(response, 503, "review_unavailable", "review down")


async def test_a_refused_service_token_is_a_503_not_the_buyers_fault(
    api: httpx.AsyncClient, orders: Orders, sessions: StandIns
) -> None:
    sessions.token = "another-token"  # the two services disagree on the service token
    response = await api.get(f"/v1/orders/{orders.shanghai}", headers=unit("USH"))
    assert_refused(response, 503, "registration_unavailable", "misconfigured")


# ------------------------------------------------------------------------------------------ finance


def finance_operations() -> list[tuple[str, str]]:
    return [op for op in operations() if OPERATIONS[op][0] in ("finance", "decision")]


async def test_finance_routes_refuse_buyers_and_mission_staff(api: httpx.AsyncClient, orders: Orders) -> None:
    assert finance_operations()
    for method, path in finance_operations():
        what = f"{method.upper()} {path}"
        # A buyer's login is no finance login: unknown to the review service, or a buyer's scope.
        refused = await call(api, method, path, orders.shanghai, unit("USH"))
        expected = (403, "finance_only") if path == "/v1/finance/orders" else (401, "unauthenticated")
        assert_refused(refused, *expected, what)
        mission_staff = staff(StaffRole.MISSION_STAFF.value, "shanghai")
        assert_refused(
            await call(api, method, path, orders.shanghai, mission_staff), 403, "finance_only", what
        )


async def test_observers_list_every_mission_but_decide_nothing(
    api: httpx.AsyncClient, orders: Orders
) -> None:
    observer = staff(StaffRole.OBSERVER.value)
    listed = await api.get("/v1/transfers", headers=observer)
    assert listed.status_code == 200, listed.text
    assert {o["order_no"] for o in listed.json()} >= {orders.shanghai, orders.beijing}
    for method, path in finance_operations():
        if OPERATIONS[(method, path)][0] == "decision":
            what = f"{method.upper()} {path}"
            assert_refused(await call(api, method, path, orders.shanghai, observer), 403, "read_only", what)


async def test_finance_staff_of_a_mission_see_and_decide_their_missions_transfers_only(
    api: httpx.AsyncClient, orders: Orders
) -> None:
    shanghai = staff(StaffRole.FINANCE.value, "shanghai")
    listed = await api.get("/v1/transfers", headers=shanghai)
    assert listed.status_code == 200, listed.text
    assert [o["order_no"] for o in listed.json()] == [orders.shanghai]
    for method, path in finance_operations():
        if OPERATIONS[(method, path)][0] == "decision":
            what = f"{method.upper()} {path}"
            assert_refused(await call(api, method, path, orders.beijing, shanghai), 404, "not_found", what)
    # Nor another mission's voucher (their own is in the store: tests/test_finance_pages.py).
    voucher = await api.get(f"/v1/transfers/{orders.beijing}/voucher", headers=shanghai)
    assert_refused(voucher, 404, "not_found", "another mission's voucher")

    for everyone in (staff(StaffRole.FINANCE.value), staff(StaffRole.ADMINISTRATOR.value)):
        listed = await api.get("/v1/transfers", headers=everyone)
        assert listed.status_code == 200, listed.text
        assert {o["order_no"] for o in listed.json()} == {orders.shanghai, orders.beijing}


# ------------------------------------------------------------------------------------------ the real session routes


@pytest.fixture
async def real_services(settings: Settings) -> AsyncIterator[tuple[ServiceContext, ServiceContext]]:
    """The registration and review services on their own migrated databases."""
    async with (
        service_context("registration", settings) as registration,
        service_context("review", settings) as review,
    ):
        registration_api.app.state.ctx = registration
        review_api.app.state.ctx = review
        yield registration, review


async def test_the_session_routes_answer_with_the_service_token_only(
    settings: Settings, real_services: tuple[ServiceContext, ServiceContext]
) -> None:
    registration, review = real_services
    buyer = (await buyer_headers(registration))["Authorization"]
    finance = (await staff_headers(review, StaffRole.FINANCE))["Authorization"]
    internal = internal_headers(settings)
    cases = [
        (registration_api.app, "/internal/sessions/current", "X-Buyer-Authorization", buyer),
        (review_api.app, "/internal/staff/sessions/current", "X-Staff-Authorization", finance),
    ]
    for app, path, header, token in cases:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://s.test"
        ) as client:
            # The caller's token alone is not enough: the route is internal.
            refused = await client.get(path, headers={"Authorization": token, header: token})
            assert refused.status_code == 401 and refused.json()["code"] == "unauthorised", refused.text
            unknown = await client.get(path, headers=internal | {header: "Bearer nobody"})
            assert unknown.status_code == 401 and unknown.json()["code"] == "unauthenticated", unknown.text
            missing = await client.get(path, headers=internal)
            assert missing.status_code == 401 and missing.json()["code"] == "unauthenticated", missing.text
            answered = await client.get(path, headers=internal | {header: token})
            assert answered.status_code == 200, answered.text
            if header == "X-Buyer-Authorization":
                assert BuyerSession.model_validate(answered.json()).unit_id is None
            else:
                record = StaffSessionRecord.model_validate(answered.json())
                assert (record.role, record.mission) == ("finance", None)


async def test_the_payment_service_asks_the_real_session_routes(
    settings: Settings, real_services: tuple[ServiceContext, ServiceContext]
) -> None:
    registration, review = real_services
    http = httpx.AsyncClient(
        mounts={
            REGISTRATION: httpx.ASGITransport(app=registration_api.app),
            REVIEW: httpx.ASGITransport(app=review_api.app),
        }
    )
    shared_auth.clear_cache()
    async with service_context("payment", settings, http=http) as ctx:
        shanghai = await add_order(ctx, "USH", "shanghai")
        payment_api.app.state.ctx = ctx
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=payment_api.app), base_url=PAYMENT
        ) as api:
            unitless = await buyer_headers(registration)
            assert_refused(
                await api.get(f"/v1/orders/{shanghai}", headers=unitless), 404, "not_found", "no unit"
            )
            finance = await staff_headers(review, StaffRole.FINANCE)
            listed = await api.get("/v1/transfers", headers=finance)
            assert listed.status_code == 200 and [o["order_no"] for o in listed.json()] == [shanghai]
            mission_staff = await staff_headers(review, StaffRole.MISSION_STAFF, "shanghai")
            assert_refused(await api.get("/v1/transfers", headers=mission_staff), 403, "finance_only", "")
            # A buyer's token is no staff token, and a staff token no buyer's.
            assert_refused(await api.get("/v1/transfers", headers=unitless), 401, "unauthenticated", "")
            assert_refused(
                await api.get(f"/v1/orders/{shanghai}", headers=finance), 401, "unauthenticated", ""
            )
    shared_auth.clear_cache()
