"""The sandbox gateway misbehaving as real gateways do, and the payment service standing firm:
duplicate, delayed, out-of-order and lost callbacks (the lost one found by reconciliation), refunds
that fail or time out before they succeed, forged and replayed callbacks.

The sandbox, the payment API's callback route and the reconciliation route run in process (httpx's
ASGI transport): the sandbox's callbacks reach the real route. Temporal is the time-skipping test
server with a stand-in order workflow that records every confirmation signalled to it (the real
workflow's counting is the property test's business, tests/test_payment_properties.py).
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from temporalio import workflow
from temporalio.client import WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from services.payment import api as payment_api
from services.payment import reconcile, refunds, sandbox_gateway
from services.payment.activities import gateway_for
from services.payment.models import GatewayTransaction, OrderItem, PaymentOrder, Refund
from shared import contracts as c
from shared import signing
from shared.catalogue import load_edition, years_until_open
from shared.db import utcnow
from shared.http import install_error_handlers
from shared.ids import new_id
from shared.service import ServiceContext
from shared.settings import Settings, get_settings
from shared.signing import NonceCache
from shared.temporal import WORKFLOW_TASK_QUEUE, payment_order_workflow_id
from shared.types import FeeKind, OrderStatus, PaymentMethod, QrChannel
from tests.service_env import service_context

GATEWAY = "http://gateway.test"
PAYMENT = "http://payment.test"
NOTIFY = f"{PAYMENT}/v1/gateway/notify"
FEE = 20000


@workflow.defn(name="PaymentOrder")
class RecordingOrderWorkflow:
    """Stands in for the PaymentOrder workflow: records each confirmation signalled, in order."""

    def __init__(self) -> None:
        self.confirmations: list[str] = []
        self.finished = False

    @workflow.run
    async def run(self, start: c.PaymentOrderStart) -> None:
        await workflow.wait_condition(lambda: self.finished)

    @workflow.signal(name=c.SIGNAL_GATEWAY_CONFIRMATION)
    def gateway_confirmation(self, confirmation: c.GatewayConfirmation) -> None:
        self.confirmations.append(confirmation.transaction_id)

    @workflow.signal(name="finish")
    def finish(self) -> None:
        self.finished = True

    @workflow.query(name="confirmations")
    def seen(self) -> list[str]:
        return list(self.confirmations)


class EveryMission:
    """Finance staff who see every mission (an administrator)."""

    def sees(self, mission: str) -> bool:
        return True


@pytest.fixture(scope="module")
async def temporal() -> AsyncIterator[WorkflowEnvironment]:
    server = Path(sys.executable).parent / "temporal-test-server"
    async with (
        await WorkflowEnvironment.start_time_skipping(
            test_server_existing_path=str(server) if server.is_file() else None,
            data_converter=pydantic_data_converter,
        ) as env,
        Worker(
            env.client,
            task_queue=WORKFLOW_TASK_QUEUE,
            workflows=[RecordingOrderWorkflow],
            workflow_runner=UnsandboxedWorkflowRunner(),
        ),
    ):
        yield env


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    edition = load_edition("ciie6")
    return Settings(
        data_dir=tmp_path,
        edition="ciie6",
        edition_year_shift=years_until_open(edition, utcnow()),
        gateway_url=GATEWAY,
        payment_url=PAYMENT,
    )


@pytest.fixture
def sandbox(settings: Settings) -> Iterator[sandbox_gateway.SandboxState]:
    sandbox_gateway.STATE.reset()
    sandbox_gateway.STATE.retry_seconds = 0.01
    sandbox_gateway.app.dependency_overrides[get_settings] = lambda: settings
    try:
        yield sandbox_gateway.STATE
    finally:
        sandbox_gateway.app.dependency_overrides.clear()
        sandbox_gateway.STATE.reset()


@pytest.fixture
async def ctx(
    settings: Settings, sandbox: sandbox_gateway.SandboxState, temporal: WorkflowEnvironment
) -> AsyncIterator[ServiceContext]:
    http = httpx.AsyncClient(mounts={GATEWAY: httpx.ASGITransport(app=sandbox_gateway.app)})
    async with service_context("payment", settings, temporal=temporal.client, http=http) as context:
        payment_api.app.state.ctx = context
        # The sandbox's callbacks reach the payment API in process.
        sandbox.callback_client = httpx.AsyncClient(
            mounts={PAYMENT: httpx.ASGITransport(app=payment_api.app)}
        )
        try:
            yield context
        finally:
            await sandbox.callback_client.aclose()
            sandbox.callback_client = None


@pytest.fixture
def gateway(sandbox: sandbox_gateway.SandboxState) -> httpx.AsyncClient:
    """The sandbox as the buyer's phone and the tests (its control routes) reach it."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=sandbox_gateway.app), base_url=GATEWAY)


