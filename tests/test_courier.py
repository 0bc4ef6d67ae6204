"""Certificates sent by express, as the buyer and the certificate office notice it: a parcel booked once
however often dispatch runs, addresses outside the Chinese mainland refused, tracking events that come
as signed callbacks (twice, out of order, or never) and are read back once each and in order, forged
and replayed callbacks refused, a courier that is down, and a delivery reaching the registration.

The certificate service's code (the dispatch activity, the tracking reads, the callback route on an app
of its own) talks real HTTP to the sandbox courier in process (httpx's ASGI transport), and the
sandbox's callbacks reach the real route the same way. The database is SQLite built by the service's
migrations; Temporal is the time-skipping test server (the registration workflow itself in the last
test). Parcels move when a test advances them (pace 0), except in the test of the sandbox's own pace.
"""

from __future__ import annotations

import dataclasses
import json
import re
import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from services.certificate import courier_api, sandbox_courier
from services.certificate.activities import CertificateActivities
from services.certificate.courier import AddressRefused, CourierUnavailable, TrackingStatus
from services.certificate.models import Certificate, TrackingEvent
from services.certificate.tracking import courier_for, tracking_events
from shared import contracts as c
from shared import signing
from shared.db import utcnow
from shared.http import install_error_handlers
from shared.records import DeliveryAddress, PersonRecord
from shared.service import ServiceContext
from shared.settings import Settings, get_settings
from shared.types import Decision, DeliveryMethod, FeeKind, RegistrationStatus
from tests.service_env import service_context
from tests.service_stand_ins import URLS, StandIns
from tests.workflow_env import time_skipping_environment
from tests.workflow_world import (
    EDITION,
    World,
    approved_unit_with_unpaid,
    paid_for,
    steps,
    until,
    wait_status,
)

COURIER = "http://courier.test"
CERTIFICATE = "http://certificate.test"
UNREACHABLE = "http://courier-unreachable.test"  # connection refused
BUSY = "http://courier-busy.test"  # answers 503
NOTIFY = f"{CERTIFICATE}/v1/courier/events"
S = TrackingStatus
NINGBO = DeliveryAddress(
    recipient="林晓", mobile="+8613900005555", province="浙江省", city="宁波市", district="海曙区",
    detail="中山西路1号", postal_code="315000",
)  # fmt: skip
SHANGHAI = NINGBO.model_copy(
    update={"province": "上海市", "city": "上海市", "district": "浦东新区", "postal_code": "200120"}
)
JOURNEY = [S.BOOKED, S.PICKED_UP, S.IN_TRANSIT, S.IN_TRANSIT, S.OUT_FOR_DELIVERY, S.DELIVERED]


# ------------------------------------------------------------------------------------------ doubles


def holder(registration_id: str, address: DeliveryAddress) -> PersonRecord:
    """What the registration service knows of a buyer who asked for express delivery to ``address``."""
    return PersonRecord(
        registration_id=registration_id, edition=EDITION, unit_id="UTEST", unit_name="宁波测试有限公司",
        name="林晓", nationality="CN", mobile="+8613900005555", email="lin@example.com",
        mission="shanghai", sub_mission=None, fee_kind=FeeKind.STANDARD,
        status=RegistrationStatus.CERTIFICATE_ISSUED, delivery_method=DeliveryMethod.EXPRESS,
        delivery_address=address, photo_key=None,
    )  # fmt: skip


def unreachable(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


def busy(request: httpx.Request) -> httpx.Response:
    return httpx.Response(503, json={"code": "system_busy"})


# ------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
async def temporal() -> AsyncIterator[WorkflowEnvironment]:
    """A server to tell: a card's registration workflow is not running here, which the service takes
    as a registration that has closed (the workflow itself is the last test's business)."""
    async with time_skipping_environment() as env:
        yield env


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, courier_url=COURIER, certificate_url=CERTIFICATE, **URLS)


@pytest.fixture
def sandbox(settings: Settings) -> Iterator[sandbox_courier.SandboxState]:
    """The sandbox courier with our customer key; parcels move only when advanced."""
    state = sandbox_courier.STATE
    state.reset()
    state.retry_seconds = 0.01
    state.default = sandbox_courier.Behaviour(pace=0)
    sandbox_courier.app.dependency_overrides[get_settings] = lambda: settings
    try:
        yield state
    finally:
        sandbox_courier.app.dependency_overrides.clear()
        state.reset()


