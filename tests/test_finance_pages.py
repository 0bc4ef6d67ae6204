"""The finance pages (``/finance``) and the JSON routes they read, in process.

The payment app serves the pages; they call its public API over HTTP at ``settings.payment_url`` as any
client would, with a staff token of the review service, which runs for real on its own migrated SQLite
database (the login, ``/v1/staff/me``, and the session route the payment API asks). So does the
registration service (the units as registered, which say who paid; buyers' sessions); the notification
service is a stand-in (tests/service_stand_ins.py), the gateway is the sandbox (in process), vouchers and invoices are in a real SeaweedFS
(tests/object_store.py). Orders' workflows are the real ones on the time-skipping server with fake
services (tests/workflow_env.py), so a decision sent from a page reaches the order's workflow, whose
validators accept or refuse it; the payment service's tables are filled as its activities would.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.exceptions import ApplicationError

from services.payment import api as payment_api
from services.payment import sandbox_gateway
from services.payment.activities import PaymentActivities, gateway_for
from services.payment.models import GatewayTransaction, OrderItem, PaymentOrder
from services.registration import api as registration_api
from services.registration.models import PersonRegistration
from services.registration.models import Unit as UnitRow
from services.review import api as review_api
from services.review.models import StaffRole
from shared import auth as shared_auth
from shared import contracts as c
from shared.db import utcnow
from shared.ids import new_id
from shared.service import ServiceContext
from shared.settings import Settings
from shared.types import (
    Affiliation,
    DeliveryMethod,
    FeeKind,
    IdType,
    OrderStatus,
    PaymentMethod,
    QrChannel,
    RegistrationStatus,
    UnitKind,
    UnitStatus,
)
from tests.object_store import SeaweedFS
from tests.page_env import CSRF, add_staff, page_browser, text_of
from tests.service_env import buyer_headers, service_context
from tests.service_stand_ins import REGISTRATION, REVIEW, URLS, StandIns
from tests.workflow_world import (
    FEE_FEN,
    MISSION,
    Order,
    World,
    approved_unit_with_unpaid,
    order_status,
)

PAYMENT, GATEWAY = "http://payment.test", "http://gateway.test"
OTHER = "beijing"  # the other mission (the workflows' is MISSION, shanghai)
PASSWORD = "finance-Pass-2023"
VOUCHER = b"%PDF-1.4\n% remittance voucher of the test\n"
INVOICE = {"kind": "regular", "title": "青岛海洋贸易有限公司", "taxpayer_id": "91370212MA3C1234X5"}


# ------------------------------------------------------------------------------------------ the world


@dataclass
class Finance:
    world: World
    payment: ServiceContext
    review: ServiceContext
    registration: ServiceContext
    seaweedfs: SeaweedFS
    transfer: Order  # own mission, its voucher awaiting finance (a real workflow)
    other_transfer: str  # the other mission's transfer awaiting finance (no workflow), an overseas unit's
    other_unit: str
    voucher_keys: list[str]  # own transfer's, the other's

    def browser(self, token: str | None = None) -> httpx.AsyncClient:
        """A browser on the payment app: the finance cookie (if logged in) and a form token."""
        return page_browser(payment_api.app, PAYMENT, "expo_finance", token)

    async def staff(self, role: StaffRole, mission: str | None = None) -> tuple[str, str]:
        """A review-service staff account with PASSWORD, logged in: (login, token)."""
        async with self.review.db.transaction() as session:
            return await add_staff(session, role, mission, PASSWORD)

    async def buyer(self, unit_id: str) -> dict[str, str]:
        """A buyer of ``unit_id``, logged in at the registration service: the Authorization header."""
        return await buyer_headers(self.registration, unit_id=unit_id)

    async def register(self, unit_id: str, mission: str, people: list[str], **unit: str | None) -> None:
        """The unit and its people as the registration service has them (who paid)."""
        await register(self.registration, unit_id, mission, people, **unit)


def unit_name(unit_id: str) -> str:
    return f"上海测试贸易有限公司 {unit_id}"


def credit_code(unit_id: str) -> str:
    """A unified social credit code of its own for each unit (one unit per code and edition)."""
    return f"9131{unit_id}".ljust(18, "0")[:18]


def person_name(registration_id: str) -> str:
    return f"李明 {registration_id}"


async def register(
    ctx: ServiceContext, unit_id: str, mission: str, people: list[str], **unit: str | None
) -> None:
    """A unit of the Chinese mainland (``credit_code``) unless ``unit`` says otherwise, with its people."""
    fields: dict[str, str | None] = {"credit_code": credit_code(unit_id), "country": "CN", **unit}
    async with ctx.db.transaction() as session:
        session.add(
            UnitRow(
                id=unit_id, edition="ciie6", kind=UnitKind.ENTERPRISE, affiliation=Affiliation.RESIDENCE,
                name=unit_name(unit_id), address="上海市黄浦区中山东一路1号", industry="贸易",
                contact_name="王芳", contact_mobile="+8613900000000", contact_email="wang@example.com",
                mission=mission, sub_mission=None, statistics_mission=mission, statistics_sub_mission=None,
                status=UnitStatus.APPROVED, workflow_id=f"unit-ciie6-{unit_id}", **fields,
            )
        )  # fmt: skip
        await session.flush()
        session.add_all(
            PersonRegistration(
                id=rid, edition="ciie6", unit_id=unit_id, name=person_name(rid), id_type=IdType.PASSPORT,
                id_number=f"E{rid}", nationality="CN", mobile="+8613900000001", email="li@example.com",
                job_title="采购经理", personnel_label="purchaser", delivery_method=DeliveryMethod.EXPRESS,
                status=RegistrationStatus.UNPAID, workflow_id=f"registration-ciie6-{rid}",
            )
            for rid in people
        )  # fmt: skip


async def put_voucher(ctx: ServiceContext, order_no: str) -> str:
    """A voucher of the order in the store, under a key as the upload route gives: its key."""
    key = f"ciie6/{order_no}/{secrets.token_hex(8)}.pdf"
    await ctx.store.put(ctx.settings.bucket_vouchers, key, VOUCHER, "application/pdf")
    return key


async def add_order(
    ctx: ServiceContext,
    order_no: str,
    unit_id: str,
    mission: str,
    registration_ids: list[str],
    *,
    method: PaymentMethod = PaymentMethod.TRANSFER,
    voucher_key: str | None = None,
) -> None:
    """The order as ``POST /v1/orders`` stores it, with its voucher as RECORD_VOUCHER records it."""
    async with ctx.db.transaction() as session:
        session.add(
            PaymentOrder(
                order_no=order_no, edition="ciie6", unit_id=unit_id, mission=mission, method=method,
                qr_channel=QrChannel.UNIONPAY if method is PaymentMethod.QR else None,
                amount_fen=FEE_FEN * len(registration_ids),
                status=OrderStatus.AWAITING_CONFIRMATION if voucher_key else OrderStatus.AWAITING_PAYMENT,
                deadline=utcnow() + timedelta(days=10), voucher_key=voucher_key,
                voucher_uploaded_at=utcnow() if voucher_key else None,
                items=[
                    OrderItem(registration_id=rid, fee_kind=FeeKind.STANDARD, amount_fen=FEE_FEN)
                    for rid in registration_ids
                ],
            )
        )  # fmt: skip


@pytest.fixture
def settings(tmp_path: Path, seaweedfs: SeaweedFS) -> Settings:
    return Settings(
        **seaweedfs.settings,
        data_dir=tmp_path,
        edition="ciie6",
        gateway_url=GATEWAY,
        payment_url=PAYMENT,
        **URLS,
    )


@pytest.fixture
async def finance(
    world: World, seaweedfs: SeaweedFS, settings: Settings, sandbox: sandbox_gateway.SandboxState
) -> AsyncIterator[Finance]:
    stand_ins = StandIns.fresh(settings)
    # The services reach each other (and the pages their own API) over HTTP, in process; the review and
    # registration services are the real ones (staff logins; units, buyers), notification a stand-in.
    http = httpx.AsyncClient(
        mounts={
            **stand_ins.mounts(),
            REVIEW: httpx.ASGITransport(app=review_api.app),
            REGISTRATION: httpx.ASGITransport(app=registration_api.app),
            PAYMENT: httpx.ASGITransport(app=payment_api.app),
            GATEWAY: httpx.ASGITransport(app=sandbox_gateway.app),
        }
    )
    async with (
        service_context("review", settings) as review,
        service_context("registration", settings, temporal=world.client) as registration,
        service_context(
            "payment", settings, temporal=world.client, http=http, store=seaweedfs.store
        ) as payment,
    ):
        review_api.app.state.ctx = review
        registration_api.app.state.ctx = registration
        payment_api.app.state.ctx = payment
        # Own mission: a unit's transfer whose voucher the order's workflow took.
        own_unit, (person,) = await approved_unit_with_unpaid(world)
        transfer = await world.start_order(
            own_unit, [person], method=PaymentMethod.TRANSFER, deadline_in=timedelta(days=10)
        )
        key = await put_voucher(payment, transfer.no)
        assert (await transfer.upload_voucher(key)).status == OrderStatus.AWAITING_CONFIRMATION
        await add_order(payment, transfer.no, own_unit.id, MISSION, [person.id], voucher_key=key)
        await register(registration, own_unit.id, MISSION, [person.id])
        # The other mission's transfer, in the tables only: an overseas unit's.
        other, other_unit, other_person = new_id("P"), new_id("U"), new_id("R")
        other_key = await put_voucher(payment, other)
        await add_order(payment, other, other_unit, OTHER, [other_person], voucher_key=other_key)
        await register(
            registration, other_unit, OTHER, [other_person],
            credit_code=None, foreign_registration_no="HRB 123456", country="DE",
        )  # fmt: skip
        found = Finance(
            world, payment, review, registration, seaweedfs, transfer, other, other_unit, [key, other_key]
        )
        yield found
    await http.aclose()
    for key in found.voucher_keys:
        seaweedfs.delete(settings.bucket_vouchers, key)
    shared_auth.clear_cache()


# ------------------------------------------------------------------------------------------ login


async def test_login_sets_an_httponly_cookie_and_every_page_needs_it(finance: Finance) -> None:
    login, _ = await finance.staff(StaffRole.FINANCE)
    async with finance.browser() as browser:
        for url in (
            "/finance",
            "/finance/orders",
            f"/finance/orders/{finance.transfer.no}",
            "/finance/refunds",
        ):
            sent = await browser.get(url)
            assert sent.status_code == 303, url
            assert sent.headers["location"].startswith("/finance/login?next="), url
        form = await browser.get("/finance/login", params={"next": "/finance/refunds", "lang": "en"})
        assert form.status_code == 200 and "Finance login" in form.text
        assert f'name="csrf" value="{CSRF}"' in form.text

        wrong = await browser.post(
            "/finance/login", data={"csrf": CSRF, "login": login, "password": "wrong-password-1"}
        )
        assert wrong.status_code == 401 and text_of(wrong.text, "form-error") == "wrong login or password"
        assert "expo_finance" not in browser.cookies

        done = await browser.post(
            "/finance/login",
            data={"csrf": CSRF, "login": login, "password": PASSWORD, "next": "/finance/refunds"},
        )
        assert done.status_code == 303 and done.headers["location"] == "/finance/refunds"
        cookie = done.headers["set-cookie"]
        # Its own cookie: the console's (expo_staff) is another site's, on another port of the host.
        assert cookie.startswith("expo_finance=") and "HttpOnly" in cookie and "Max-Age=28800" in cookie
        refunds = await browser.get("/finance/refunds")
        assert refunds.status_code == 200 and '<html lang="en">' in refunds.text  # the language kept
        assert text_of(refunds.text, "who") == f"Logged in as {login} · Finance"
        chinese = await browser.get("/finance", params={"lang": "zh"})
        assert '<html lang="zh-CN">' in chinese.text and "银行转账确认" in chinese.text

        elsewhere = await browser.post(
            "/finance/login",
            data={"csrf": CSRF, "login": login, "password": PASSWORD, "next": "//evil.example/finance"},
        )
        assert elsewhere.headers["location"] == "/finance"

        last = browser.cookies["expo_finance"]
        out = await browser.post("/finance/logout", data={"csrf": CSRF})
        assert out.status_code == 303 and out.headers["location"] == "/finance/login"
        assert "expo_finance" not in browser.cookies
        browser.cookies.set("expo_finance", last)  # a copy kept of the token: revoked at the review service
        assert (await browser.get("/finance")).status_code == 303


async def test_staff_of_other_services_are_not_let_in(finance: Finance) -> None:
    _, token = await finance.staff(StaffRole.MISSION_STAFF, MISSION)
    async with finance.browser(token) as browser:
        page = await browser.get("/finance", params={"lang": "en"})
        assert page.status_code == 403 and text_of(page.text, "error-title") == "Not allowed"
        assert "finance staff" in (text_of(page.text, "error-message") or "")
        assert 'id="logout-form"' in page.text  # logged in all the same: they may log out


# ------------------------------------------------------------------------------------------ transfers


async def test_the_transfer_list_shows_each_transfer_and_its_voucher_opens(finance: Finance) -> None:
    _, token = await finance.staff(StaffRole.ADMINISTRATOR)
    own, other = finance.transfer.no, finance.other_transfer
    async with finance.browser(token) as browser:
        page = await browser.get("/finance", params={"lang": "en"})
        assert page.status_code == 200
        for order_no in (own, other):
            assert text_of(page.text, f"transfer-{order_no}-amount") == "CNY 500.00"
            assert f'href="/finance/transfers/{order_no}/voucher"' in page.text
            assert (
                f'id="decision-{order_no}"' in page.text and f'id="f-{order_no}-bank_reference"' in page.text
            )
        own_unit = finance.transfer.start.unit_id  # each transfer says who paid: the unit's name
        assert text_of(page.text, f"transfer-{own}-unit") == f"{unit_name(own_unit)} {own_unit}"

        voucher = await browser.get(f"/finance/transfers/{own}/voucher")
        assert voucher.status_code == 200 and voucher.content == VOUCHER
        assert voucher.headers["content-type"] == "application/pdf"
        assert voucher.headers["content-disposition"].startswith("inline")
        assert voucher.headers["x-content-type-options"] == "nosniff"
        # Only a key the order names: another order's voucher is not reachable through this one.
        stolen = await browser.get(
            f"/finance/transfers/{own}/voucher", params={"key": finance.voucher_keys[1], "lang": "en"}
        )
        assert stolen.status_code == 404 and text_of(stolen.text, "error-title") == "Not found"
        browser.cookies.delete("expo_finance")
        assert (await browser.get(f"/finance/transfers/{own}/voucher")).status_code == 303
    # The pages are not the API: its schema (which the permission tests walk) has none of them.
    assert not [path for path in payment_api.app.openapi()["paths"] if path.startswith("/finance")]


async def test_a_confirmation_needs_the_banks_reference_and_then_reaches_the_order(finance: Finance) -> None:
    login, token = await finance.staff(StaffRole.FINANCE, MISSION)
    order_no = finance.transfer.no
    async with finance.browser(token) as browser:
        refused = await browser.post(
            f"/finance/transfers/{order_no}/decision?lang=en",
            data={"csrf": CSRF, "decision": "approve", "bank_reference": "  ", "reason": "kept"},
        )
        assert refused.status_code == 409
        assert (
            text_of(refused.text, f"f-{order_no}-bank_reference-error")
            == "a confirmation needs the bank's transaction reference"
        )
        assert re.search(rf'<input id="f-{order_no}-bank_reference"[^>]*aria-invalid="true"', refused.text)
        assert text_of(refused.text, f"f-{order_no}-reason") == "kept"  # what was typed stays
        chinese = await browser.post(
            f"/finance/transfers/{order_no}/decision?lang=zh", data={"csrf": CSRF, "decision": "approve"}
        )
        assert text_of(chinese.text, f"f-{order_no}-bank_reference-error") == "确认转账时须填写银行交易流水号"
        no_reason = await browser.post(
            f"/finance/transfers/{order_no}/decision?lang=en", data={"csrf": CSRF, "decision": "reject"}
        )
        assert text_of(no_reason.text, f"f-{order_no}-reason-error") == "a rejection needs a reason"
        stale = await browser.post(
            f"/finance/transfers/{order_no}/decision", data={"csrf": "stale", "decision": "approve"}
        )
        assert stale.status_code == 403 and text_of(stale.text, f"f-{order_no}-decision-error")
        assert (await finance.transfer.progress()).status is OrderStatus.AWAITING_CONFIRMATION

        done = await browser.post(
            f"/finance/transfers/{order_no}/decision",
            data={"csrf": CSRF, "decision": "approve", "bank_reference": " ICBC20231010000123 "},
        )
        assert done.status_code == 303
        assert done.headers["location"] == f"/finance?decided={order_no}&now=paid"
        await order_status(finance.transfer, OrderStatus.PAID)
        (recorded,) = finance.world.services.transfer_decisions
        assert (recorded.reviewer, recorded.bank_reference) == (login, "ICBC20231010000123")
        after = await browser.get(done.headers["location"] + "&lang=en")
        assert f"Order {order_no} decided. Status now: Paid" in after.text


# ------------------------------------------------------------------------------------------ roles and missions


async def test_observers_read_everything_and_see_no_forms(finance: Finance) -> None:
    _, token = await finance.staff(StaffRole.OBSERVER)
    order_no = finance.transfer.no
    async with finance.browser(token) as browser:
        page = await browser.get("/finance", params={"lang": "en"})
        assert page.status_code == 200 and 'class="decision"' not in page.text
        assert text_of(page.text, f"transfer-{order_no}-read-only")
        assert text_of(page.text, f"transfer-{finance.other_transfer}-read-only")
        order = await browser.get(f"/finance/orders/{order_no}", params={"lang": "en"})
        assert order.status_code == 200 and 'id="reconcile-form"' not in order.text
        assert text_of(order.text, "reconcile-read-only")
        # A form posted anyway is the API's to refuse, and the page says so.
        refused = await browser.post(
            f"/finance/transfers/{order_no}/decision?lang=en",
            data={"csrf": CSRF, "decision": "approve", "bank_reference": "ICBC1"},
        )
        assert refused.status_code == 403 and "observers" in (
            text_of(refused.text, f"f-{order_no}-decision-error") or ""
        )
        reconcile = await browser.post(f"/finance/orders/{order_no}/reconcile?lang=en", data={"csrf": CSRF})
        assert reconcile.status_code == 403 and text_of(reconcile.text, "f-reconcile-error")
    assert (await finance.transfer.progress()).status is OrderStatus.AWAITING_CONFIRMATION


async def test_a_missions_finance_staff_do_not_see_another_missions_orders(finance: Finance) -> None:
    _, token = await finance.staff(StaffRole.FINANCE, MISSION)
    own, other = finance.transfer.no, finance.other_transfer
    async with finance.browser(token) as browser:
        page = await browser.get("/finance")
        assert text_of(page.text, f"transfer-{own}") and text_of(page.text, f"transfer-{other}") is None
        for url in (f"/finance/orders/{other}", f"/finance/transfers/{other}/voucher"):
            refused = await browser.get(url, params={"lang": "en"})
            assert refused.status_code == 404 and text_of(refused.text, "error-title") == "Not found", url
        for url in (f"/finance/transfers/{other}/decision", f"/finance/orders/{other}/reconcile"):
            posted = await browser.post(
                url, data={"csrf": CSRF, "decision": "approve", "bank_reference": "ICBC1"}
            )
            assert posted.status_code == 404, url
        refunds = await browser.get("/finance/refunds", params={"order_no": other, "lang": "en"})
        assert refunds.status_code == 200 and text_of(refunds.text, "refunds-empty")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=payment_api.app),
        base_url=PAYMENT,
        headers={"Authorization": f"Bearer {token}"},
    ) as api:
        voucher = await api.get(f"/v1/transfers/{other}/voucher")
        assert voucher.status_code == 404 and voucher.json()["code"] == "not_found"
        assert (await api.get(f"/v1/transfers/{own}/voucher")).content == VOUCHER


# ------------------------------------------------------------------------------------------ money


async def test_the_ledger_shows_payments_refunds_and_invoices(finance: Finance) -> None:
    """A QR payment whose callback was lost, taken in by reconciling from the order's page; a refund the
    gateway refused once, then made; the invoice and its red-letter reversal, each PDF a link."""
    world, ctx = finance.world, finance.payment
    _, admin = await finance.staff(StaffRole.ADMINISTRATOR)
    buyer_unit, (person,) = await approved_unit_with_unpaid(world)
    order = await world.start_order(buyer_unit, [person], deadline_in=timedelta(days=5))
    await add_order(ctx, order.no, buyer_unit.id, MISSION, [person.id], method=PaymentMethod.QR)
    await finance.register(buyer_unit.id, MISSION, [person.id])
    gateway = gateway_for(ctx)
    qr = await gateway.create_qr(
        order_no=order.no, amount_fen=FEE_FEN, channel=QrChannel.UNIONPAY, notify_url=f"{PAYMENT}/cb"
    )
    paid = await ctx.http.post(f"{GATEWAY}/v1/pay/{qr.payload.rsplit('/', 1)[-1]}", params={"lost": "true"})
    transaction_id = paid.json()["transaction_id"]

    async with finance.browser(admin) as browser:
        before = await browser.get(f"/finance/orders/{order.no}", params={"lang": "en"})
        assert before.status_code == 200 and text_of(before.text, f"entry-{transaction_id}") is None
        reconciled = await browser.post(f"/finance/orders/{order.no}/reconcile", data={"csrf": CSRF})
        assert reconciled.status_code == 303
        assert reconciled.headers["location"] == f"/finance/orders/{order.no}?reconciled=1&gateway=1"
        await order_status(order, OrderStatus.PAID)  # the workflow took the payment

        # What the workflow's activities do: the order paid; then the invoice, and a refund.
        acts = PaymentActivities(ctx, gateway)
        await acts.mark_order_paid(
            c.MarkOrderPaid(
                order_no=order.no, transaction_id=transaction_id, amount_fen=FEE_FEN, paid_at=utcnow()
            )
        )
        invoice = await ctx.http.post(  # the unit's buyer asks for it
            f"{PAYMENT}/v1/orders/{order.no}/invoice",
            json=INVOICE,
            headers=await finance.buyer(buyer_unit.id),
        )
        assert invoice.status_code == 201, invoice.text
        behaviour = {"order_no": order.no, "refund_failures": 1}
        assert (await ctx.http.post(f"{GATEWAY}/v1/sandbox/behaviour", json=behaviour)).status_code == 200
        refund = c.RefundRequest(
            refund_key=f"registration:{person.id}:review_failed",
            order_no=order.no,
            registration_id=person.id,
            reason="personnel review failed",
        )
        with pytest.raises(ApplicationError):
            await acts.refund(refund)  # the gateway refused it: the activity is retried

        page = await browser.get(f"/finance/orders/{order.no}", params={"lang": "en"})
        payment = text_of(page.text, f"entry-{transaction_id}") or ""
        assert "Payment" in payment and "CNY 500.00" in payment
        failed = text_of(page.text, "ledger-table") or ""
        assert "Refund" in failed and "Failed (tried again)" in failed and "personnel review failed" in failed
        listed = await browser.get("/finance/refunds", params={"status": "failed", "lang": "en"})
        (refund_no,) = re.findall(r'<tr id="refund-(F\w+)"', listed.text)
        assert "Failed" in (text_of(listed.text, f"refund-{refund_no}") or "")
        assert re.search(rf'id="refund-{refund_no}".*?<td class="attempts">1</td>', listed.text, re.S)

        result = await acts.refund(refund)  # the retry: made
        page = await browser.get(f"/finance/orders/{order.no}", params={"lang": "en"})
        assert "Refunded" in (text_of(page.text, f"entry-{refund_no}") or "")
        assert text_of(page.text, "order-received") == "CNY 500.00"
        assert text_of(page.text, "order-refunded") == "CNY 500.00"
        assert text_of(page.text, "order-balance") == "CNY 0.00"
        invoice_no, red_letter = invoice.json()["invoice_no"], None
        assert result.invoice_voided == invoice_no and result.invoice_issued is None  # nobody left paid
        for row in re.findall(r'<tr id="invoice-(INV-[\w-]+)"', page.text):
            if row != invoice_no:
                red_letter = row
        assert red_letter is not None and "Reverses" in (text_of(page.text, f"invoice-{red_letter}") or "")
        for number in (invoice_no, red_letter):
            assert f'href="/finance/invoices/{number}.pdf"' in page.text
            pdf = await browser.get(f"/finance/invoices/{number}.pdf")
            assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
        done = await browser.get("/finance/refunds", params={"order_no": order.no, "lang": "en"})
        row = text_of(done.text, f"refund-{refund_no}") or ""
        assert "Refunded" in row and "personnel review failed" in row and person.id in row
        assert unit_name(buyer_unit.id) in row  # whose money went back
        assert re.search(rf'id="refund-{refund_no}".*?<td class="attempts">2</td>', done.text, re.S)


async def test_orders_whose_money_does_not_match_are_listed_by_view(finance: Finance) -> None:
    ctx = finance.payment
    _, own_finance = await finance.staff(StaffRole.FINANCE, MISSION)
    _, other_finance = await finance.staff(StaffRole.FINANCE, OTHER)
    order_no, person, unit_id = new_id("P"), new_id("R"), new_id("U")
    await add_order(ctx, order_no, unit_id, MISSION, [person], method=PaymentMethod.QR)
    await finance.register(unit_id, MISSION, [person])
    qr = await gateway_for(ctx).create_qr(
        order_no=order_no, amount_fen=FEE_FEN, channel=QrChannel.UNIONPAY, notify_url=f"{PAYMENT}/cb"
    )
    token = qr.payload.rsplit("/", 1)[-1]
    for _ in range(2):  # paid twice: overpaid
        paid = await ctx.http.post(f"{GATEWAY}/v1/pay/{token}", params={"lost": "true"})
        async with ctx.db.transaction() as session:  # as the callback would have stored it
            body = paid.json()
            session.add(
                GatewayTransaction(
                    transaction_id=body["transaction_id"], order_no=order_no, amount_fen=FEE_FEN,
                    paid_at=utcnow(), callback=body,
                )
            )  # fmt: skip
    async with finance.browser(own_finance) as browser:
        page = await browser.get("/finance/orders", params={"view": "overpaid", "lang": "en"})
        assert page.status_code == 200
        row = text_of(page.text, f"order-{order_no}") or ""
        assert "CNY 1,000.00" in row and "CNY 500.00" in row and "Shanghai" in row
        assert unit_name(unit_id) in row  # who paid twice
        assert f'href="/finance/orders/{order_no}"' in page.text
        underpaid = await browser.get("/finance/orders", params={"view": "underpaid"})
        assert text_of(underpaid.text, f"order-{order_no}") is None
        wrong = await browser.get("/finance/orders", params={"view": "lost", "lang": "en"})
        assert wrong.status_code == 422 and text_of(wrong.text, "f-view-error")
    async with finance.browser(other_finance) as browser:
        page = await browser.get("/finance/orders", params={"view": "overpaid"})
        assert page.status_code == 200 and text_of(page.text, f"order-{order_no}") is None


# ------------------------------------------------------------------------------------------ who paid


async def test_the_order_page_says_who_paid(finance: Finance) -> None:
    """The order's unit as registered (name, credit code or registration number, mission) and the
    people it pays for, by name."""
    _, own_finance = await finance.staff(StaffRole.FINANCE, MISSION)
    _, admin = await finance.staff(StaffRole.ADMINISTRATOR)
    own, unit_id = finance.transfer.no, finance.transfer.start.unit_id
    (person,) = finance.transfer.start.registration_ids
    async with finance.browser(own_finance) as browser:
        page = await browser.get(f"/finance/orders/{own}", params={"lang": "en"})
        assert page.status_code == 200
        assert text_of(page.text, "unit-name") == f"{unit_name(unit_id)} {unit_id}"
        assert text_of(page.text, "unit-credit-code") == credit_code(unit_id)
        assert text_of(page.text, "unit-mission") == "Shanghai Trade Mission"
        line = text_of(page.text, f"line-{person}") or ""
        assert person_name(person) in line and "CNY 500.00" in line
        assert "+8613900000001" not in page.text  # finance sees who paid, not their phones
    async with finance.browser(admin) as browser:
        page = await browser.get(f"/finance/orders/{finance.other_transfer}", params={"lang": "zh"})
        assert text_of(page.text, "unit-registration-no") == "HRB 123456"  # registered outside the mainland
        assert text_of(page.text, "unit-credit-code") is None
        assert text_of(page.text, "unit-mission") == "北京市交易团"


async def test_who_paid_is_for_finance_of_the_orders_mission_only(finance: Finance) -> None:
    own = finance.transfer.no
    unit_id = finance.transfer.start.unit_id
    _, own_finance = await finance.staff(StaffRole.FINANCE, MISSION)
    _, other_finance = await finance.staff(StaffRole.FINANCE, OTHER)
    _, mission_staff = await finance.staff(StaffRole.MISSION_STAFF, MISSION)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=payment_api.app), base_url=PAYMENT) as api:

        async def get(path: str, token: str | dict[str, str], **params: Any) -> httpx.Response:
            headers = token if isinstance(token, dict) else {"Authorization": f"Bearer {token}"}
            return await api.get(path, headers=headers, params=params)

        answer = await get(f"/v1/finance/orders/{own}", own_finance)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["unit"]["name"] == unit_name(unit_id) and body["unit"]["mission"] == MISSION
        assert body["unit"]["credit_code"] == credit_code(unit_id)
        assert [line["registration_id"] for line in body["lines"]] == finance.transfer.start.registration_ids
        # Another mission's finance staff: as if there were no such order.
        refused = await get(f"/v1/finance/orders/{own}", other_finance)
        assert (refused.status_code, refused.json()["code"]) == (404, "not_found")
        # Mission staff review; they do not see payments.
        refused = await get(f"/v1/finance/orders/{own}", mission_staff)
        assert (refused.status_code, refused.json()["code"]) == (403, "finance_only")
        # The unit's own buyer: a buyer's login is no staff login (as on every finance route).
        refused = await get(f"/v1/finance/orders/{own}", await finance.buyer(unit_id))
        assert (refused.status_code, refused.json()["code"]) == (401, "unauthenticated")

        # A list's units, in one request: only those of orders the caller sees.
        both = {"unit_id": [unit_id, finance.other_unit, "UNOSUCHUNIT"]}
        names = await get("/v1/finance/units", own_finance, **both)
        assert [unit["name"] for unit in names.json()] == [unit_name(unit_id)]
        names = await get("/v1/finance/units", other_finance, **both)
        assert [unit["unit_id"] for unit in names.json()] == [finance.other_unit]
        refused = await get("/v1/finance/units", mission_staff, **both)
        assert refused.status_code == 403