@pytest.fixture
async def api(ctx: ServiceContext) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=payment_api.app), base_url=PAYMENT
    ) as client:
        yield client


@pytest.fixture
async def finance_api(ctx: ServiceContext) -> AsyncIterator[httpx.AsyncClient]:
    """The reconciliation router on an app of its own, finance's authentication stood in for."""
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(reconcile.router)
    app.state.ctx = ctx
    app.dependency_overrides[reconcile.finance_placeholder] = lambda: EveryMission()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=PAYMENT) as client:
        yield client


Handle = WorkflowHandle[Any, Any]


async def open_order(ctx: ServiceContext, temporal: WorkflowEnvironment) -> tuple[str, Handle, str]:
    """An order stored, its (stand-in) workflow started and its QR code made: (order no, handle, token)."""
    order_no = new_id("P")
    async with ctx.db.transaction() as session:
        session.add(
            PaymentOrder(
                order_no=order_no,
                edition="ciie6",
                unit_id="UTEST",
                mission="shanghai",
                method=PaymentMethod.QR,
                qr_channel=QrChannel.UNIONPAY,
                amount_fen=FEE,
                status=OrderStatus.AWAITING_PAYMENT,
                deadline=utcnow() + timedelta(days=10),
                items=[OrderItem(registration_id=new_id("R"), fee_kind=FeeKind.STANDARD, amount_fen=FEE)],
            )
        )
    handle = await temporal.client.start_workflow(
        "PaymentOrder",
        c.PaymentOrderStart(
            edition="ciie6", order_no=order_no, unit_id="UTEST", mission="shanghai", method=PaymentMethod.QR,
            amount_fen=FEE, registration_ids=["R1"], deadline=utcnow() + timedelta(days=10),
            expo_closes=utcnow() + timedelta(days=30),
        ),
        id=payment_order_workflow_id("ciie6", order_no),
        task_queue=WORKFLOW_TASK_QUEUE,
    )  # fmt: skip
    qr = await gateway_for(ctx).create_qr(
        order_no=order_no, amount_fen=FEE, channel=QrChannel.UNIONPAY, notify_url=NOTIFY
    )
    return order_no, handle, qr.payload.rsplit("/", 1)[-1]


async def pay(gateway: httpx.AsyncClient, token: str, amount_fen: int = FEE, **behaviour: object) -> str:
    params = {name: str(value).lower() for name, value in behaviour.items()}
    response = await gateway.post(f"/v1/pay/{token}", json={"amount_fen": amount_fen}, params=params)
    assert response.status_code == 200, response.text
    transaction_id: str = response.json()["transaction_id"]
    return transaction_id


async def stored(ctx: ServiceContext, order_no: str) -> list[str]:
    async with ctx.db.sessions() as session:
        rows = await session.scalars(
            select(GatewayTransaction.transaction_id).where(GatewayTransaction.order_no == order_no)
        )
        return sorted(rows)


async def confirmations(handle: Handle) -> list[str]:
    seen: list[str] = await handle.query("confirmations")
    return seen


def sent_for(
    sandbox: sandbox_gateway.SandboxState, transaction_id: str
) -> list[sandbox_gateway.SentCallback]:
    return [s for s in sandbox.sent if json.loads(s.body)["transaction_id"] == transaction_id]