@pytest.fixture
def people(settings: Settings) -> StandIns:
    """The registration service, which tells each registration's delivery address (the other services'
    routes are not called here)."""
    return StandIns.fresh(settings)


@asynccontextmanager
async def certificate_service(
    settings: Settings, temporal: Client, people: StandIns, sandbox: sandbox_courier.SandboxState
) -> AsyncIterator[tuple[ServiceContext, FastAPI]]:
    """The certificate service's context, and its callback route on an app of its own (the sandbox's
    callbacks reach it in process)."""
    http = httpx.AsyncClient(
        mounts={
            **people.mounts(),
            COURIER: httpx.ASGITransport(app=sandbox_courier.app),
            UNREACHABLE: httpx.MockTransport(unreachable),
            BUSY: httpx.MockTransport(busy),
        }
    )
    async with service_context("certificate", settings, temporal=temporal, http=http) as ctx:
        app = FastAPI()
        install_error_handlers(app)
        app.include_router(courier_api.router)
        app.state.ctx = ctx
        sandbox.callback_client = httpx.AsyncClient(mounts={CERTIFICATE: httpx.ASGITransport(app=app)})
        try:
            yield ctx, app
        finally:
            for delivery in list(sandbox.deliveries):
                delivery.cancel()
            await sandbox.callback_client.aclose()
            sandbox.callback_client = None


@pytest.fixture
async def service(
    settings: Settings, temporal: WorkflowEnvironment, people: StandIns, sandbox: sandbox_courier.SandboxState
) -> AsyncIterator[tuple[ServiceContext, FastAPI]]:
    async with certificate_service(settings, temporal.client, people, sandbox) as service:
        yield service


@pytest.fixture
def ctx(service: tuple[ServiceContext, FastAPI]) -> ServiceContext:
    return service[0]


@pytest.fixture
async def api(service: tuple[ServiceContext, FastAPI]) -> AsyncIterator[httpx.AsyncClient]:
    """The callback route, as anyone on the network reaches it."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=service[1]), base_url=CERTIFICATE
    ) as client:
        yield client


@pytest.fixture
async def courier(sandbox: sandbox_courier.SandboxState) -> AsyncIterator[httpx.AsyncClient]:
    """The sandbox's control routes (behaviour, advance), as a test or a demo calls them."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=sandbox_courier.app), base_url=COURIER
    ) as client:
        yield client


# ------------------------------------------------------------------------------------------ helpers


async def new_card(
    ctx: ServiceContext,
    stand_ins: StandIns,
    address: DeliveryAddress = NINGBO,
    *,
    certificate_no: str | None = None,
    registration_id: str | None = None,
) -> Certificate:
    """A certificate made (not yet dispatched) for a buyer who asked for express delivery to ``address``."""
    certificate = Certificate(
        certificate_no=certificate_no or f"B06-{secrets.randbelow(10**7):07d}",
        edition=EDITION,
        registration_id=registration_id or f"R{secrets.token_hex(6).upper()}",
        badge_key="ciie6/card.pdf",
    )
    async with ctx.db.transaction() as session:
        session.add(certificate)
    stand_ins.people[certificate.registration_id] = holder(certificate.registration_id, address)
    return certificate


async def dispatch(ctx: ServiceContext, card: Certificate) -> c.Dispatched:
    """The dispatch activity, as the registration workflow's call runs it (one attempt)."""
    activities = CertificateActivities(ctx, courier_for(ctx))
    return await activities.dispatch(
        c.DispatchCertificate(
            registration_id=card.registration_id,
            certificate_no=card.certificate_no,
            delivery_method=DeliveryMethod.EXPRESS,
        )
    )


async def behave(courier: httpx.AsyncClient, reference: str | None = None, **behaviour: Any) -> None:
    response = await courier.post("/v1/sandbox/behaviour", json={"reference": reference, **behaviour})
    assert response.status_code == 200, response.text


async def advance(courier: httpx.AsyncClient, tracking_no: str, *, until: S | None = None) -> list[str]:
    """Move the parcel on, one event at a time, up to ``until`` (default: its last event): the statuses."""
    statuses: list[str] = []
    while True:
        response = await courier.post(f"/v1/sandbox/waybills/{tracking_no}/advance")
        if response.status_code == 409:  # delivered or returned: nothing follows
            return statuses
        assert response.status_code == 200, response.text
        statuses.append(response.json()["status"])
        if statuses[-1] == until:
            return statuses


