"""The payment service as finance and buyers meet it: refunds and the invoices they void and reissue,
bank transfer vouchers and finance's decisions, deadline extensions reaching open orders, invoice
requests, and money for an order whose workflow has closed.

The activities and the API run for real against a SQLite database built by the service's
migrations, the sandbox payment gateway (in process, through httpx's ASGI transport) and the session's
SeaweedFS as the object store (tests/object_store.py; keys name the order, unique). Temporal is
Temporal's time-skipping test server; the order workflow there is a small stand-in that records what
it is told and answers updates as the real one's validators do, because this file tests the service,
not the workflow. The registration service is a stand-in answering its internal routes (a buyer's
token ``unit:<unit id>`` is that unit's), and the review service one answering the staff session route
(``FINANCE`` is an administrator's token): tests/service_stand_ins.py, with the unit and deadline
routes added here. Who may call what is tests/test_payment_scoping.py's.
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import func, select
from temporalio import workflow
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from services.payment import activities as payment_activities
from services.payment import api as payment_api
from services.payment import sandbox_gateway
from services.payment.activities import PaymentActivities, gateway_for
from services.payment.models import OrderItem, PaymentOrder, Refund, TransferDecisionRecord
from shared import contracts as c
from shared import signing
from shared.catalogue import load_edition, years_until_open
from shared.db import utcnow
from shared.ids import new_id
from shared.records import UnitMemberRecord, UnitMembersRecord
from shared.service import ServiceContext
from shared.settings import Settings
from shared.temporal import WORKFLOW_TASK_QUEUE, payment_order_workflow_id
from shared.types import Decision, FeeKind, OrderStatus, PaymentMethod, QrChannel, RegistrationStatus
from tests.object_store import SeaweedFS
from tests.service_env import service_context
from tests.service_stand_ins import REGISTRATION, URLS, StandIns, staff, unit

GATEWAY = "http://gateway.test"
PAYMENT = "http://payment.test"
FINANCE = staff("administrator")  # the organiser's administrator, logged in

FEE = 20000  # the edition's standard fee, in fen


# ------------------------------------------------------------------------------------------ doubles


@workflow.defn(name="PaymentOrder")
class StandInOrderWorkflow:
    """Stands in for the PaymentOrder workflow: records signals, takes a voucher and finance's
    decision through updates whose validators refuse as the real ones do."""

    def __init__(self) -> None:
        self.status = OrderStatus.AWAITING_PAYMENT
        self.start: c.PaymentOrderStart | None = None
        self.extensions: list[c.PaymentDeadlines] = []
        self.confirmations: list[str] = []
        self.reviewers: list[str] = []
        self.finished = False

    @workflow.run
    async def run(self, start: c.PaymentOrderStart) -> None:
        self.start = start
        await workflow.wait_condition(lambda: self.finished)

    @workflow.signal(name=c.SIGNAL_DEADLINES_EXTENDED)
    def deadlines_extended(self, deadlines: c.PaymentDeadlines) -> None:
        self.extensions.append(deadlines)

    @workflow.signal(name=c.SIGNAL_GATEWAY_CONFIRMATION)
    def gateway_confirmation(self, confirmation: c.GatewayConfirmation) -> None:
        self.confirmations.append(confirmation.transaction_id)

    @workflow.signal(name="finish")
    def finish(self) -> None:
        self.finished = True

    @workflow.update(name=c.UPDATE_UPLOAD_VOUCHER)
    async def upload_voucher(self, upload: c.VoucherUpload) -> c.DecisionResult:
        self.status = OrderStatus.AWAITING_CONFIRMATION
        return c.DecisionResult(status=self.status.value)

    @upload_voucher.validator
    def _validate_voucher(self, upload: c.VoucherUpload) -> None:
        if self.status is OrderStatus.AWAITING_CONFIRMATION:
            raise ApplicationError("a voucher awaits finance's confirmation", type="voucher_pending")

    @workflow.update(name=c.UPDATE_CONFIRM_TRANSFER)
    async def confirm_transfer(self, decision: c.TransferDecision) -> c.DecisionResult:
        self.reviewers.append(decision.reviewer)
        approved = decision.decision is Decision.APPROVE
        self.status = OrderStatus.PAID if approved else OrderStatus.AWAITING_PAYMENT
        return c.DecisionResult(status=self.status.value)

    @confirm_transfer.validator
    def _validate_decision(self, decision: c.TransferDecision) -> None:
        if self.status is not OrderStatus.AWAITING_CONFIRMATION:
            raise ApplicationError("no voucher to decide on", type="no_voucher")

    @workflow.query(name="seen")
    def seen(self) -> dict[str, Any]:
        return {
            "start": self.start.model_dump(mode="json") if self.start else None,
            "extensions": [d.model_dump(mode="json") for d in self.extensions],
            "confirmations": list(self.confirmations),
            "reviewers": list(self.reviewers),
        }


@dataclass
class RegistrationStandIn:
    """What the registration service would answer besides sessions: a unit's unpaid people, the current
    deadlines."""

    token: str
    unpaid: dict[str, dict[str, FeeKind]] = field(default_factory=dict)  # unit -> person -> fee kind
    deadlines: c.PaymentDeadlines | None = None  # None: the route answers 404
    asked_with_token: list[bool] = field(default_factory=list)

    def app(self, sessions: FastAPI) -> FastAPI:
        """These routes, and ``sessions`` (tests/service_stand_ins.py) answering the others."""
        app = FastAPI()

        @app.get("/internal/units/{unit_id}/registrations")
        async def members(unit_id: str, request: Request) -> JSONResponse:
            self.asked_with_token.append(request.headers.get("authorization") == f"Bearer {self.token}")
            record = UnitMembersRecord(
                unit_id=unit_id,
                edition="ciie6",
                mission="shanghai",
                sub_mission=None,
                members=[
                    UnitMemberRecord(registration_id=rid, status=RegistrationStatus.UNPAID, fee_kind=kind)
                    for rid, kind in self.unpaid.get(unit_id, {}).items()
                ],
            )
            return JSONResponse(record.model_dump(mode="json"))

        @app.get("/internal/editions/{edition}/payment-deadlines")
        async def deadlines(edition: str, request: Request) -> JSONResponse:
            self.asked_with_token.append(request.headers.get("authorization") == f"Bearer {self.token}")
            if self.deadlines is None:
                return JSONResponse({"code": "not_found"}, status_code=404)
            return JSONResponse(self.deadlines.model_dump(mode="json"))

        app.mount("/", sessions)
        return app


# ------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
async def temporal() -> AsyncIterator[WorkflowEnvironment]:
    """Temporal's time-skipping test server with the stand-in order workflow on the workflow queue."""
    server = Path(sys.executable).parent / "temporal-test-server"
    async with (
        await WorkflowEnvironment.start_time_skipping(
            test_server_existing_path=str(server) if server.is_file() else None,
            data_converter=pydantic_data_converter,
        ) as env,
        Worker(
            env.client,
            task_queue=WORKFLOW_TASK_QUEUE,
            workflows=[StandInOrderWorkflow],
            workflow_runner=UnsandboxedWorkflowRunner(),
        ),
    ):
        yield env