def signed(
    settings: Settings, payload: dict[str, Any], *, key: str | None = None, at: Any = None
) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload).encode()
    headers = {
        "Content-Type": "application/json",
        **signing.sign(key or settings.gateway_key.get_secret_value(), body, at or utcnow()),
    }
    return body, headers


# ------------------------------------------------------------------------------------------ deliveries


async def test_a_callback_delivered_three_times_is_stored_once_and_acknowledged_each_time(
    ctx: ServiceContext, sandbox: sandbox_gateway.SandboxState, gateway: httpx.AsyncClient,
    temporal: WorkflowEnvironment,
) -> None:  # fmt: skip
    order_no, handle, token = await open_order(ctx, temporal)
    transaction_id = await pay(gateway, token, copies=3)
    await sandbox.delivered()
    assert [s.status for s in sent_for(sandbox, transaction_id)] == [200, 200, 200]
    assert len({s.headers[signing.NONCE] for s in sandbox.sent}) == 3  # each copy freshly signed
    assert await stored(ctx, order_no) == [transaction_id]
    # Passed on each time: the workflow counts a transaction id once.
    assert await confirmations(handle) == [transaction_id] * 3
    await handle.signal("finish")


async def test_a_delayed_callback_arrives_later_and_an_order_wide_behaviour_applies(
    ctx: ServiceContext, sandbox: sandbox_gateway.SandboxState, gateway: httpx.AsyncClient,
    temporal: WorkflowEnvironment,
) -> None:  # fmt: skip
    order_no, handle, token = await open_order(ctx, temporal)
    response = await gateway.post("/v1/sandbox/behaviour", json={"order_no": order_no, "delay": 0.3})
    assert response.status_code == 200 and response.json()["delay"] == 0.3
    transaction_id = await pay(gateway, token)
    assert sandbox.sent == [] and await stored(ctx, order_no) == []  # not yet
    await sandbox.delivered()
    assert await stored(ctx, order_no) == [transaction_id]
    assert await confirmations(handle) == [transaction_id]
    await handle.signal("finish")


async def test_an_older_transactions_callback_delivered_after_a_newer_one_is_taken_too(
    ctx: ServiceContext, sandbox: sandbox_gateway.SandboxState, gateway: httpx.AsyncClient,
    temporal: WorkflowEnvironment,
) -> None:  # fmt: skip
    order_no, handle, token = await open_order(ctx, temporal)
    older = await pay(gateway, token, FEE // 2, hold=True)
    await sandbox.delivered()
    assert sandbox.sent == []  # held back
    newer = await pay(gateway, token)
    await sandbox.delivered()
    assert [json.loads(s.body)["transaction_id"] for s in sandbox.sent] == [newer, older]
    assert await confirmations(handle) == [newer, older]
    assert await stored(ctx, order_no) == sorted([older, newer])
    await handle.signal("finish")


async def test_an_unacknowledged_callback_is_retried_until_the_merchant_says_success(
    ctx: ServiceContext, sandbox: sandbox_gateway.SandboxState, gateway: httpx.AsyncClient,
    temporal: WorkflowEnvironment, settings: Settings,
) -> None:  # fmt: skip
    order_no, handle, token = await open_order(ctx, temporal)
    real_key = settings.gateway_key
    # The merchant's key was rotated and the gateway has not caught up: callbacks are refused...
    sandbox_gateway.app.dependency_overrides[get_settings] = lambda: settings.model_copy(
        update={"gateway_key": type(real_key)("not-the-merchants-key")}
    )
    transaction_id = await pay(gateway, token)
    await sandbox.delivered()
    assert {s.status for s in sent_for(sandbox, transaction_id)} == {401}
    assert len(sent_for(sandbox, transaction_id)) == sandbox_gateway.CALLBACK_ATTEMPTS
    assert await stored(ctx, order_no) == [] and await confirmations(handle) == []
    await handle.signal("finish")


async def test_a_lost_callback_is_found_by_reconciliation_once(
    ctx: ServiceContext, sandbox: sandbox_gateway.SandboxState, gateway: httpx.AsyncClient,
    temporal: WorkflowEnvironment, finance_api: httpx.AsyncClient,
) -> None:  # fmt: skip
    order_no, handle, token = await open_order(ctx, temporal)
    delivered = await pay(gateway, token, FEE // 2)
    lost = await pay(gateway, token, lost=True)
    await sandbox.delivered()
    assert sent_for(sandbox, lost) == [] and await stored(ctx, order_no) == [delivered]

    response = await finance_api.post(f"/v1/orders/{order_no}/reconcile")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "order_no": order_no,
        "gateway_knows_order": True,
        "gateway_transactions": [delivered, lost],
        "found": [lost],
    }
    assert await stored(ctx, order_no) == sorted([delivered, lost])
    assert await confirmations(handle) == [delivered, lost]

    again = await finance_api.post(f"/v1/orders/{order_no}/reconcile")
    assert again.json()["found"] == []  # a repeat passes nothing on
    assert await confirmations(handle) == [delivered, lost]
    await handle.signal("finish")


async def test_reconciliation_is_for_finance_and_for_known_orders(
    ctx: ServiceContext, finance_api: httpx.AsyncClient, temporal: WorkflowEnvironment
) -> None:
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(reconcile.router)
    app.state.ctx = ctx
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=PAYMENT) as anyone:
        refused = await anyone.post("/v1/orders/PNOPE/reconcile")
    assert refused.status_code == 403 and refused.json()["code"] == "finance_only"
    assert (await finance_api.post("/v1/orders/PNOPE/reconcile")).status_code == 404
    order_no, handle, _ = await open_order(ctx, temporal)
    sandbox_gateway.STATE.orders.pop(order_no)  # the gateway never heard of it
    answer = (await finance_api.post(f"/v1/orders/{order_no}/reconcile")).json()
    assert answer["gateway_knows_order"] is False and answer["found"] == []
    await handle.signal("finish")