async def ship(
    ctx: ServiceContext,
    people: StandIns,
    sandbox: sandbox_courier.SandboxState,
    courier: httpx.AsyncClient,
    address: DeliveryAddress = NINGBO,
    *,
    until: S | None = None,
    **behaviour: Any,
) -> tuple[Certificate, str, list[str]]:
    """A card dispatched by express to ``address``, its parcel behaving as ``behaviour`` says, moved on up
    to ``until`` (default: its last event) and the callbacks sent: the card, its waybill number and the
    statuses the parcel passed."""
    card = await new_card(ctx, people, address)
    if behaviour:
        await behave(courier, card.certificate_no, **behaviour)
    shipped = await dispatch(ctx, card)
    assert shipped.tracking_no is not None
    statuses = await advance(courier, shipped.tracking_no, until=until)
    await sandbox.delivered()
    return card, shipped.tracking_no, statuses


async def stored(ctx: ServiceContext, tracking_no: str) -> list[TrackingEvent]:
    """What the service kept of a waybill, oldest event first (callbacks arrive in any order)."""
    async with ctx.db.sessions() as session:
        rows = await session.scalars(
            select(TrackingEvent)
            .where(TrackingEvent.tracking_no == tracking_no)
            .order_by(TrackingEvent.occurred_at)
        )
        return list(rows)


async def reloaded(ctx: ServiceContext, card: Certificate) -> Certificate:
    async with ctx.db.sessions() as session:
        certificate = await session.get(Certificate, card.certificate_no)
    assert certificate is not None
    return certificate


def sent_ids(sandbox: sandbox_courier.SandboxState) -> list[str]:
    """The event of each callback sent, in the order sent."""
    return [json.loads(sent.body)["events"][0]["event_id"] for sent in sandbox.sent]


def callback(
    settings: Settings,
    events: list[dict[str, Any]],
    *,
    key: str | None = None,
    at: Any = None,
    customer: str = "",
) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(
        {
            "customer_id": customer or settings.courier_customer_id,
            "carrier": "SANDBOX-EXPRESS",
            "events": events,
        }
    ).encode()
    signed = signing.sign(key or settings.courier_key.get_secret_value(), body, at or utcnow())
    return body, {"Content-Type": "application/json", **signed}


# ------------------------------------------------------------------------------------------ booking


async def test_a_card_is_booked_once_however_often_dispatch_runs(
    ctx: ServiceContext, people: StandIns, sandbox: sandbox_courier.SandboxState
) -> None:
    card = await new_card(ctx, people)
    first = await dispatch(ctx, card)
    again = await dispatch(ctx, card)  # a retry after the answer was lost, say

    assert first == again
    assert first.status is RegistrationStatus.SHIPPED
    assert first.carrier == "SANDBOX-EXPRESS"
    assert first.tracking_no is not None and re.fullmatch(r"SX\d{13}", first.tracking_no)
    assert list(sandbox.waybills) == [first.tracking_no]  # one parcel at the courier
    shipped = await reloaded(ctx, card)
    assert (shipped.carrier, shipped.tracking_no) == (first.carrier, first.tracking_no)
    assert shipped.delivery_method is DeliveryMethod.EXPRESS and shipped.dispatched_at is not None

    # The booking's own event came as a signed callback, stored once.
    await sandbox.delivered()
    [booked] = await stored(ctx, first.tracking_no)
    assert booked.status == S.BOOKED
    assert "下单" in booked.description_zh and "Booked" in booked.description_en


