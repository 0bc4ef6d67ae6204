"""Invoices as immutable documents (FAQ XI), an order's ledger and finance's view of mismatched money,
as buyers and finance meet them through the invoice router.

A real SQLite database built by the payment migrations, the sandbox gateway in process (refunds are
really paid back there), the session's SeaweedFS as the object store (tests/object_store.py: the PDFs'
keys name the order, so each test's are its own). Temporal is not needed: nothing here talks to a
workflow."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.payment import refunds, sandbox_gateway
from services.payment.activities import gateway_for
from services.payment.invoices import invoice_year
from services.payment.invoices_api import OrderScope, order_scope, router
from services.payment.models import GatewayTransaction, PaymentOrder, Refund
from shared import contracts as c
from shared.catalogue import load_edition, years_until_open
from shared.db import utcnow
from shared.ids import new_id
from shared.service import ServiceContext, create_service_app
from shared.settings import Settings
from shared.types import OrderStatus
from tests.object_store import SeaweedFS
from tests.service_env import service_context
from tests.test_payment_service import FEE, GATEWAY, add_order, pay_at_gateway

VALID_USCC = "91310000MA1FL1234Q"
REGULAR = {"kind": "regular", "title": "青岛海洋贸易有限公司", "taxpayer_id": VALID_USCC}
SPECIAL = REGULAR | {
    "kind": "special",
    "address": "上海市长宁区虹桥路1号",
    "phone": "021-62345678",
    "bank_name": "中国银行上海分行",
    "bank_account": "4563 5100 0000 1234 567",
}


# ------------------------------------------------------------------------------------------ fixtures


@pytest.fixture
def settings(tmp_path: Path, seaweedfs: SeaweedFS) -> Settings:
    edition = load_edition("ciie6")
    return Settings(
        **seaweedfs.settings,
        data_dir=tmp_path,
        edition="ciie6",
        edition_year_shift=years_until_open(edition, utcnow()),
        gateway_url=GATEWAY,
    )


@pytest.fixture
async def ctx(
    settings: Settings, sandbox: sandbox_gateway.SandboxState, seaweedfs: SeaweedFS
) -> AsyncIterator[ServiceContext]:
    http = httpx.AsyncClient(mounts={GATEWAY: httpx.ASGITransport(app=sandbox_gateway.app)})
    async with service_context("payment", settings, http=http, store=seaweedfs.store) as context:
        yield context


@pytest.fixture
def app(ctx: ServiceContext) -> FastAPI:
    app = create_service_app("payment", title="Payment (invoices)", description="test")
    app.include_router(router)
    app.state.ctx = ctx
    return app


@pytest.fixture
async def api(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://payment.test"
    ) as client:
        yield client


# ------------------------------------------------------------------------------------------ helpers


async def paid_order(
    ctx: ServiceContext, people: int, *, paid_fen: int | None = None
) -> tuple[str, list[str], str]:
    """An order paid at the sandbox gateway, its transaction recorded as the callback would."""
    order_no, registration_ids = await add_order(ctx, people)
    amount = FEE * people if paid_fen is None else paid_fen
    transaction_id = await pay_at_gateway(ctx, order_no, amount)
    await record_transaction(ctx, order_no, transaction_id, amount)
    async with ctx.db.transaction() as session:
        order = await session.get(PaymentOrder, order_no)
        assert order is not None
        if amount >= order.amount_fen:
            order.status, order.transaction_id, order.paid_at = OrderStatus.PAID, transaction_id, utcnow()
    return order_no, registration_ids, transaction_id


async def record_transaction(ctx: ServiceContext, order_no: str, transaction_id: str, amount: int) -> None:
    async with ctx.db.transaction() as session:
        session.add(
            GatewayTransaction(
                transaction_id=transaction_id,
                order_no=order_no,
                amount_fen=amount,
                paid_at=utcnow(),
                callback={},
            )
        )


async def apply(api: httpx.AsyncClient, order_no: str, body: dict[str, Any] = SPECIAL) -> dict[str, Any]:
    response = await api.post(f"/v1/orders/{order_no}/invoice", json=body)
    assert response.status_code == 201, response.text
    invoice: dict[str, Any] = response.json()
    return invoice


async def listed(api: httpx.AsyncClient, order_no: str) -> list[dict[str, Any]]:
    response = await api.get(f"/v1/orders/{order_no}/invoices")
    assert response.status_code == 200, response.text
    invoices: list[dict[str, Any]] = response.json()
    return invoices


async def refund_share(
    ctx: ServiceContext, order_no: str, registration_id: str, key: str | None = None
) -> c.RefundResult:
    return await refunds.refund(
        ctx.db,
        gateway_for(ctx),
        c.RefundRequest(
            refund_key=key or f"registration:{registration_id}:review_failed",
            order_no=order_no,
            registration_id=registration_id,
            reason="personnel review failed",
        ),
        store=ctx.store,
        bucket=ctx.settings.bucket_invoices,
    )


def year() -> int:
    return invoice_year(utcnow())


def pdf_text(body: bytes, tmp_path: Path) -> str:
    tool = shutil.which("pdftotext")
    assert tool, "pdftotext is needed for this test: apt-get install -y poppler-utils"
    path = tmp_path / f"{new_id('D')}.pdf"
    path.write_bytes(body)
    return subprocess.run(
        [tool, "-enc", "UTF-8", str(path), "-"], capture_output=True, text=True, check=True
    ).stdout


# ------------------------------------------------------------------------------------------ applications


@pytest.mark.parametrize(
    ("change", "field", "zh"),
    [
        ({"taxpayer_id": "91310000MA1FL1234X"}, "taxpayer_id", "统一社会信用代码"),  # wrong check digit
        ({"taxpayer_id": "12-34"}, "taxpayer_id", "15至20位"),
        ({"title": "   "}, "title", "发票抬头"),
        ({"address": None}, "address", "注册地址"),
        ({"phone": "12345"}, "phone", "电话"),
        ({"bank_name": ""}, "bank_name", "开户银行"),
        ({"bank_account": "6222-ABCD-0001"}, "bank_account", "银行账号"),
        ({"bank_account": "1234567"}, "bank_account", "银行账号"),
    ],
)
async def test_a_special_invoice_with_a_missing_or_invalid_field_is_refused_naming_it(
    ctx: ServiceContext, api: httpx.AsyncClient, change: dict[str, Any], field: str, zh: str
) -> None:
    order_no, _, _ = await paid_order(ctx, 1)
    response = await api.post(f"/v1/orders/{order_no}/invoice", json=SPECIAL | change)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["field"] == field and body["code"] == "invalid_invoice_data"
    assert zh in body["message_zh"] and body["message"] and body["message"] != body["message_zh"]
    assert await listed(api, order_no) == []  # nothing was issued


async def test_a_regular_invoice_needs_no_bank_data_and_a_special_one_keeps_it_normalised(
    ctx: ServiceContext, api: httpx.AsyncClient
) -> None:
    regular_order, _, _ = await paid_order(ctx, 1)
    regular = await apply(api, regular_order, REGULAR)
    assert regular["kind"] == "regular" and regular["address"] is None and regular["amount_fen"] == FEE
    special_order, _, _ = await paid_order(ctx, 1)
    special = await apply(api, special_order, SPECIAL | {"taxpayer_id": VALID_USCC.lower()})
    assert (special["taxpayer_id"], special["phone"], special["bank_account"]) == (
        VALID_USCC,
        "+862162345678",
        "4563510000001234567",
    )
    unpaid, _ = await add_order(ctx, 1)
    refused = await api.post(f"/v1/orders/{unpaid}/invoice", json=REGULAR)
    assert refused.status_code == 409 and refused.json()["code"] == "not_paid"


async def test_invoices_are_numbered_in_sequence_without_gaps_or_duplicates_when_issued_at_once(
    ctx: ServiceContext, api: httpx.AsyncClient
) -> None:
    orders = [(await paid_order(ctx, 1))[0] for _ in range(6)]
    # Six orders at once, and the first one applied for twice (a double click).
    responses = await asyncio.gather(
        *(api.post(f"/v1/orders/{no}/invoice", json=REGULAR) for no in [*orders, orders[0]])
    )
    assert sorted(r.status_code for r in responses) == [201] * 6 + [409]
    numbers = sorted(r.json()["invoice_no"] for r in responses if r.status_code == 201)
    assert numbers == [f"INV-{year()}-{n:06d}" for n in range(1, 7)]
    assert [i["invoice_no"] for i in await listed(api, orders[0])] == [
        next(
            r.json()["invoice_no"]
            for r in responses
            if r.status_code == 201 and r.json()["order_no"] == orders[0]
        )
    ]
    refused = next(r for r in responses if r.status_code == 409)
    assert refused.json()["code"] == "invoice_exists"
    # A refused application gave no number away: the next invoice is the seventh.
    seventh, _, _ = await paid_order(ctx, 1)
    assert (await apply(api, seventh, REGULAR))["invoice_no"] == f"INV-{year()}-000007"


# ------------------------------------------------------------------------------------------ refunds


async def test_a_refund_after_invoicing_issues_a_red_letter_invoice_and_a_new_one_never_changing_the_original(
    ctx: ServiceContext, api: httpx.AsyncClient, sandbox: sandbox_gateway.SandboxState
) -> None:
    order_no, (leaving, staying), _ = await paid_order(ctx, 2)
    original = await apply(api, order_no)
    assert original["amount_fen"] == 2 * FEE and original["standing"]

    first = await refund_share(ctx, order_no, leaving)
    again = await refund_share(ctx, order_no, leaving)  # the activity ran twice

    assert again == first
    assert [r["amount_fen"] for r in sandbox.orders[order_no].refunds] == [FEE]
    invoices = await listed(api, order_no)
    assert len(invoices) == 3, invoices  # the retry issued nothing more
    kept, red, blue = invoices
    assert {k: kept[k] for k in ("invoice_no", "amount_fen", "lines", "title", "bank_account")} == {
        k: original[k] for k in ("invoice_no", "amount_fen", "lines", "title", "bank_account")
    }  # the original is unchanged
    assert (kept["standing"], kept["reversed_by"]) == (False, red["invoice_no"])
    assert red["red_letter"] and red["reverses"] == original["invoice_no"] and red["amount_fen"] == -2 * FEE
    assert [line["amount_fen"] for line in red["lines"]] == [-FEE, -FEE]
    assert blue["standing"] and not blue["red_letter"] and blue["replaces"] == original["invoice_no"]
    assert blue["amount_fen"] == FEE and [line["registration_id"] for line in blue["lines"]] == [staying]
    assert (blue["kind"], blue["title"], blue["bank_account"]) == (
        "special",
        SPECIAL["title"],
        "4563510000001234567",
    )
    assert (first.invoice_voided, first.invoice_issued) == (original["invoice_no"], blue["invoice_no"])
    n = int(original["invoice_no"].rsplit("-", 1)[1])
    assert [red["invoice_no"], blue["invoice_no"]] == [
        f"INV-{year()}-{n + 1:06d}",
        f"INV-{year()}-{n + 2:06d}",
    ]

    # The last person leaves too: the new invoice is reversed and nothing is issued in its place.
    last = await refund_share(ctx, order_no, staying)
    assert (last.invoice_voided, last.invoice_issued) == (blue["invoice_no"], None)
    after = await listed(api, order_no)
    assert [(i["amount_fen"], i["standing"]) for i in after] == [
        (2 * FEE, False),
        (-2 * FEE, False),
        (FEE, False),
        (-FEE, False),
    ]
    assert sum(i["amount_fen"] for i in after) == 0
    refused = await api.post(f"/v1/orders/{order_no}/invoice", json=SPECIAL)
    assert refused.status_code == 409 and refused.json()["code"] == "nothing_to_invoice"


async def test_a_refund_of_money_that_matched_no_one_leaves_the_invoice_standing(
    ctx: ServiceContext, api: httpx.AsyncClient
) -> None:
    order_no, _, _ = await paid_order(ctx, 1)
    invoice = await apply(api, order_no, REGULAR)
    duplicate = await pay_at_gateway(ctx, order_no, FEE)
    result = await refunds.refund(
        ctx.db,
        gateway_for(ctx),
        c.RefundRequest(
            refund_key=f"duplicate:{duplicate}",
            order_no=order_no,
            transaction_id=duplicate,
            amount_fen=FEE,
            reason="paid twice",
        ),
    )
    assert (result.invoice_voided, result.invoice_issued) == (None, None)
    assert [(i["invoice_no"], i["standing"]) for i in await listed(api, order_no)] == [
        (invoice["invoice_no"], True)
    ]


# ------------------------------------------------------------------------------------------ PDFs


async def test_the_invoice_pdf_is_stored_at_issue_and_downloads_with_number_amounts_and_buyer(
    ctx: ServiceContext, api: httpx.AsyncClient, seaweedfs: SeaweedFS, tmp_path: Path
) -> None:
    order_no, (leaving, _), _ = await paid_order(ctx, 2)
    invoice = await apply(api, order_no)
    stored = seaweedfs.keys(ctx.settings.bucket_invoices, prefix=f"{year()}/{order_no}/")
    assert stored == [f"{year()}/{order_no}/{invoice['invoice_no']}.pdf"]

    response = await api.get(invoice["pdf_url"])
    assert response.status_code == 200 and response.headers["content-type"] == "application/pdf"
    text = pdf_text(response.content, tmp_path)
    for expected in (
        invoice["invoice_no"],
        "400.00",
        "200.00",
        SPECIAL["title"],
        VALID_USCC,
        "增值税电子专用发票",
    ):
        assert expected in text, (expected, text)
    assert "REVERSAL" not in text

    result = await refund_share(ctx, order_no, leaving)
    red = next(i for i in await listed(api, order_no) if i["red_letter"])
    stored = seaweedfs.keys(ctx.settings.bucket_invoices, prefix=f"{year()}/{order_no}/")
    assert stored == sorted(
        f"{year()}/{order_no}/{number}.pdf"
        for number in (invoice["invoice_no"], red["invoice_no"], result.invoice_issued)
    )  # red and new blue stored
    red_text = pdf_text((await api.get(red["pdf_url"])).content, tmp_path)
    for expected in (
        red["invoice_no"],
        "红字",
        "REVERSAL",
        invoice["invoice_no"],
        "-400.00",
        SPECIAL["title"],
    ):
        assert expected in red_text, (expected, red_text)
    blue_text = pdf_text((await api.get(f"/v1/invoices/{result.invoice_issued}.pdf")).content, tmp_path)
    assert "200.00" in blue_text and "400.00" not in blue_text and leaving not in blue_text

    missing = await api.get("/v1/invoices/INV-1999-000001.pdf")
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"


async def test_a_pdf_missing_from_the_store_is_rendered_again_on_download(
    ctx: ServiceContext, api: httpx.AsyncClient, seaweedfs: SeaweedFS, tmp_path: Path
) -> None:
    order_no, _, _ = await paid_order(ctx, 1)
    invoice = await apply(api, order_no, REGULAR)
    bucket, key = ctx.settings.bucket_invoices, f"{year()}/{order_no}/{invoice['invoice_no']}.pdf"
    seaweedfs.delete(bucket, key)  # the store lost it (or the put failed at issue)
    assert seaweedfs.keys(bucket, prefix=f"{year()}/{order_no}/") == []
    response = await api.get(invoice["pdf_url"])
    assert response.status_code == 200
    assert invoice["invoice_no"] in pdf_text(response.content, tmp_path)
    assert seaweedfs.keys(bucket, prefix=f"{year()}/{order_no}/") == [key]  # and stored again
    assert await seaweedfs.store.get(bucket, key) == response.content


# ------------------------------------------------------------------------------------------ ledger


async def test_the_ledger_lists_money_and_invoices_in_order_with_the_running_balance(
    ctx: ServiceContext, api: httpx.AsyncClient
) -> None:
    order_no, (leaving, _), transaction_id = await paid_order(ctx, 2)
    invoice = await apply(api, order_no)
    result = await refund_share(ctx, order_no, leaving)
    async with ctx.db.transaction() as session:  # a refund asked of the gateway, not answered yet
        session.add(
            Refund(
                refund_no="FPENDING",
                refund_key="manual:pending",
                order_no=order_no,
                transaction_id=transaction_id,
                amount_fen=500,
                reason="overcharge",
            )
        )
    response = await api.get(f"/v1/orders/{order_no}/ledger")
    assert response.status_code == 200, response.text
    ledger = response.json()
    entries = [
        (e["kind"], e["amount_fen"], e["status"], e["balance_fen"], e["invoiced_fen"])
        for e in ledger["entries"]
    ]
    red = next(i["invoice_no"] for i in await listed(api, order_no) if i["red_letter"])
    assert entries == [
        ("order_created", 0, None, 0, 0),
        ("payment", 2 * FEE, None, 2 * FEE, 0),
        ("invoice", 2 * FEE, None, 2 * FEE, 2 * FEE),
        ("refund", -FEE, "done", FEE, 2 * FEE),
        ("red_letter_invoice", -2 * FEE, None, FEE, 0),
        ("invoice", FEE, None, FEE, FEE),
        ("refund", -500, "pending", FEE, FEE),
    ]
    assert [e["reference"] for e in ledger["entries"]][1:6] == [
        transaction_id,
        invoice["invoice_no"],
        result.refund_no,
        red,
        result.invoice_issued,
    ]
    assert (
        ledger["received_fen"],
        ledger["refunded_fen"],
        ledger["balance_fen"],
        ledger["invoiced_fen"],
    ) == (
        2 * FEE,
        FEE,
        FEE,
        FEE,
    )


# ------------------------------------------------------------------------------------------ finance


async def test_finance_sees_overpaid_underpaid_and_paid_but_expired_orders(
    ctx: ServiceContext, app: FastAPI, api: httpx.AsyncClient
) -> None:
    fine, _, _ = await paid_order(ctx, 1)
    overpaid, _, _ = await paid_order(ctx, 1)
    await record_transaction(ctx, overpaid, new_id("T"), FEE)  # paid twice
    underpaid, _, _ = await paid_order(ctx, 2, paid_fen=FEE)  # half of it
    expired, (closed, _), _ = await paid_order(ctx, 2)
    await refund_share(ctx, expired, closed, key=f"order:{expired}:unaccepted:{closed}")

    async def view(name: str, **params: Any) -> dict[str, Any]:
        response = await api.get("/v1/finance/orders", params={"view": name, **params})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    over = await view("overpaid")
    assert [
        (o["order_no"], o["amount_fen"], o["received_fen"], o["difference_fen"]) for o in over["items"]
    ] == [(overpaid, FEE, 2 * FEE, FEE)]
    under = await view("underpaid")
    assert [
        (o["order_no"], o["amount_fen"], o["received_fen"], o["difference_fen"]) for o in under["items"]
    ] == [(underpaid, 2 * FEE, FEE, FEE)]
    gone = await view("paid_but_expired")
    assert [(o["order_no"], o["refunded_fen"], o["difference_fen"], o["people"]) for o in gone["items"]] == [
        (expired, FEE, FEE, 1)
    ]
    assert fine not in {o["order_no"] for v in (over, under, gone) for o in v["items"]}

    # The unit then pays the whole amount again: no longer underpaid, but now overpaid by the first one.
    await record_transaction(ctx, underpaid, new_id("T"), 2 * FEE)
    assert (await view("underpaid"))["items"] == []
    paged = await view("overpaid", limit=1, offset=0)
    assert paged["total"] == 2 and len(paged["items"]) == 1
    assert (await view("overpaid", limit=1, offset=1))["items"][0]["order_no"] != paged["items"][0][
        "order_no"
    ]
    refused = await api.get("/v1/finance/orders", params={"view": "everything"})
    assert refused.status_code == 422

    # A caller scoped to another mission sees none of it.
    app.dependency_overrides[order_scope] = lambda: OrderScope(missions={"guangdong"})
    try:
        assert (await view("overpaid"))["items"] == []
        assert (await api.get(f"/v1/orders/{overpaid}/ledger")).status_code == 404
        assert (await api.get(f"/v1/orders/{overpaid}/invoices")).status_code == 404
    finally:
        app.dependency_overrides.clear()