async def test_a_lost_payment_for_an_order_whose_workflow_closed_is_refunded_once_on_reconciliation(
    ctx: ServiceContext, sandbox: sandbox_gateway.SandboxState, gateway: httpx.AsyncClient,
    temporal: WorkflowEnvironment, finance_api: httpx.AsyncClient,
) -> None:  # fmt: skip
    order_no, handle, token = await open_order(ctx, temporal)
    await handle.signal("finish")
    await handle.result()
    late = await pay(gateway, token, lost=True)
    found = (await finance_api.post(f"/v1/orders/{order_no}/reconcile")).json()["found"]
    assert found == [late]
    assert [r["amount_fen"] for r in sandbox.orders[order_no].refunds] == [FEE]
    assert (await finance_api.post(f"/v1/orders/{order_no}/reconcile")).json()["found"] == []
    assert len(sandbox.orders[order_no].refunds) == 1


# ------------------------------------------------------------------------------------------ refunds


async def test_a_refund_that_fails_then_times_out_succeeds_once_on_retry(
    ctx: ServiceContext, sandbox: sandbox_gateway.SandboxState, gateway: httpx.AsyncClient,
    temporal: WorkflowEnvironment,
) -> None:  # fmt: skip
    order_no, handle, token = await open_order(ctx, temporal)
    transaction_id = await pay(gateway, token, FEE * 2, lost=True)
    behaviour = {"order_no": order_no, "refund_failures": 2, "refund_timeouts": 1}
    assert (await gateway.post("/v1/sandbox/behaviour", json=behaviour)).status_code == 200
    request = c.RefundRequest(
        refund_key=f"order:{order_no}:txn:{transaction_id}:excess",
        order_no=order_no,
        transaction_id=transaction_id,
        amount_fen=FEE,
        reason="paid more than the order",
    )
    for _ in range(2):  # the gateway says "failed": nothing moved, try again
        with pytest.raises(refunds.RefundError):
            await refunds.refund(ctx.db, gateway_for(ctx), request)
        assert sandbox.orders[order_no].refunds == []
    with pytest.raises(httpx.HTTPStatusError):  # made, but the answer timed out
        await refunds.refund(ctx.db, gateway_for(ctx), request)
    assert len(sandbox.orders[order_no].refunds) == 1
    result = await refunds.refund(ctx.db, gateway_for(ctx), request)
    assert result.succeeded
    assert [r["amount_fen"] for r in sandbox.orders[order_no].refunds] == [FEE]  # once, for all the tries
    async with ctx.db.sessions() as session:
        rows = list(await session.scalars(select(Refund).where(Refund.order_no == order_no)))
    assert [(r.refund_no, r.succeeded) for r in rows] == [(result.refund_no, True)]
    await handle.signal("finish")