async def test_the_courier_takes_signed_bookings_of_our_account_only(
    settings: Settings, courier: httpx.AsyncClient, sandbox: sandbox_courier.SandboxState
) -> None:
    payload = {
        "customer_id": settings.courier_customer_id, "reference": "B06-0000001",
        "address": NINGBO.model_dump(), "notify_url": NOTIFY,
    }  # fmt: skip
    body = json.dumps(payload).encode()
    unsigned = await courier.post("/v1/waybills", content=body)
    assert (unsigned.status_code, unsigned.json()["code"]) == (401, "unsigned")
    other_key = signing.sign("someone-else's key", body, utcnow())
    assert (await courier.post("/v1/waybills", content=body, headers=other_key)).status_code == 401
    other = json.dumps(payload | {"customer_id": "SOMEONE-ELSE"}).encode()
    headers = signing.sign(settings.courier_key.get_secret_value(), other, utcnow())
    assert (await courier.post("/v1/waybills", content=other, headers=headers)).json()[
        "code"
    ] == "unknown_customer"
    assert sandbox.waybills == {}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (
            {"mobile": "+85291234567", "province": "香港", "city": "香港", "district": "中西区"},
            "address.mobile",
        ),
        ({"province": "台湾省", "city": "台北市", "district": "中正区"}, "address.province"),
        ({"mobile": "+85366123456"}, "address.mobile"),  # a Macao mobile for a mainland address
    ],
)
async def test_an_address_outside_the_mainland_is_refused_once_and_for_all(
    ctx: ServiceContext,
    people: StandIns,
    sandbox: sandbox_courier.SandboxState,
    change: dict[str, str],
    field: str,
) -> None:
    address = NINGBO.model_copy(update=change)
    card = await new_card(ctx, people, address)
    with pytest.raises(AddressRefused) as refused:
        await courier_for(ctx).book(reference=card.certificate_no, address=address)
    assert refused.value.code == "address_not_served"

    with pytest.raises(ApplicationError) as failed:
        await dispatch(ctx, card)
    assert failed.value.type == "address_refused"
    assert failed.value.non_retryable  # booking it again would not help: Temporal does not retry
    assert sandbox.waybills == {}
    assert (await reloaded(ctx, card)).tracking_no is None


async def test_booking_failures_are_raised_for_temporal_to_retry(
    ctx: ServiceContext, people: StandIns, sandbox: sandbox_courier.SandboxState, courier: httpx.AsyncClient
) -> None:
    card = await new_card(ctx, people)
    await behave(courier, card.certificate_no, booking_failures=2)
    for _ in range(2):
        with pytest.raises(CourierUnavailable):  # a plain error: the activity's retry policy applies
            await dispatch(ctx, card)
    assert (await reloaded(ctx, card)).tracking_no is None
    shipped = await dispatch(ctx, card)  # the third attempt
    assert list(sandbox.waybills) == [shipped.tracking_no]

    for down in (UNREACHABLE, BUSY):
        elsewhere = dataclasses.replace(ctx, settings=ctx.settings.model_copy(update={"courier_url": down}))
        with pytest.raises(CourierUnavailable):
            await dispatch(elsewhere, await new_card(ctx, people))


# ------------------------------------------------------------------------------------------ tracking


async def test_events_arrive_as_signed_callbacks_and_duplicates_are_stored_once(
    ctx: ServiceContext, people: StandIns, sandbox: sandbox_courier.SandboxState, courier: httpx.AsyncClient
) -> None:
    card, tracking_no, statuses = await ship(ctx, people, sandbox, courier, copies=3)
    assert statuses == JOURNEY[1:]

    waybill = sandbox.waybills[tracking_no]
    assert len(sandbox.sent) == 3 * len(JOURNEY)
    assert {sent.status for sent in sandbox.sent} == {200}
    assert len({sent.headers[signing.NONCE] for sent in sandbox.sent}) == len(sandbox.sent)  # signed afresh
    events = await stored(ctx, tracking_no)
    assert [e.event_id for e in events] == [e["event_id"] for e in waybill.events]  # once each
    assert [e.status for e in events] == JOURNEY
    assert all(e.description_zh and e.description_en and e.location for e in events)
    assert "宁波市" in events[3].description_zh  # through the destination's hub

    delivered = await reloaded(ctx, card)
    assert delivered.delivered_at == events[-1].occurred_at


async def test_out_of_order_callbacks_are_read_back_in_the_order_things_happened(
    ctx: ServiceContext, people: StandIns, sandbox: sandbox_courier.SandboxState, courier: httpx.AsyncClient
) -> None:
    card, tracking_no, statuses = await ship(ctx, people, sandbox, courier, SHANGHAI, out_of_order=True)
    # In the city itself: one hub, no second leg.
    assert statuses == [S.PICKED_UP, S.IN_TRANSIT, S.OUT_FOR_DELIVERY, S.DELIVERED]

    happened = [e["event_id"] for e in sandbox.waybills[tracking_no].events]
    assert sent_ids(sandbox) != happened and sorted(sent_ids(sandbox)) == sorted(happened)
    read = await tracking_events(ctx, await reloaded(ctx, card))
    assert [e.event_id for e in read] == happened
    assert [e.occurred_at for e in read] == sorted(e.occurred_at for e in read)
    assert (await reloaded(ctx, card)).delivered_at == read[-1].occurred_at