@pytest.fixture
def settings(tmp_path: Path, seaweedfs: SeaweedFS) -> Settings:
    edition = load_edition("ciie6")
    return Settings(
        **seaweedfs.settings,
        data_dir=tmp_path,
        edition="ciie6",
        edition_year_shift=years_until_open(edition, utcnow()),  # the calendar moved to today
        gateway_url=GATEWAY,
        **URLS,
        payment_url=PAYMENT,
    )


@pytest.fixture
def registration(settings: Settings) -> RegistrationStandIn:
    return RegistrationStandIn(token=settings.internal_token.get_secret_value())


@pytest.fixture
async def ctx(
    settings: Settings,
    registration: RegistrationStandIn,
    sandbox: sandbox_gateway.SandboxState,
    temporal: WorkflowEnvironment,
    seaweedfs: SeaweedFS,
) -> AsyncIterator[ServiceContext]:
    stand_ins = StandIns.fresh(settings)
    http = httpx.AsyncClient(
        mounts={
            **stand_ins.mounts(),
            GATEWAY: httpx.ASGITransport(app=sandbox_gateway.app),
            REGISTRATION: httpx.ASGITransport(app=registration.app(stand_ins.registration())),
        }
    )
    async with service_context(
        "payment", settings, temporal=temporal.client, http=http, store=seaweedfs.store
    ) as context:
        yield context


@pytest.fixture
async def api(ctx: ServiceContext) -> AsyncIterator[httpx.AsyncClient]:
    """The payment API on the test's context (its lifespan, which reads the environment, is not run),
    called by a buyer of the unit UTEST (``add_order``'s) unless a test says otherwise."""
    payment_api.app.state.ctx = ctx
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=payment_api.app), base_url=PAYMENT, headers=unit("UTEST")
    ) as client:
        yield client


@pytest.fixture
def acts(ctx: ServiceContext) -> PaymentActivities:
    return PaymentActivities(ctx, gateway_for(ctx))


# ------------------------------------------------------------------------------------------ helpers