# ------------------------------------------------------------------------------------------ forged and replayed


async def test_forged_callbacks_are_refused_and_nothing_is_recorded(
    ctx: ServiceContext, api: httpx.AsyncClient, settings: Settings, temporal: WorkflowEnvironment
) -> None:
    order_no, handle, _ = await open_order(ctx, temporal)
    payload = {
        "merchant_id": settings.gateway_merchant_id,
        "order_no": order_no,
        "transaction_id": new_id("T"),
        "amount_fen": FEE,
        "paid_at": utcnow().isoformat(),
    }
    body, headers = signed(settings, payload, key="someone-elses-key")
    response = await api.post("/v1/gateway/notify", content=body, headers=headers)
    assert response.status_code == 401 and response.json()["code"] == "bad_signature"

    body, headers = signed(settings, payload)  # signed by the gateway, then tampered with
    tampered = body.replace(str(FEE).encode(), str(FEE * 100).encode())
    response = await api.post("/v1/gateway/notify", content=tampered, headers=headers)
    assert response.status_code == 401 and response.json()["code"] == "bad_signature"

    response = await api.post(
        "/v1/gateway/notify", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 401 and response.json()["code"] == "unsigned"

    body, headers = signed(settings, payload, at=utcnow() - timedelta(minutes=10))
    response = await api.post("/v1/gateway/notify", content=body, headers=headers)
    assert response.status_code == 401 and response.json()["code"] == "stale"

    body, headers = signed(settings, {**payload, "merchant_id": "another-merchant"})
    response = await api.post("/v1/gateway/notify", content=body, headers=headers)
    assert response.status_code == 403

    assert await stored(ctx, order_no) == [] and await confirmations(handle) == []
    await handle.signal("finish")


async def test_replayed_callbacks_are_refused_and_count_once(
    ctx: ServiceContext, sandbox: sandbox_gateway.SandboxState, gateway: httpx.AsyncClient,
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, settings: Settings,
) -> None:  # fmt: skip
    order_no, handle, token = await open_order(ctx, temporal)
    transaction_id = await pay(gateway, token)
    await sandbox.delivered()
    (original,) = sandbox.sent
    for _ in range(3):  # the identical signed request (already delivered), replayed within the window
        response = await api.post("/v1/gateway/notify", content=original.body, headers=original.headers)
        assert response.status_code == 401 and response.json()["code"] == "replayed", response.text
    assert await stored(ctx, order_no) == [transaction_id]
    assert set(await confirmations(handle)) == {transaction_id}  # one transaction, however often

    # The same body re-signed with a timestamp outside the window: refused.
    body, headers = signed(settings, json.loads(original.body), at=utcnow() - timedelta(minutes=6))
    response = await api.post("/v1/gateway/notify", content=body, headers=headers)
    assert response.status_code == 401 and response.json()["code"] == "stale"
    await handle.signal("finish")


def test_the_nonce_cache_recognises_a_replay_within_the_window_only() -> None:
    cache = NonceCache()
    now = utcnow()
    headers = signing.sign("key", b"{}", now)
    assert cache.check(headers, now) is False
    assert cache.check(headers, now + timedelta(seconds=30)) is True
    assert cache.check(signing.sign("key", b"{}", now), now) is False  # a fresh nonce
    assert cache.check({}, now) is False
    # Long after the window the nonce is forgotten (the timestamp check refuses such a message).
    assert cache.check(headers, now + timedelta(minutes=30)) is False
    small = NonceCache(max_size=2)
    for n in range(3):
        small.seen_before(str(n), now)
    assert small.seen_before("0", now) is False  # the oldest was dropped to stay within bounds