async def test_lost_callbacks_are_healed_when_the_buyer_reads_the_tracking(
    ctx: ServiceContext, people: StandIns, sandbox: sandbox_courier.SandboxState, courier: httpx.AsyncClient
) -> None:
    card, tracking_no, _ = await ship(ctx, people, sandbox, courier, until=S.IN_TRANSIT, lost=True)
    assert sandbox.sent == [] and await stored(ctx, tracking_no) == []

    # The buyer looks: the courier's query API is asked, and what it shows is kept.
    read = await tracking_events(ctx, await reloaded(ctx, card))
    assert [e.status for e in read] == [S.BOOKED, S.PICKED_UP, S.IN_TRANSIT]
    assert len(await stored(ctx, tracking_no)) == 3

    await advance(courier, tracking_no)
    read = await tracking_events(ctx, await reloaded(ctx, card))
    assert [e.status for e in read] == JOURNEY  # nothing twice
    assert (await reloaded(ctx, card)).delivered_at == read[-1].occurred_at  # the delivery, healed too

    # Delivered: the stored events are the answer, the courier is not asked again.
    del sandbox.waybills[tracking_no]
    assert [e.event_id for e in await tracking_events(ctx, await reloaded(ctx, card))] == [
        e.event_id for e in read
    ]


async def test_a_courier_that_is_down_leaves_the_stored_events_readable(
    ctx: ServiceContext, people: StandIns, sandbox: sandbox_courier.SandboxState, courier: httpx.AsyncClient
) -> None:
    card, tracking_no, _ = await ship(ctx, people, sandbox, courier, until=S.PICKED_UP)
    for down in (UNREACHABLE, BUSY):
        elsewhere = dataclasses.replace(ctx, settings=ctx.settings.model_copy(update={"courier_url": down}))
        with pytest.raises(CourierUnavailable):
            await courier_for(elsewhere).track(tracking_no)
        read = await tracking_events(elsewhere, await reloaded(ctx, card))
        assert [e.status for e in read] == [S.BOOKED, S.PICKED_UP]


async def test_a_failed_attempt_is_followed_by_delivery(
    ctx: ServiceContext, people: StandIns, sandbox: sandbox_courier.SandboxState, courier: httpx.AsyncClient
) -> None:
    card, _, statuses = await ship(ctx, people, sandbox, courier, delivery_failed="once")
    assert statuses[-4:] == [
        S.OUT_FOR_DELIVERY, S.DELIVERY_FAILED, S.OUT_FOR_DELIVERY, S.DELIVERED,
    ]  # fmt: skip
    read = await tracking_events(ctx, await reloaded(ctx, card))
    assert "再次派送" in read[-3].description_zh and "try again" in read[-3].description_en
    assert (await reloaded(ctx, card)).delivered_at == read[-1].occurred_at


async def test_a_parcel_returned_to_the_sender_is_not_delivered(
    ctx: ServiceContext, people: StandIns, sandbox: sandbox_courier.SandboxState, courier: httpx.AsyncClient
) -> None:
    card, _, statuses = await ship(ctx, people, sandbox, courier, delivery_failed="returned")
    assert statuses[-3:] == [S.OUT_FOR_DELIVERY, S.DELIVERY_FAILED, S.RETURNED]
    read = await tracking_events(ctx, await reloaded(ctx, card))
    assert read[-1].status == S.RETURNED and "退回" in read[-1].description_zh
    assert (await reloaded(ctx, card)).delivered_at is None


async def test_a_courier_faster_than_dispatch_still_marks_the_card_delivered(
    ctx: ServiceContext, people: StandIns, sandbox: sandbox_courier.SandboxState, courier: httpx.AsyncClient
) -> None:
    card = await new_card(ctx, people)
    # The parcel is booked and delivered before dispatch has stored its waybill on the card (a worker
    # that crashed after booking, say): the events are kept, for no card yet.
    early = await courier_for(ctx).book(reference=card.certificate_no, address=NINGBO)
    await advance(courier, early.tracking_no)
    await sandbox.delivered()
    assert [e.status for e in await stored(ctx, early.tracking_no)] == JOURNEY
    assert (await reloaded(ctx, card)).delivered_at is None

    shipped = await dispatch(ctx, card)  # the retry: the same waybill, already delivered
    assert shipped.tracking_no == early.tracking_no
    delivered_at = (await stored(ctx, early.tracking_no))[-1].occurred_at
    assert (await reloaded(ctx, card)).delivered_at == delivered_at