async def add_order(
    ctx: ServiceContext,
    people: int,
    *,
    method: PaymentMethod = PaymentMethod.QR,
    status: OrderStatus = OrderStatus.AWAITING_PAYMENT,
    edition: str = "ciie6",
    order_no: str | None = None,
    deadline: datetime | None = None,
) -> tuple[str, list[str]]:
    """An order as ``POST /v1/orders`` stores it (without starting a workflow)."""
    order_no = order_no or new_id("P")
    registration_ids = sorted(new_id("R") for _ in range(people))
    async with ctx.db.transaction() as session:
        session.add(
            PaymentOrder(
                order_no=order_no,
                edition=edition,
                unit_id="UTEST",
                mission="shanghai",
                method=method,
                qr_channel=QrChannel.UNIONPAY if method is PaymentMethod.QR else None,
                amount_fen=FEE * people,
                status=status,
                deadline=deadline or utcnow() + timedelta(days=10),
                items=[
                    OrderItem(registration_id=rid, fee_kind=FeeKind.STANDARD, amount_fen=FEE)
                    for rid in registration_ids
                ],
            )
        )
    return order_no, registration_ids


async def pay_at_gateway(ctx: ServiceContext, order_no: str, amount_fen: int) -> str:
    """The buyer scans the order's QR code and pays at the sandbox: the gateway's transaction id."""
    qr = await gateway_for(ctx).create_qr(
        order_no=order_no, amount_fen=amount_fen, channel=QrChannel.UNIONPAY, notify_url=f"{PAYMENT}/cb"
    )
    paid = await ctx.http.post(f"{GATEWAY}/v1/pay/{qr.payload.rsplit('/', 1)[-1]}", json={})
    assert paid.status_code == 200, paid.text
    transaction_id: str = paid.json()["transaction_id"]
    return transaction_id


async def paid_order(ctx: ServiceContext, acts: PaymentActivities, people: int) -> tuple[str, list[str], str]:
    order_no, registration_ids = await add_order(ctx, people)
    transaction_id = await pay_at_gateway(ctx, order_no, FEE * people)
    await acts.mark_order_paid(
        c.MarkOrderPaid(
            order_no=order_no, transaction_id=transaction_id, amount_fen=FEE * people, paid_at=utcnow()
        )
    )
    return order_no, registration_ids, transaction_id


def gateway_refunds(sandbox: sandbox_gateway.SandboxState, order_no: str) -> list[int]:
    """The amounts the gateway actually paid back for the order."""
    return [refund["amount_fen"] for refund in sandbox.orders[order_no].refunds]


INVOICE = {
    "kind": "special", "title": "青岛海洋贸易有限公司", "taxpayer_id": "91370212MA3C1234X5",
    "address": "青岛市崂山区海尔路1号", "phone": "0532-88886666", "bank_name": "中国银行青岛分行",
    "bank_account": "6216610200012345678",
}  # fmt: skip


async def request_invoice(api: httpx.AsyncClient, order_no: str) -> dict[str, Any]:
    response = await api.post(f"/v1/orders/{order_no}/invoice", json=INVOICE)
    assert response.status_code == 201, response.text
    invoice: dict[str, Any] = response.json()
    return invoice


async def invoices(api: httpx.AsyncClient, order_no: str) -> list[dict[str, Any]]:
    response = await api.get(f"/v1/orders/{order_no}/invoices")
    assert response.status_code == 200, response.text
    listed: list[dict[str, Any]] = response.json()
    return listed