async def test_the_parcel_moves_on_its_own_at_the_sandbox_pace(
    ctx: ServiceContext, people: StandIns, sandbox: sandbox_courier.SandboxState, courier: httpx.AsyncClient
) -> None:
    await behave(courier, pace=0.01)
    card = await new_card(ctx, people)
    shipped = await dispatch(ctx, card)
    assert shipped.tracking_no is not None
    waybill = sandbox.waybills[shipped.tracking_no]
    await until(lambda: waybill.finished, "the parcel delivered", timeout=10)
    await sandbox.delivered()
    assert [e.status for e in await stored(ctx, shipped.tracking_no)] == JOURNEY
    assert (await reloaded(ctx, card)).delivered_at is not None


# ------------------------------------------------------------------------------------------ refused callbacks


async def test_forged_stale_and_replayed_callbacks_are_refused_and_store_nothing(
    settings: Settings,
    ctx: ServiceContext,
    api: httpx.AsyncClient,
    people: StandIns,
    sandbox: sandbox_courier.SandboxState,
    courier: httpx.AsyncClient,
) -> None:
    card, tracking_no, _ = await ship(ctx, people, sandbox, courier, until=S.PICKED_UP)
    genuine = sandbox.sent[-1]
    before = [e.event_id for e in await stored(ctx, tracking_no)]
    assert len(before) == 2

    # The courier's own signed callback, sent again word for word by someone who recorded it.
    replay = await api.post(NOTIFY, content=genuine.body, headers=genuine.headers)
    assert (replay.status_code, replay.json()["code"]) == (409, "replayed")

    delivered = {
        "event_id": f"{tracking_no}-99", "tracking_no": tracking_no, "status": "delivered",
        "description_zh": "已签收", "description_en": "Delivered", "occurred_at": utcnow().isoformat(),
    }  # fmt: skip
    refusals = {
        "bad_signature": callback(settings, [delivered], key="a guessed key"),
        "stale": callback(settings, [delivered], at=utcnow() - timedelta(minutes=10)),
    }
    tampered = json.loads(genuine.body)
    tampered["events"][0] |= {"event_id": delivered["event_id"], "status": "delivered"}
    signed_headers = {k: v for k, v in genuine.headers.items() if k.startswith("X-Signature")}
    for code, (body, headers) in refusals.items():
        response = await api.post(NOTIFY, content=body, headers=headers)
        assert (response.status_code, response.json()["code"]) == (401, code)
    response = await api.post(NOTIFY, content=json.dumps(tampered).encode(), headers=signed_headers)
    assert (response.status_code, response.json()["code"]) == (401, "bad_signature")
    body, _ = callback(settings, [delivered])
    response = await api.post(NOTIFY, content=body)
    assert (response.status_code, response.json()["code"]) == (401, "unsigned")
    body, headers = callback(settings, [delivered], customer="SOMEONE-ELSE")
    response = await api.post(NOTIFY, content=body, headers=headers)
    assert (response.status_code, response.json()["code"]) == (403, "unknown_customer")

    assert [e.event_id for e in await stored(ctx, tracking_no)] == before
    assert (await reloaded(ctx, card)).delivered_at is None

    # A genuine callback, signed afresh, is taken (and a duplicate event in it is not stored twice).
    body, headers = callback(settings, [json.loads(genuine.body)["events"][0], delivered])
    response = await api.post(NOTIFY, content=body, headers=headers)
    assert response.json() == {"received": 2, "stored": 1}


# ------------------------------------------------------------------------------------------ the registration


async def test_a_delivery_scan_moves_the_registration_to_delivered(
    world: World,
    settings: Settings,
    people: StandIns,
    sandbox: sandbox_courier.SandboxState,
    courier: httpx.AsyncClient,
) -> None:
    unit, [registration] = await approved_unit_with_unpaid(world)
    await paid_for(world, unit, registration)
    await registration.decide(Decision.APPROVE)
    shipped = await wait_status(registration, RegistrationStatus.SHIPPED)
    assert shipped.certificate_no is not None

    async with certificate_service(settings, world.client, people, sandbox) as (ctx, _):
        card = await new_card(
            ctx, people, certificate_no=shipped.certificate_no, registration_id=registration.id
        )
        dispatched = await dispatch(ctx, card)
        assert dispatched.tracking_no is not None
        await advance(courier, dispatched.tracking_no)
        await sandbox.delivered()
        delivered = await wait_status(registration, RegistrationStatus.DELIVERED)
        assert steps(delivered)[-1] == (c.Step.DELIVERED, RegistrationStatus.DELIVERED)
        assert (await reloaded(ctx, card)).delivered_at is not None