def assert_refused(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code and body["message"] and body["message_zh"], body
    assert body["message"] != body["message_zh"], "a Chinese message, not the English one again"


async def order_view(api: httpx.AsyncClient, order_no: str) -> dict[str, Any]:
    response = await api.get(f"/v1/orders/{order_no}")
    assert response.status_code == 200, response.text
    order: dict[str, Any] = response.json()
    return order


# ------------------------------------------------------------------------------------------ refunds and invoices


async def test_refunding_one_persons_share_reissues_the_invoice_for_the_rest_once(
    ctx: ServiceContext,
    acts: PaymentActivities,
    api: httpx.AsyncClient,
    sandbox: sandbox_gateway.SandboxState,
) -> None:
    order_no, (failed, passed), _ = await paid_order(ctx, acts, people=2)
    original = await request_invoice(api, order_no)
    assert original["amount_fen"] == 2 * FEE and original["standing"]

    request = c.RefundRequest(
        refund_key=f"registration:{failed}:review_failed",
        order_no=order_no,
        registration_id=failed,
        reason="personnel review failed",
    )
    first = await acts.refund(request)
    again = await acts.refund(request)  # the activity ran twice (a retry after a lost answer)

    assert again == first
    assert first.succeeded and first.invoice_voided == original["invoice_no"]
    assert first.invoice_issued is not None and first.invoice_issued != original["invoice_no"]
    assert gateway_refunds(sandbox, order_no) == [FEE]  # the money went back once
    listed = await invoices(api, order_no)
    # Issued invoices never change: a red-letter invoice reverses the original, a new one covers
    # the person who stays.
    assert [(i["invoice_no"], i["red_letter"], i["amount_fen"], i["standing"]) for i in listed] == [
        (original["invoice_no"], False, 2 * FEE, False),
        (listed[1]["invoice_no"], True, -2 * FEE, False),
        (first.invoice_issued, False, FEE, True),
    ]
    reissued = listed[2]
    assert (
        reissued["replaces"] == original["invoice_no"] and listed[0]["reversed_by"] == listed[1]["invoice_no"]
    )
    assert listed[1]["reverses"] == original["invoice_no"]
    assert {k: reissued[k] for k in ("kind", "title", "taxpayer_id")} == {
        k: INVOICE[k] for k in ("kind", "title", "taxpayer_id")
    }

    # The last person's share: the invoice is reversed and none issued, since nothing remains paid.
    last = await acts.refund(
        c.RefundRequest(
            refund_key=f"registration:{passed}:withdrawn",
            order_no=order_no,
            registration_id=passed,
            reason="withdrawn",
        )
    )
    assert (last.invoice_voided, last.invoice_issued) == (first.invoice_issued, None)
    assert [i["amount_fen"] for i in await invoices(api, order_no)] == [2 * FEE, -2 * FEE, FEE, -FEE]
    assert gateway_refunds(sandbox, order_no) == [FEE, FEE]
    # Applying again is refused (nothing_to_invoice) by the invoice router: tests/test_invoices.py.


async def test_an_invoice_applied_for_after_a_refund_covers_what_remains_and_a_retry_changes_nothing(
    ctx: ServiceContext,
    acts: PaymentActivities,
    api: httpx.AsyncClient,
    sandbox: sandbox_gateway.SandboxState,
) -> None:
    order_no, (refunded, _, _), _ = await paid_order(ctx, acts, people=3)
    request = c.RefundRequest(
        refund_key=f"registration:{refunded}:review_failed",
        order_no=order_no,
        registration_id=refunded,
        reason="personnel review failed",
    )
    result = await acts.refund(request)
    assert (result.invoice_voided, result.invoice_issued) == (None, None)  # no invoice yet

    invoice = await request_invoice(api, order_no)
    assert invoice["amount_fen"] == 2 * FEE
    assert await acts.refund(request) == result  # a late retry does not touch the new invoice
    assert [(i["standing"], i["amount_fen"]) for i in await invoices(api, order_no)] == [(True, 2 * FEE)]
    assert gateway_refunds(sandbox, order_no) == [FEE]


async def test_refunding_a_duplicate_payment_leaves_the_invoice_alone(
    ctx: ServiceContext,
    acts: PaymentActivities,
    api: httpx.AsyncClient,
    sandbox: sandbox_gateway.SandboxState,
) -> None:
    """Money that matched no one was never part of the order, nor of its invoice."""
    order_no, (leaving, _), _ = await paid_order(ctx, acts, people=2)
    invoice = await request_invoice(api, order_no)
    duplicate = await pay_at_gateway(ctx, order_no, 2 * FEE)  # the buyer paid a second time

    result = await acts.refund(
        c.RefundRequest(
            refund_key=f"order:{order_no}:txn:{duplicate}",
            order_no=order_no,
            transaction_id=duplicate,
            amount_fen=2 * FEE,
            reason="duplicate payment",
        )
    )

    assert result.succeeded and (result.invoice_voided, result.invoice_issued) == (None, None)
    assert [(i["invoice_no"], i["standing"]) for i in await invoices(api, order_no)] == [
        (invoice["invoice_no"], True)
    ]
    assert gateway_refunds(sandbox, order_no) == [2 * FEE]

    # A person's share refunded afterwards: the reissued invoice is for the one who stays.
    share = await acts.refund(
        c.RefundRequest(
            refund_key=f"registration:{leaving}:withdrawn",
            order_no=order_no,
            registration_id=leaving,
            reason="withdrawn",
        )
    )
    assert share.invoice_voided == invoice["invoice_no"]
    after = await invoices(api, order_no)
    assert [(i["invoice_no"], i["amount_fen"]) for i in after] == [
        (invoice["invoice_no"], 2 * FEE),  # unchanged
        (after[1]["invoice_no"], -2 * FEE),  # the red-letter invoice reversing it
        (share.invoice_issued, FEE),
    ]


async def test_invoice_requests_are_refused_until_paid_and_when_one_stands(
    ctx: ServiceContext, acts: PaymentActivities, api: httpx.AsyncClient
) -> None:
    unpaid, _ = await add_order(ctx, 1)
    assert_refused(await api.post(f"/v1/orders/{unpaid}/invoice", json=INVOICE), 409, "not_paid")
    assert_refused(await api.post("/v1/orders/PNOSUCHORDER/invoice", json=INVOICE), 404, "not_found")
    assert_refused(await api.get("/v1/orders/PNOSUCHORDER/invoices"), 404, "not_found")

    order_no, _, _ = await paid_order(ctx, acts, people=1)
    bad_id = await api.post(f"/v1/orders/{order_no}/invoice", json=INVOICE | {"taxpayer_id": "12-34"})
    assert_refused(bad_id, 422, "invalid_invoice_data")
    regular = await api.post(
        f"/v1/orders/{order_no}/invoice",
        json=INVOICE | {"kind": "regular", "taxpayer_id": " 91370212ma3c1234x5 "},
    )
    assert regular.status_code == 201 and regular.json()["taxpayer_id"] == "91370212MA3C1234X5"
    assert_refused(await api.post(f"/v1/orders/{order_no}/invoice", json=INVOICE), 409, "invoice_exists")
    assert [i["kind"] for i in await invoices(api, order_no)] == ["regular"]  # nothing else was issued


# ------------------------------------------------------------------------------------------ bank transfers


async def test_voucher_and_transfer_decisions_are_recorded_once_and_set_the_orders_status(
    ctx: ServiceContext, acts: PaymentActivities, api: httpx.AsyncClient
) -> None:
    order_no, _ = await add_order(ctx, 2, method=PaymentMethod.TRANSFER)
    uploaded_at = utcnow()
    first_voucher = c.RecordVoucher(order_no=order_no, voucher_key=f"ciie6/{order_no}/a.pdf", at=uploaded_at)
    await acts.record_voucher(first_voucher)
    await acts.record_voucher(first_voucher.model_copy(update={"at": uploaded_at + timedelta(seconds=5)}))
    order = await order_view(api, order_no)
    assert order["status"] == "awaiting_confirmation" and order["voucher_key"] == first_voucher.voucher_key
    assert datetime.fromisoformat(order["voucher_uploaded_at"]) == uploaded_at  # the first record stands

    rejected_at = utcnow()
    rejection = c.RecordTransferDecision(
        order_no=order_no,
        decision=Decision.REJECT,
        reason="the amount on the voucher does not match the order",
        reviewer="finance.li",
        bank_reference=None,
        decided_at=rejected_at,
    )
    await acts.record_transfer_decision(rejection)
    await acts.record_transfer_decision(rejection)  # the activity ran twice
    order = await order_view(api, order_no)
    assert order["status"] == "awaiting_payment"  # the unit may upload another voucher
    assert [
        (d["decision"], d["reviewer"], d["reason"], d["voucher_key"]) for d in order["transfer_decisions"]
    ] == [("reject", "finance.li", rejection.reason, first_voucher.voucher_key)]

    second_key = f"ciie6/{order_no}/b.jpg"
    await acts.record_voucher(c.RecordVoucher(order_no=order_no, voucher_key=second_key, at=utcnow()))
    approval = c.RecordTransferDecision(
        order_no=order_no,
        decision=Decision.APPROVE,
        reason=None,
        reviewer="finance.wang",
        bank_reference="BOC20231010000123",
        decided_at=rejected_at + timedelta(hours=3),
    )
    await acts.record_transfer_decision(approval)
    await acts.record_transfer_decision(approval)
    assert (await order_view(api, order_no))["status"] == "awaiting_confirmation"  # paid only when booked
    await acts.mark_order_paid(
        c.MarkOrderPaid(
            order_no=order_no,
            transaction_id="BOC20231010000123",
            amount_fen=2 * FEE,
            paid_at=approval.decided_at,
        )
    )
    order = await order_view(api, order_no)
    assert order["status"] == "paid" and order["transaction_id"] == "BOC20231010000123"
    assert [(d["decision"], d["bank_reference"], d["voucher_key"]) for d in order["transfer_decisions"]] == [
        ("reject", None, first_voucher.voucher_key),
        ("approve", "BOC20231010000123", second_key),
    ]
    async with ctx.db.sessions() as session:
        rows = await session.scalar(
            select(func.count())
            .select_from(TransferDecisionRecord)
            .where(TransferDecisionRecord.order_no == order_no)
        )
    assert rows == 2

    # A voucher recorded again for a paid order (a very late retry) does not reopen it.
    await acts.record_voucher(first_voucher)
    assert (await order_view(api, order_no))["status"] == "paid"


async def test_a_transfer_order_takes_a_voucher_and_finance_decides_through_the_workflow(
    ctx: ServiceContext,
    api: httpx.AsyncClient,
    registration: RegistrationStandIn,
    temporal: WorkflowEnvironment,
) -> None:
    now = utcnow()
    extended = c.PaymentDeadlines(
        qr=now + timedelta(days=9), b2b=now + timedelta(days=9), transfer=now + timedelta(days=6)
    )
    registration.deadlines = extended  # the organiser extended them: the edition file is out of date
    people = [new_id("R"), new_id("R")]
    registration.unpaid["UTRANSFER"] = {rid: FeeKind.STANDARD for rid in people}
    api.headers.update(unit("UTRANSFER"))  # that unit's buyer

    created = await api.post(
        "/v1/orders", json={"unit_id": "UTRANSFER", "registration_ids": people, "method": "transfer"}
    )
    assert created.status_code == 201, created.text
    order = created.json()
    order_no = order["order_no"]
    assert order["qr_payload"] is None and order["qr_channel"] is None and order["amount_fen"] == 2 * FEE
    assert datetime.fromisoformat(order["deadline"]) == extended.transfer
    assert all(registration.asked_with_token)
    handle = temporal.client.get_workflow_handle(payment_order_workflow_id("ciie6", order_no))
    start = (await handle.query("seen"))["start"]
    assert start["method"] == "transfer" and datetime.fromisoformat(start["deadline"]) == extended.transfer
    assert datetime.fromisoformat(start["expo_closes"]) == ctx.edition.deadlines.expo_closes

    # The people in it wait for the transfer: another order for them is refused, also while finance looks.
    again = {"unit_id": "UTRANSFER", "registration_ids": people[:1], "method": "qr"}
    assert_refused(await api.post("/v1/orders", json=again), 409, "already_in_open_order")

    upload = await api.post(f"/v1/orders/{order_no}/voucher-upload", json={"content_type": "image/jpeg"})
    assert upload.status_code == 200, upload.text
    key = upload.json()["voucher_key"]
    assert key.startswith(f"ciie6/{order_no}/") and key.endswith(".jpg")
    assert ctx.settings.bucket_vouchers in upload.json()["url"]
    assert upload.json()["headers"] == {"Content-Type": "image/jpeg"}

    assert_refused(
        await api.post(f"/v1/orders/{order_no}/voucher", json={"voucher_key": key}), 422, "voucher_missing"
    )
    other = f"ciie6/PSOMEONEELSE/{key.rsplit('/', 1)[-1]}"
    assert_refused(
        await api.post(f"/v1/orders/{order_no}/voucher", json={"voucher_key": other}),
        422,
        "invalid_voucher_key",
    )
    await ctx.store.put(ctx.settings.bucket_vouchers, key, b"\xff\xd8 remittance voucher", "image/jpeg")
    submitted = await api.post(f"/v1/orders/{order_no}/voucher", json={"voucher_key": key})
    assert submitted.status_code == 200, submitted.text
    assert submitted.json() == {"order_no": order_no, "status": "awaiting_confirmation"}
    # The workflow's validator refuses a second voucher while the first is with finance.
    assert_refused(
        await api.post(f"/v1/orders/{order_no}/voucher", json={"voucher_key": key}), 409, "voucher_pending"
    )

    # What the workflow then records (RECORD_VOUCHER) puts the order in finance's queue.
    await PaymentActivities(ctx, gateway_for(ctx)).record_voucher(
        c.RecordVoucher(order_no=order_no, voucher_key=key, at=utcnow())
    )
    queue = await api.get("/v1/transfers", params={"status": "awaiting_confirmation"}, headers=FINANCE)
    assert order_no in [o["order_no"] for o in queue.json()]
    assert_refused(await api.post(f"/v1/orders/{order_no}/voucher-upload"), 409, "voucher_pending")

    decided = await api.post(
        f"/v1/orders/{order_no}/transfer-decision",
        json={"decision": "approve", "reviewer": "finance.wang", "bank_reference": "ICBC0001"},
        headers=FINANCE,
    )
    assert decided.status_code == 200, decided.text
    assert decided.json()["status"] == "paid"
    refused = await api.post(
        f"/v1/orders/{order_no}/transfer-decision",
        json={"decision": "reject", "reason": "x", "reviewer": "finance.li"},
        headers=FINANCE,
    )
    assert_refused(refused, 409, "no_voucher")
    # The reviewer recorded is the logged-in staff member, not the body's (kept for old clients).
    assert (await handle.query("seen"))["reviewers"] == ["administrator.all@organiser.example.com"]
    await handle.signal("finish")


async def test_vouchers_and_decisions_are_refused_for_unknown_gateway_and_late_orders(
    ctx: ServiceContext, api: httpx.AsyncClient, registration: RegistrationStandIn
) -> None:
    assert_refused(await api.post("/v1/orders/PNOSUCHORDER/voucher-upload"), 404, "not_found")
    qr_order, _ = await add_order(ctx, 1)
    assert_refused(await api.post(f"/v1/orders/{qr_order}/voucher-upload"), 409, "not_transfer_order")
    key = f"ciie6/{qr_order}/x.pdf"
    assert_refused(
        await api.post(f"/v1/orders/{qr_order}/voucher", json={"voucher_key": key}), 409, "not_transfer_order"
    )
    decision = {"decision": "approve", "reviewer": "finance.wang", "bank_reference": "B1"}
    assert_refused(
        await api.post(f"/v1/orders/{qr_order}/transfer-decision", json=decision, headers=FINANCE),
        409,
        "not_transfer_order",
    )
    closed, _ = await add_order(ctx, 1, method=PaymentMethod.TRANSFER, status=OrderStatus.CLOSED)
    assert_refused(await api.post(f"/v1/orders/{closed}/voucher-upload"), 409, "order_closed")

    # After the transfer deadline (as extended: here, not far enough) no voucher is taken any more.
    yesterday = utcnow() - timedelta(days=1)
    registration.deadlines = c.PaymentDeadlines(qr=yesterday, b2b=yesterday, transfer=yesterday)
    late, _ = await add_order(ctx, 1, method=PaymentMethod.TRANSFER, deadline=yesterday - timedelta(days=1))
    assert_refused(await api.post(f"/v1/orders/{late}/voucher-upload"), 409, "voucher_deadline_passed")
    person = new_id("R")
    registration.unpaid["ULATE"] = {person: FeeKind.STANDARD}
    api.headers.update(unit("ULATE"))
    order = {"unit_id": "ULATE", "registration_ids": [person], "method": "qr"}
    assert_refused(await api.post("/v1/orders", json=order), 409, "payment_closed")


async def test_b2b_is_for_units_that_opened_it_and_uses_the_editions_deadline(
    ctx: ServiceContext,
    api: httpx.AsyncClient,
    registration: RegistrationStandIn,
    temporal: WorkflowEnvironment,
    sandbox: sandbox_gateway.SandboxState,
) -> None:
    registration.deadlines = None  # the registration service answers 404
    person = new_id("R")
    registration.unpaid["UB2B"] = {person: FeeKind.STANDARD}
    api.headers.update(unit("UB2B"))
    b2b = {"unit_id": "UB2B", "registration_ids": [person], "method": "b2b"}
    # B2B only for a unit that opened it with its bank in advance (FAQ XII): nothing is saved before.
    refused = await api.post("/v1/orders", json=b2b)
    assert_refused(refused, 409, "b2b_not_opened")
    assert refused.json()["field"] == "method"
    sandbox.b2b_opened.add("UB2B")  # the unit's bank opened enterprise online banking for it
    created = await api.post("/v1/orders", json=b2b)
    assert created.status_code == 201, created.text
    order = created.json()
    assert order["qr_channel"] is None and order["qr_payload"]  # where to pay at the gateway
    assert datetime.fromisoformat(order["deadline"]) == ctx.edition.deadlines.b2b_payment_closes
    await temporal.client.get_workflow_handle(payment_order_workflow_id("ciie6", order["order_no"])).signal(
        "finish"
    )


# ------------------------------------------------------------------------------------------ deadline extensions


async def test_extended_deadlines_reach_every_open_order_once_and_a_retry_resumes(
    ctx: ServiceContext,
    acts: PaymentActivities,
    api: httpx.AsyncClient,
    temporal: WorkflowEnvironment,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    edition = f"x{new_id('E')[1:8].lower()}"  # an edition of this test's own
    open_orders = [
        (await add_order(ctx, 1, edition=edition, order_no=f"P{edition}{n}", status=status))[0]
        for n, status in enumerate([OrderStatus.AWAITING_PAYMENT, OrderStatus.AWAITING_CONFIRMATION] * 3)
    ]
    closed_workflow = open_orders.pop(2)  # open in the table, but its workflow has gone
    paid, _ = await add_order(ctx, 1, edition=edition, order_no=f"P{edition}9", status=OrderStatus.PAID)
    other_edition, _ = await add_order(ctx, 1, edition="ciie6")
    handles = {}
    for order_no in [*open_orders, paid, other_edition]:
        order_edition = "ciie6" if order_no == other_edition else edition
        handles[order_no] = await temporal.client.start_workflow(
            "PaymentOrder",
            c.PaymentOrderStart(
                edition=order_edition, order_no=order_no, unit_id="UTEST", mission="shanghai",
                method=PaymentMethod.QR, amount_fen=FEE, registration_ids=["R1"],
                deadline=utcnow(), expo_closes=utcnow(),
            ),
            id=payment_order_workflow_id(order_edition, order_no),
            task_queue=WORKFLOW_TASK_QUEUE,
        )  # fmt: skip
    later = utcnow() + timedelta(days=30)
    announcement = c.AnnounceDeadlines(
        edition=edition, deadlines=c.PaymentDeadlines(qr=later, b2b=later, transfer=later - timedelta(days=3))
    )
    monkeypatch.setattr(payment_activities, "PAGE_SIZE", 2)

    # The first attempt heartbeats after each page of two; say it died after the first page.
    beats: list[tuple[Any, ...]] = []
    first = ActivityEnvironment()
    first.on_heartbeat = lambda *details: beats.append(details)
    announced = await first.run(acts.announce_deadlines, announcement)
    assert announced.signalled == 5  # every open order whose workflow runs; not the paid one
    # Pages of two by order number: the third order's workflow has gone, so it is skipped.
    assert [b[0] for b in beats] == [open_orders[1], open_orders[2], open_orders[4]]

    retry = ActivityEnvironment()
    retry.info = replace(retry.info, attempt=2, heartbeat_details=list(beats[0]))
    resumed = await retry.run(acts.announce_deadlines, announcement)
    assert resumed.signalled == 5  # the count carried over: the orders after the first page again

    async def extensions(order_no: str) -> int:
        seen = await handles[order_no].query("seen")
        return len(seen["extensions"])

    assert [await extensions(o) for o in open_orders] == [1, 1, 2, 2, 2]
    assert await extensions(paid) == 0 and await extensions(other_edition) == 0
    assert datetime.fromisoformat((await order_view(api, open_orders[0]))["deadline"]) == later
    assert datetime.fromisoformat((await order_view(api, closed_workflow))["deadline"]) == later
    for handle in handles.values():
        await handle.signal("finish")


# ------------------------------------------------------------------------------------------ gateway callbacks


async def notify(
    api: httpx.AsyncClient, settings: Settings, order_no: str, transaction_id: str, amount_fen: int
) -> httpx.Response:
    body = json.dumps(
        {
            "merchant_id": settings.gateway_merchant_id,
            "order_no": order_no,
            "transaction_id": transaction_id,
            "amount_fen": amount_fen,
            "paid_at": utcnow().isoformat(),
        }
    ).encode()
    headers = {
        "Content-Type": "application/json",
        **signing.sign(settings.gateway_key.get_secret_value(), body, utcnow()),
    }
    return await api.post("/v1/gateway/notify", content=body, headers=headers)


async def test_money_for_an_order_whose_workflow_has_closed_is_refunded_and_acknowledged(
    ctx: ServiceContext,
    acts: PaymentActivities,
    api: httpx.AsyncClient,
    sandbox: sandbox_gateway.SandboxState,
    temporal: WorkflowEnvironment,
) -> None:
    order_no, _ = await add_order(ctx, 1, status=OrderStatus.CLOSED)
    handle = await temporal.client.start_workflow(
        "PaymentOrder",
        c.PaymentOrderStart(
            edition="ciie6", order_no=order_no, unit_id="UTEST", mission="shanghai", method=PaymentMethod.QR,
            amount_fen=FEE, registration_ids=["R1"], deadline=utcnow(), expo_closes=utcnow(),
        ),
        id=payment_order_workflow_id("ciie6", order_no),
        task_queue=WORKFLOW_TASK_QUEUE,
    )  # fmt: skip
    on_time = await pay_at_gateway(ctx, order_no, FEE)
    response = await notify(api, ctx.settings, order_no, on_time, FEE)
    assert response.status_code == 200 and response.text == "success"
    assert (await handle.query("seen"))["confirmations"] == [on_time]  # the workflow got it

    await handle.signal("finish")
    await handle.result()  # the workflow has closed (the expo is over)
    late = await pay_at_gateway(ctx, order_no, FEE)
    for _ in range(2):  # the gateway calls again until it hears "success"
        response = await notify(api, ctx.settings, order_no, late, FEE)
        assert response.status_code == 200 and response.text == "success"
    assert gateway_refunds(sandbox, order_no) == [FEE]  # refunded once
    async with ctx.db.sessions() as session:
        refund = (await session.scalars(select(Refund).where(Refund.order_no == order_no))).one()
    assert (refund.refund_key, refund.transaction_id, refund.succeeded) == (f"late:{late}", late, True)


async def test_a_late_repeat_of_the_payment_that_paid_the_order_is_not_refunded(
    ctx: ServiceContext,
    acts: PaymentActivities,
    api: httpx.AsyncClient,
    sandbox: sandbox_gateway.SandboxState,
) -> None:
    order_no, _, transaction_id = await paid_order(ctx, acts, people=1)  # no workflow runs for it now
    response = await notify(api, ctx.settings, order_no, transaction_id, FEE)
    assert response.status_code == 200 and response.text == "success"
    assert gateway_refunds(sandbox, order_no) == []
    assert (await order_view(api, order_no))["status"] == "paid"
