"""The buyer portal (``/portal``) as a buyer meets it, through its HTML: signing up and logging in,
refusals beside the input that caused them in the page's language with everything typed kept, the form
token, a person registered with a photo, the progress page, and paying by QR code, B2B and transfer.

The registration service runs in process (httpx's ASGI transport) on its own SQLite database, with the
session's SeaweedFS as the object store (tests/object_store.py) and Temporal's time-skipping server,
where the workflows it starts wait; tests that withdraw, change or substitute a person run the real
registration and unit workflows there (the ``lifecycle`` fixture), with the registration service's own
activities and fakes of the other services' (tests/workflow_env.py). The portal's pages call the registration API over HTTP as in
production, here through the same transport; the payment service runs in process too (with the sandbox
gateway, and a stand-in order workflow on a Temporal server of its own), and the certificate service is
a stand-in answering a card and its tracking. The browser is an httpx client keeping cookies.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import update
from temporalio import workflow
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from deploy.local.demo import demo_credit_code, demo_id_number, demo_photo
from services.payment import api as payment_api
from services.payment import sandbox_gateway
from services.payment.models import PaymentOrder
from services.registration import api
from services.registration.activities import activities
from services.registration.models import PersonRegistration, RegistrationEvent
from services.registration.previous import import_shipped
from shared import auth as shared_auth
from shared import contracts as c
from shared.catalogue import current_edition, load_edition, years_until_open
from shared.db import utcnow
from shared.service import ServiceContext
from shared.settings import Settings
from shared.temporal import (
    REGISTRATION_QUEUE,
    WORKFLOW_TASK_QUEUE,
    registration_workflow_id,
    unit_workflow_id,
)
from shared.types import Decision, OrderStatus, PaymentMethod, RegistrationStatus
from tests.object_store import SeaweedFS
from tests.service_env import service_context
from tests.workflow_env import WORKFLOWS, FakeServices, time_skipping_environment
from tests.workflow_world import eventually

REHEARSAL = years_until_open(load_edition("ciie6"), utcnow())  # registration open today
REGISTRATION = "http://registration.test"
PAYMENT = "http://payment.test"
CERTIFICATE = "http://certificate.test"
GATEWAY = "http://gateway.test"
NOTIFICATION = "http://notification.test"
PASSWORD = "Expo-portal-2023"


# ------------------------------------------------------------------------------------------ pages


class _Reader(HTMLParser):
    """Collects each element's text by id, and the values a form would send."""

    VOID: ClassVar[set[str]] = {"input", "br", "img", "meta", "link", "hr", "path"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.open: list[tuple[str, str | None]] = []
        self.texts: dict[str, list[str]] = {}
        self.inputs: dict[str, list[str]] = {}
        self.select: str | None = None
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        element_id = attributes.get("id")
        if element_id:
            self.ids.add(element_id)
            self.texts.setdefault(element_id, [])
        name = attributes.get("name")
        if tag == "input" and name:
            kind = attributes.get("type", "text")
            if kind not in ("checkbox", "radio") or "checked" in attributes:
                self.inputs.setdefault(name, []).append(attributes.get("value") or "")
        if tag == "select":
            self.select = name
        if tag == "option" and self.select and "selected" in attributes:
            self.inputs.setdefault(self.select, []).append(attributes.get("value") or "")
        if tag not in self.VOID:
            self.open.append((tag, element_id))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in self.VOID:
            self.open.pop()

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self.select = None
        for index in range(len(self.open) - 1, -1, -1):
            if self.open[index][0] == tag:
                del self.open[index:]
                return

    def handle_data(self, data: str) -> None:
        for _, element_id in self.open:
            if element_id:
                self.texts[element_id].append(data)


@dataclass
class Page:
    """A page as a buyer sees it."""

    response: httpx.Response
    reader: _Reader = field(default_factory=_Reader)

    def __post_init__(self) -> None:
        self.reader.feed(self.response.text)

    @property
    def status(self) -> int:
        return self.response.status_code

    @property
    def html(self) -> str:
        return self.response.text

    def text(self, element_id: str) -> str:
        """The text of the element with this id, its whitespace collapsed."""
        assert element_id in self.reader.ids, f"no #{element_id} on the page:\n{self.html}"
        return " ".join("".join(self.reader.texts[element_id]).split())

    def has(self, element_id: str) -> bool:
        return element_id in self.reader.ids

    def value(self, name: str) -> str:
        """What the form would send for ``name`` as shown (the first value)."""
        values = self.reader.inputs.get(name, [])
        return values[0] if values else ""

    def values(self, name: str) -> list[str]:
        return self.reader.inputs.get(name, [])

    def error(self, name: str) -> str:
        """The message beside the input ``name``."""
        return self.text(f"f-{name}-error")

    @property
    def csrf(self) -> str:
        return self.value("csrf")


def page_of(response: httpx.Response) -> Page:
    return Page(response)


# ------------------------------------------------------------------------------------------ stand-ins


@dataclass
class Certificates:
    """The certificate service's buyer routes: the card and tracking of registrations given here."""

    cards: dict[str, dict[str, Any]] = field(default_factory=dict)
    tracking: dict[str, dict[str, Any]] = field(default_factory=dict)
    tokens: list[str] = field(default_factory=list)
    down: bool = False  # every route answers 503

    def app(self) -> FastAPI:
        app = FastAPI()
        missing = {"code": "not_found", "message": "certificate not found", "message_zh": "未找到证件"}

        @app.get("/v1/registrations/{registration_id}/certificate")
        async def card(registration_id: str, request: Request) -> JSONResponse:
            self.tokens.append(request.headers.get("authorization", ""))
            if self.down:
                return JSONResponse({"code": "unavailable"}, status_code=503)
            found = self.cards.get(registration_id)
            return JSONResponse(found) if found else JSONResponse(missing, status_code=404)

        @app.get("/v1/registrations/{registration_id}/certificate/tracking")
        async def tracking(registration_id: str) -> JSONResponse:
            found = self.tracking.get(registration_id)
            return JSONResponse(found) if found else JSONResponse(missing, status_code=404)

        return app


@dataclass
class Notifications:
    """The notification service's ``POST /internal/messages``: the messages, kept as sent."""

    messages: list[dict[str, Any]] = field(default_factory=list)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/internal/messages")
        async def message(request: Request) -> JSONResponse:
            self.messages.append(await request.json())
            return JSONResponse({"status": "sent"}, status_code=202)

        return app

    def last_code(self, to: str) -> str:
        codes = [m["params"]["code"] for m in self.messages if m["to"] == to]
        assert codes, f"no code was sent to {to}: {self.messages}"
        code: str = codes[-1]
        return code


@workflow.defn(name="PaymentOrder")
class OrderStandIn:
    """Stands in for the PaymentOrder workflow: takes a transfer's voucher, as the real one does."""

    def __init__(self) -> None:
        self.vouchers: list[str] = []

    @workflow.run
    async def run(self, start: c.PaymentOrderStart) -> None:
        await workflow.wait_condition(lambda: False)

    @workflow.update(name=c.UPDATE_UPLOAD_VOUCHER)
    async def upload_voucher(self, upload: c.VoucherUpload) -> c.DecisionResult:
        self.vouchers.append(upload.voucher_key)
        return c.DecisionResult(status=OrderStatus.AWAITING_CONFIRMATION.value)

    @workflow.query(name="vouchers")
    def seen(self) -> list[str]:
        return list(self.vouchers)


# ------------------------------------------------------------------------------------------ fixtures


@dataclass
class Portal:
    ctx: ServiceContext
    browser: httpx.AsyncClient
    settings: Settings
    certificates: Certificates
    notifications: Notifications

    async def get(self, path: str, **kwargs: Any) -> Page:
        return page_of(await self.browser.get(path, **kwargs))

    async def post(self, path: str, data: dict[str, Any], **kwargs: Any) -> httpx.Response:
        """A form post as the browser sends it: with the form token of the form it came from."""
        return await self.browser.post(path, data={"csrf": self.form_token} | data, **kwargs)

    @property
    def form_token(self) -> str:
        token = self.browser.cookies.get("expo_csrf")
        assert token, "open a form first: its page sets the form token's cookie"
        return token

    @property
    def buyer(self) -> dict[str, str]:
        """The logged-in buyer's Authorization header, to check what the API now says."""
        return {"Authorization": f"Bearer {self.browser.cookies.get('expo_buyer')}"}

    @property
    def expo_days(self) -> list[str]:
        edition = current_edition(self.settings)
        first = edition.local(edition.deadlines.expo_opens).date()
        last = edition.local(edition.deadlines.expo_closes).date()
        return [(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]


@pytest.fixture
def settings(tmp_path: Path, seaweedfs: SeaweedFS) -> Settings:
    return Settings(
        **seaweedfs.settings,
        data_dir=tmp_path,
        edition_year_shift=REHEARSAL,
        registration_url=REGISTRATION,
        payment_url=PAYMENT,
        certificate_url=CERTIFICATE,
        gateway_url=GATEWAY,
        notification_url=NOTIFICATION,
    )


@pytest.fixture
async def portal(settings: Settings, seaweedfs: SeaweedFS) -> AsyncIterator[Portal]:
    certificates = Certificates()
    notifications = Notifications()
    async with time_skipping_environment() as env:
        http = httpx.AsyncClient(
            mounts={
                REGISTRATION: httpx.ASGITransport(app=api.app),
                PAYMENT: httpx.ASGITransport(app=payment_api.app),
                CERTIFICATE: httpx.ASGITransport(app=certificates.app()),
                NOTIFICATION: httpx.ASGITransport(app=notifications.app()),
            }
        )
        async with service_context(
            "registration", settings, temporal=env.client, http=http, store=seaweedfs.store
        ) as ctx:
            api.app.state.ctx = ctx
            transport = httpx.ASGITransport(app=api.app)
            async with httpx.AsyncClient(transport=transport, base_url=REGISTRATION) as browser:
                yield Portal(ctx, browser, settings, certificates, notifications)


@pytest.fixture
async def payment(
    portal: Portal, settings: Settings, seaweedfs: SeaweedFS, sandbox: sandbox_gateway.SandboxState
) -> AsyncIterator[WorkflowEnvironment]:
    """The payment service in process, asking the registration service in process who the buyer is;
    its order workflows are stand-ins on a Temporal server of their own (answered: the order's env)."""
    shared_auth.clear_cache()
    http = httpx.AsyncClient(
        mounts={
            REGISTRATION: httpx.ASGITransport(app=api.app),
            GATEWAY: httpx.ASGITransport(app=sandbox_gateway.app),
        }
    )
    async with (
        time_skipping_environment() as env,
        Worker(
            env.client,
            task_queue=WORKFLOW_TASK_QUEUE,
            workflows=[OrderStandIn],
            workflow_runner=UnsandboxedWorkflowRunner(),
        ),
        service_context("payment", settings, temporal=env.client, http=http, store=seaweedfs.store) as ctx,
    ):
        payment_api.app.state.ctx = ctx
        yield env


@dataclass
class Lifecycle:
    """The real registration and unit workflows behind the portal. The test acts as the mission's
    reviewers and the payment service do, by the workflows' contract names; the registration service
    records each step with its own activities, so the pages show what the workflows did."""

    portal: Portal
    services: FakeServices

    def _handle(self, workflow_id: str) -> WorkflowHandle[Any, Any]:
        return self.portal.ctx.temporal.get_workflow_handle(workflow_id)

    def _registration(self, registration_id: str) -> WorkflowHandle[Any, Any]:
        return self._handle(registration_workflow_id(self.portal.ctx.edition.code, registration_id))

    async def approve_unit(self, unit_id: str) -> None:
        """The trade mission approves the unit: its people get their payment notice (``unpaid``)."""
        decision = c.ReviewDecision(decision=Decision.APPROVE, reviewer="mission-reviewer")
        unit = self._handle(unit_workflow_id(self.portal.ctx.edition.code, unit_id))
        await unit.execute_update(c.UPDATE_DECIDE, decision, result_type=c.DecisionResult)

    async def pay(self, registration_id: str) -> None:
        """The payment service confirms an order that paid for the person (``to_be_reviewed``)."""
        paid = c.PaymentConfirmed(
            order_no=f"O-{registration_id}",
            method=PaymentMethod.QR,
            transaction_id=f"TX-{registration_id}",
            paid_at=utcnow(),
        )
        await self._registration(registration_id).signal(c.SIGNAL_PAYMENT_CONFIRMED, paid)

    async def pass_review(self, registration_id: str) -> None:
        """The personnel review passes: certificate-making starts."""
        decision = c.ReviewDecision(decision=Decision.APPROVE, reviewer="personnel-reviewer")
        await self._registration(registration_id).execute_update(
            c.UPDATE_DECIDE, decision, result_type=c.DecisionResult
        )

    async def reached(self, registration_id: str, status: RegistrationStatus) -> None:
        """Until the buyer's API shows the person in ``status`` (the workflow has recorded it)."""

        async def shown() -> str:
            answer = await self.portal.browser.get(
                f"/v1/registrations/{registration_id}", headers=self.portal.buyer
            )
            code: str = answer.json()["status"]["code"]
            return code

        await eventually(shown, lambda code: code == status, f"{registration_id} {status}")


@pytest.fixture
async def lifecycle(portal: Portal) -> AsyncIterator[Lifecycle]:
    """The workflow worker and the registration service's activities on the portal's Temporal server,
    and fakes of the review, payment, certificate and notification services' activities."""
    services = FakeServices()
    client = portal.ctx.temporal
    services.client = client
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(
            Worker(client, task_queue=WORKFLOW_TASK_QUEUE, workflows=list(WORKFLOWS))
        )
        await stack.enter_async_context(
            Worker(client, task_queue=REGISTRATION_QUEUE, activities=activities(portal.ctx))
        )
        for queue, fakes in services.activities_by_queue().items():
            if queue != REGISTRATION_QUEUE:  # the real service's, above
                await stack.enter_async_context(Worker(client, task_queue=queue, activities=fakes))
        yield Lifecycle(portal, services)


# ------------------------------------------------------------------------------------------ steps


async def sign_up(portal: Portal, email: str, kind: str = "unit") -> httpx.Response:
    form = await portal.get("/portal/signup")
    assert form.status == 200 and form.csrf
    return await portal.post(
        "/portal/signup",
        {
            "kind": kind,
            "email": email,
            "mobile": "13812345678",
            "password": PASSWORD,
            "password_confirm": PASSWORD,
        },
    )


def unit_form(**changes: str) -> dict[str, str]:
    form = {
        "kind": "enterprise", "name": "宁波港城贸易有限公司", "mission.affiliation": "residence",
        "credit_code": demo_credit_code("330203"), "address": "宁波市海曙区中山西路1号", "industry": "批发和零售业",
        "contact.name": "林芳", "contact.mobile": "13800000003", "contact.email": "lin@ningbo-trade.example.com",
    }  # fmt: skip
    return form | changes


def person_form(portal: Portal, **changes: str) -> dict[str, str]:
    form = {
        "name": "林晓", "id_type": "resident_id", "id_number": demo_id_number("19880808"), "nationality": "CN",
        "mobile": "13900005555", "email": "lin.xiao@ningbo-trade.example.com", "job_title": "采购经理",
        "personnel_label": "purchaser", "entrance_date": portal.expo_days[0],
        "delivery_method": "mission_collection",
    }  # fmt: skip
    return form | changes


async def with_unit(portal: Portal, email: str) -> str:
    """A new unit account, logged in, with its unit registered: the unit's id."""
    assert (await sign_up(portal, email)).status_code == 303
    await portal.get("/portal/unit")
    registered = await portal.post("/portal/unit", unit_form())
    assert registered.status_code == 303, registered.text
    me = await portal.browser.get("/v1/accounts/me", headers=portal.buyer)
    unit_id: str = me.json()["unit_id"]
    return unit_id


async def add_person(portal: Portal, photo: bytes | None, **changes: str) -> httpx.Response:
    await portal.get("/portal/people/new")
    files = {"photo": ("photo.jpg", photo, "image/jpeg")} if photo is not None else None
    return await portal.post("/portal/people/new", person_form(portal, **changes), files=files)


def registration_id(response: httpx.Response) -> str:
    found = re.search(r"/portal/registrations/(R\w+)", response.headers.get("location", "") + response.text)
    assert found, response.text
    return found.group(1)


async def set_status(portal: Portal, status: RegistrationStatus, *registration_ids: str) -> None:
    """Where the workflows (not running here) would have moved the people by now."""
    async with portal.ctx.db.transaction() as session:
        await session.execute(
            update(PersonRegistration)
            .where(PersonRegistration.id.in_(registration_ids))
            .values(status=status, deadline=utcnow() + timedelta(days=10))
        )


# ------------------------------------------------------------------------------------------ tests


async def test_signing_up_and_logging_in_keep_the_login_in_a_cookie_and_land_on_the_home_page(
    portal: Portal,
) -> None:
    signed_up = await sign_up(portal, "buyer@dongfang-trade.example")
    assert signed_up.status_code == 303 and signed_up.headers["location"] == "/portal?notice=welcome"
    cookie = signed_up.headers["set-cookie"].lower()
    assert cookie.startswith("expo_buyer=") and "httponly" in cookie and "max-age=43200" in cookie
    home = await portal.get(signed_up.headers["location"])
    assert home.status == 200
    assert "请先登记单位信息" in home.html and home.has("register-unit")  # nothing registered yet
    assert "buyer@dongfang-trade.example" in home.html

    logged_out = await portal.post("/portal/logout", {})
    assert logged_out.status_code == 303
    assert not portal.browser.cookies.get("expo_buyer")
    # Without a login a page sends the buyer to log in, and back afterwards.
    away = await portal.browser.get("/portal/pay")
    assert (away.status_code, away.headers["location"]) == (303, "/portal/login?next=%2Fportal%2Fpay")
    login = await portal.get(away.headers["location"])
    assert login.value("next") == "/portal/pay"
    back = await portal.post(
        "/portal/login?next=%2Fportal%2Fpay",
        {"login": "buyer@dongfang-trade.example", "password": PASSWORD, "next": login.value("next")},
    )
    assert (back.status_code, back.headers["location"]) == (303, "/portal/pay")
    assert "httponly" in back.headers["set-cookie"].lower()
    assert (await portal.get("/portal")).status == 200
    # Only the portal's own pages are a place to go back to: never another site.
    elsewhere = await portal.post(
        "/portal/login",
        {"login": "buyer@dongfang-trade.example", "password": PASSWORD, "next": "//evil.example"},
    )
    assert elsewhere.headers["location"] == "/portal"


async def test_a_login_the_api_no_longer_accepts_goes_back_to_the_login_page(portal: Portal) -> None:
    await portal.get("/portal/login")
    portal.browser.cookies.set("expo_buyer", "not-a-token", domain="registration.test")
    away = await portal.browser.get("/portal/unit")
    assert (away.status_code, away.headers["location"]) == (303, "/portal/login?next=%2Fportal%2Funit")
    assert 'expo_buyer=""' in away.headers["set-cookie"]  # the dead token is forgotten


async def test_a_wrong_password_is_refused_beside_the_form_in_the_pages_language(portal: Portal) -> None:
    await sign_up(portal, "lin@ningbo-trade.example.com")
    await portal.post("/portal/logout", {})
    await portal.get("/portal/login")
    typed = {"login": "lin@ningbo-trade.example.com", "password": "not-the-password-1"}
    refused = page_of(await portal.post("/portal/login", typed))
    assert refused.status == 400
    assert refused.text("form-error") == "账户或密码错误"
    assert refused.value("login") == "lin@ningbo-trade.example.com"  # kept
    assert refused.value("password") == ""  # never sent back
    assert not portal.browser.cookies.get("expo_buyer")

    english = page_of(await portal.post("/portal/login?lang=en", typed))
    assert english.text("form-error") == "wrong login or password"
    assert '<html lang="en">' in english.html
    # The choice of language stays with the browser, and the page links back to Chinese.
    again = await portal.get("/portal/login")
    assert '<html lang="en">' in again.html and 'href="?lang=zh"' in again.html


async def test_a_bad_credit_code_comes_back_beside_its_input_with_everything_typed_kept(
    portal: Portal,
) -> None:
    await sign_up(portal, "lin@ningbo-trade.example.com")
    form = await portal.get("/portal/unit")
    assert form.status == 200
    assert form.html.count('data-check="/portal/check/credit-code?lang=zh"') == 1
    typed = unit_form(credit_code="91330203MA2ABCDEF0")  # its check character is wrong
    refused = page_of(await portal.post("/portal/unit", typed))
    assert refused.status == 422
    assert refused.error("credit_code") == "统一社会信用代码无效，请核对后重新填写"
    assert 'aria-invalid="true"' in refused.html
    for name in (
        "name",
        "address",
        "industry",
        "contact.name",
        "contact.mobile",
        "contact.email",
        "credit_code",
    ):
        assert refused.value(name) == typed[name], name
    assert refused.value("mission.affiliation") == "residence" and refused.value("kind") == "enterprise"
    assert "请修改以下内容" in refused.text("error-summary")

    # As one types: the same check, in the page's language, without a post.
    checked = await portal.browser.get("/portal/check/credit-code", params={"value": "91330203MA2ABCDEF0"})
    assert checked.json() == {"ok": False, "message": "统一社会信用代码无效，请核对后重新填写"}
    english = await portal.browser.get(
        "/portal/check/credit-code", params={"value": "91330203MA2ABCDEF0", "lang": "en"}
    )
    assert english.json()["ok"] is False and english.json()["message"].startswith("not a valid")
    valid = unit_form()["credit_code"]
    assert (await portal.browser.get("/portal/check/credit-code", params={"value": valid})).json()[
        "ok"
    ] is True

    # An invalid email is named by the request validation: its own message, beside its input.
    refused = page_of(await portal.post("/portal/unit", unit_form(**{"contact.email": "lin@"})))
    assert refused.error("contact.email") == "此项填写有误，请核对" and refused.text("form-error")

    registered = await portal.post("/portal/unit", unit_form(credit_code=valid))
    assert (registered.status_code, registered.headers["location"]) == (303, "/portal?notice=unit_registered")
    home = await portal.get(registered.headers["location"])
    assert home.text("unit-heading") == "宁波港城贸易有限公司"
    assert home.text("unit-status") == "交易团审核中"
    assert "宁波" in home.text("unit-mission")  # Ningbo has its own mission
    assert home.has("add-person")
    again = await portal.get("/portal/unit")  # once registered: its data, to change
    assert again.value("credit_code") == valid and again.value("contact.email") == typed["contact.email"]
    assert again.text("unit-submit") == "保存修改并重新提交审核"


async def test_an_overseas_unit_gives_its_country_registration_number_and_mission(portal: Portal) -> None:
    await sign_up(portal, "anna@schmidt-handel.example.de")
    form = await portal.get("/portal/unit?lang=en")
    assert '<option value="shanghai">' in form.html  # the missions an overseas unit may join
    overseas = unit_form(
        **{"mission.affiliation": "overseas", "name": "Schmidt Handel GmbH", "country": "de"}
    )
    refused = page_of(await portal.post("/portal/unit", overseas))  # no registration number, no mission
    assert refused.error("registration_no") == "an overseas unit needs its registration number"
    assert refused.value("country") == "de" and refused.value("mission.affiliation") == "overseas"
    overseas |= {"registration_no": "HRB 123456", "mission.mission": "shanghai"}
    registered = await portal.post("/portal/unit", overseas)
    assert registered.status_code == 303, registered.text
    home = await portal.get("/portal")
    assert home.text("unit-mission").startswith("Shanghai")
    unit = (await portal.browser.get("/v1/accounts/me", headers=portal.buyer)).json()
    shown = (await portal.browser.get(f"/v1/units/{unit['unit_id']}", headers=portal.buyer)).json()
    assert (shown["country"], shown["foreign_registration_no"], shown["credit_code"]) == (
        "DE",
        "HRB 123456",
        None,
    )


async def test_a_post_without_the_form_token_is_refused(portal: Portal) -> None:
    await sign_up(portal, "lin@ningbo-trade.example.com")
    await portal.get("/portal/unit")
    for sent in ({}, {"csrf": "forged"}):
        refused = page_of(await portal.browser.post("/portal/unit", data=unit_form() | sent))
        assert refused.status == 403
        assert refused.text("problem-message") == "表单已过期或来源不明，请刷新页面后重新提交"
        assert refused.has("reload-form")
    me = await portal.browser.get("/v1/accounts/me", headers=portal.buyer)
    assert me.json()["unit_id"] is None  # nothing was registered


async def test_a_person_registered_with_a_photo_ends_with_photo_uploaded(portal: Portal) -> None:
    unit_id = await with_unit(portal, "lin@ningbo-trade.example.com")
    form = await portal.get("/portal/people/new")
    assert form.values("entrance_date") == [portal.expo_days[0]]
    for day in portal.expo_days:  # the expo's days are offered, and only those
        assert f'<option value="{day}"' in form.html
    registered = await add_person(portal, demo_photo("林晓"))
    assert registered.status_code == 303, registered.text
    rid = registration_id(registered)
    person = (await portal.browser.get(f"/v1/registrations/{rid}", headers=portal.buyer)).json()
    assert person["photo_uploaded"] is True and person["unit_id"] == unit_id
    shown = await portal.get(registered.headers["location"])
    assert shown.text("photo-state") == "已上传" and "照片已上传" in shown.html

    # A photo too small is refused beside the photo input; the person stays registered.
    small = await add_person(
        portal, demo_photo("李娜", size=(200, 280)), name="李娜", id_number=demo_id_number("19900728")
    )
    refused = page_of(small)
    assert refused.status == 422
    assert refused.error("photo") == "照片尺寸不小于295×413像素"
    second = registration_id(small)
    assert refused.text("registered-notice").startswith("已登记该人员")
    assert (await portal.browser.get(f"/v1/registrations/{second}", headers=portal.buyer)).json()[
        "photo_uploaded"
    ] is False
    # The photo alone, on its own page.
    alone = await portal.get(f"/portal/registrations/{second}/photo")
    assert alone.has("photo-form")
    sent = await portal.browser.post(
        f"/portal/registrations/{second}/photo",
        data={"csrf": alone.csrf},
        files={"photo": ("photo.jpg", demo_photo("李娜"), "image/jpeg")},
    )
    assert sent.headers["location"] == f"/portal/registrations/{second}?notice=photo_uploaded"
    assert (await portal.browser.get(f"/v1/registrations/{second}", headers=portal.buyer)).json()[
        "photo_uploaded"
    ] is True
    people = (await portal.browser.get(f"/v1/units/{unit_id}/people", headers=portal.buyer)).json()
    assert [p["name"] for p in people] == ["林晓", "李娜"]


async def test_an_express_address_is_refused_beside_its_input_with_everything_kept(portal: Portal) -> None:
    await with_unit(portal, "lin@ningbo-trade.example.com")
    address = {
        "delivery_method": "express", "delivery_address.recipient": "林晓", "delivery_address.mobile": "13900005555",
        "delivery_address.province": "浙江省", "delivery_address.city": "宁波市", "delivery_address.district": "海曙区",
        "delivery_address.detail": "中山西路1号", "delivery_address.postal_code": "315000",
    }  # fmt: skip
    refused = page_of(await add_person(portal, demo_photo("林晓"), **address))  # the six months unconfirmed
    assert refused.status == 422
    assert refused.error("delivery_address.valid_for_six_months") == "请确认该收件地址在未来6个月内有效"
    for name, value in address.items():
        assert refused.value(name) == value, name
    assert refused.value("name") == "林晓" and refused.value("entrance_date") == portal.expo_days[0]
    assert "请重新选择照片" in refused.html  # a browser cannot keep a chosen file: the page says so
    confirmed = await add_person(
        portal, demo_photo("林晓"), **address, **{"delivery_address.valid_for_six_months": "yes"}
    )
    assert confirmed.status_code == 303, confirmed.text
    person = (
        await portal.browser.get(f"/v1/registrations/{registration_id(confirmed)}", headers=portal.buyer)
    ).json()
    assert person["delivery_address"]["province"] == "浙江省" and person["photo_uploaded"] is True


async def test_the_progress_page_shows_the_status_next_action_and_the_certificate(portal: Portal) -> None:
    await with_unit(portal, "lin@ningbo-trade.example.com")
    rid = registration_id(await add_person(portal, demo_photo("林晓")))
    async with portal.ctx.db.transaction() as session:  # the step the workflow writes first
        session.add(
            RegistrationEvent(
                registration_id=rid, seq=1, step="submitted", status=RegistrationStatus.SUBMITTED,
                at=datetime(2023, 9, 1, 2, 30, tzinfo=UTC), detail={},
            )
        )  # fmt: skip
    shown = await portal.get(f"/portal/registrations/{rid}")
    assert shown.status == 200
    assert shown.text("status") == "单位审核中"
    assert shown.text("next-action") == "等待交易团审核单位信息"
    assert "2023-09-01 10:30（北京时间）" in shown.text("timeline")  # Beijing time
    assert not shown.has("certificate")

    english = await portal.get(f"/portal/registrations/{rid}?lang=en")
    assert english.text("status") == "Unit under review"
    assert english.text("next-action") == "Wait for the trade mission to review your unit"
    assert "2023-09-01 10:30 Beijing time" in english.text("timeline")

    # Once the card is made and sent: its delivery and the courier's tracking, asked with the buyer's login.
    await set_status(portal, RegistrationStatus.SHIPPED, rid)
    portal.certificates.cards[rid] = {
        "certificate_no": "B06-0000001", "edition": "ciie6", "revoked": False, "delivery_method": "express",
        "carrier": "SANDBOX-EXPRESS", "tracking_no": "SX100200300", "dispatched_at": "2023-10-20T02:00:00Z",
        "activations": [],
    }  # fmt: skip
    portal.certificates.tracking[rid] = {
        "certificate_no": "B06-0000001", "tracking_no": "SX100200300",
        "events": [{"status": "picked_up", "description_zh": "快递员已揽收", "description_en": "Picked up by the courier",
                    "location": "上海", "occurred_at": "2023-10-20T03:00:00Z"}],
    }  # fmt: skip
    shipped = await portal.get(f"/portal/registrations/{rid}?lang=zh")
    assert shipped.text("status") == "已寄出"
    assert shipped.text("certificate-no") == "B06-0000001" and shipped.text("tracking-no") == "SX100200300"
    assert "2023-10-20 11:00（北京时间） 快递员已揽收 · 上海" in shipped.text("tracking")
    assert portal.certificates.tokens[-1] == portal.buyer["Authorization"]
    # The certificate service down: the rest of the page still shows, and says so.
    portal.certificates.down = True
    without = await portal.get(f"/portal/registrations/{rid}")
    assert without.status == 200 and without.text("status") == "已寄出"
    assert without.has("certificate-unavailable") and not without.has("certificate")

    # Another unit's registration is not found, as at the API.
    assert (await portal.get("/portal/registrations/RNOSUCH")).status == 404


async def test_paying_by_qr_code_makes_one_order_for_a_double_click(
    portal: Portal, payment: WorkflowEnvironment
) -> None:
    unit_id = await with_unit(portal, "lin@ningbo-trade.example.com")
    first = registration_id(await add_person(portal, demo_photo("林晓")))
    second = registration_id(
        await add_person(portal, demo_photo("李娜"), name="李娜", id_number=demo_id_number("19900728"))
    )
    await set_status(portal, RegistrationStatus.UNPAID, first, second)  # the unit was approved
    form = await portal.get("/portal/pay")
    assert form.values("registration_ids") == [first, second]  # everyone unpaid, chosen
    assert "200.00 元" in form.text("f-registration_ids")
    attempt = form.value("attempt")

    # Nobody chosen: said beside the list, before anything is asked of the payment service.
    nobody = page_of(await portal.post("/portal/pay", {"method": "qr", "attempt": attempt}))
    assert nobody.status == 422 and nobody.error("registration_ids") == "请选择要缴费的人员"
    # B2B for a unit whose bank has not opened it: the API's refusal, beside the method, choices kept.
    refused = page_of(
        await portal.post("/portal/pay", {"registration_ids": [first], "method": "b2b", "attempt": attempt})
    )
    assert refused.status == 409
    assert refused.error("method").startswith("贵单位尚未开通企业网银B2B支付服务")
    assert refused.value("method") == "b2b" and refused.values("registration_ids") == [first]

    chosen = {"registration_ids": [first, second], "method": "qr", "qr_channel": "wechat", "attempt": attempt}
    orders = [await portal.post("/portal/pay", chosen) for _ in range(2)]  # a double click
    assert [o.status_code for o in orders] == [303, 303]
    assert orders[0].headers["location"] == orders[1].headers["location"]  # one order
    order = await portal.get(orders[0].headers["location"])
    assert order.text("order-status") == "待支付"
    assert order.text("order-amount") == "400.00 元"
    assert order.has("qr-code") and "<svg" in order.html and "</svg>" in order.html
    assert "（北京时间）" in order.text("order-deadline")
    order_no = orders[0].headers["location"].rsplit("/", 1)[-1]
    assert sandbox_gateway.STATE.orders[order_no].channel == "wechat"
    assert order.text("qr-code").endswith(sandbox_gateway.STATE.orders[order_no].token)  # what it encodes

    # A unit whose bank opened B2B: the order's page sends the buyer on to the gateway's page.
    third = registration_id(
        await add_person(portal, demo_photo("王五"), name="王五", id_number=demo_id_number("19780808"))
    )
    await set_status(portal, RegistrationStatus.UNPAID, third)
    sandbox_gateway.STATE.b2b_opened.add(unit_id)
    try:
        b2b = await portal.post(
            "/portal/pay", {"registration_ids": [third], "method": "b2b", "attempt": attempt}
        )
    finally:
        sandbox_gateway.STATE.b2b_opened.discard(unit_id)
    gateway = await portal.get(b2b.headers["location"])
    b2b_order = sandbox_gateway.STATE.orders[b2b.headers["location"].rsplit("/", 1)[-1]]
    assert f'action="{GATEWAY}/v1/pay/{b2b_order.token}"' in gateway.html and gateway.has("b2b-pay")


async def test_a_bank_transfer_takes_its_voucher_on_the_order_page(
    portal: Portal, payment: WorkflowEnvironment
) -> None:
    await with_unit(portal, "lin@ningbo-trade.example.com")
    rid = registration_id(await add_person(portal, demo_photo("林晓")))
    await set_status(portal, RegistrationStatus.UNPAID, rid)
    form = await portal.get("/portal/pay?lang=en")
    made = await portal.post(
        "/portal/pay", {"registration_ids": [rid], "method": "transfer", "attempt": form.value("attempt")}
    )
    order_url = made.headers["location"]
    order = await portal.get(order_url)
    assert order.text("order-status") == "Awaiting payment" and order.text("order-amount") == "CNY 200.00"
    assert order.has("voucher-form") and not order.has("qr-code")
    order_no = order_url.rsplit("/", 1)[-1]
    assert order_no in order.text("transfer-payment")  # the reference to write on the transfer

    wrong = page_of(
        await portal.browser.post(
            f"{order_url}/voucher",
            data={"csrf": order.csrf},
            files={"voucher": ("voucher.txt", b"not a voucher", "text/plain")},
        )
    )
    assert wrong.status == 422 and wrong.error("voucher") == "the voucher must be a PDF or JPEG file"
    sent = await portal.browser.post(
        f"{order_url}/voucher",
        data={"csrf": order.csrf},
        files={"voucher": ("voucher.pdf", b"%PDF-1.4 remittance", "application/pdf")},
    )
    assert sent.headers["location"] == f"{order_url}?notice=voucher_uploaded", sent.text
    handle = payment.client.get_workflow_handle(f"payment-order-ciie6-{order_no}")
    vouchers = await handle.query("vouchers", result_type=list[str])
    assert len(vouchers) == 1 and vouchers[0].startswith(f"ciie6/{order_no}/")


async def test_a_paid_order_takes_an_invoice_application_and_hands_on_its_pdf(
    portal: Portal, payment: WorkflowEnvironment
) -> None:
    unit_id = await with_unit(portal, "lin@ningbo-trade.example.com")
    unit = (await portal.browser.get(f"/v1/units/{unit_id}", headers=portal.buyer)).json()
    rid = registration_id(await add_person(portal, demo_photo("林晓")))
    await set_status(portal, RegistrationStatus.UNPAID, rid)
    form = await portal.get("/portal/pay")
    made = await portal.post(
        "/portal/pay", {"registration_ids": [rid], "method": "qr", "attempt": form.value("attempt")}
    )
    order_url = made.headers["location"]
    order_no = order_url.rsplit("/", 1)[-1]
    assert not (await portal.get(order_url)).has("invoice-form")  # not before it is paid
    async with payment_api.app.state.ctx.db.transaction() as session:  # the gateway's notice, as recorded
        await session.execute(
            update(PaymentOrder)
            .where(PaymentOrder.order_no == order_no)
            .values(status=OrderStatus.PAID, paid_at=utcnow(), transaction_id="TX-PORTAL-1")
        )
    paid = await portal.get(order_url)
    assert paid.has("invoice-form") and paid.has("no-invoices")
    assert paid.value("title") == "宁波港城贸易有限公司" and paid.value("kind") == "regular"
    assert paid.value("taxpayer_id") == unit["credit_code"]  # the unit's credit code, offered

    special = {
        "kind": "special", "title": "宁波港城贸易有限公司", "taxpayer_id": "12-34", "address": "宁波市海曙区中山西路1号",
        "phone": "0574-87654321", "bank_name": "中国银行宁波分行", "bank_account": "3568 0000 1234 5678",
    }  # fmt: skip
    refused = page_of(await portal.post(f"{order_url}/invoice", special))
    assert refused.status == 422
    assert refused.error("taxpayer_id") == "纳税人识别号应为15至20位字母或数字"
    for name, value in special.items():
        assert refused.value(name) == value, name
    assert refused.has("invoice-form") and not refused.has("invoice-list")

    issued = await portal.post(f"{order_url}/invoice", special | {"taxpayer_id": unit["credit_code"]})
    assert issued.status_code == 303, issued.text
    assert issued.headers["location"] == f"{order_url}?notice=invoice_issued#invoices"
    shown = await portal.get(issued.headers["location"])
    assert not shown.has("invoice-form")  # one invoice stands for the order
    invoice_no = re.findall(r'id="invoice-pdf-([^"]+)"', shown.html)
    assert len(invoice_no) == 1 and invoice_no[0] in shown.text("invoice-list")
    assert "增值税电子专用发票" in shown.text(f"invoice-{invoice_no[0]}")
    assert "200.00 元" in shown.text(f"invoice-{invoice_no[0]}")
    pdf = await portal.browser.get(f"/portal/invoices/{invoice_no[0]}.pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert pdf.headers["content-type"] == "application/pdf"
    assert (await portal.get("/portal/invoices/INV-0000-000000.pdf")).status == 404


async def test_a_returning_buyer_finds_the_previous_card_and_the_unit_as_it_was(portal: Portal) -> None:
    await import_shipped(portal.ctx.db)
    assert (await sign_up(portal, "zhang.san@shanghai-example.example")).status_code == 303
    form = await portal.get("/portal/previous")
    assert form.has("previous-form") and form.value("id_type") == "resident_id"

    unknown = {
        "certificate_no": "B05-9999999",
        "id_type": "resident_id",
        "id_number": demo_id_number("19880808"),
    }
    refused = page_of(await portal.post("/portal/previous", unknown))
    assert refused.status == 422
    assert refused.error("certificate_no").startswith("未查询到该证件持有人")
    assert (
        refused.value("certificate_no") == "B05-9999999"
        and refused.value("id_number") == unknown["id_number"]
    )
    assert not refused.has("previous-card")
    wrong_card = unknown | {"id_number": "31010419850312011X"}  # 张三's document, another card's number
    mismatch = page_of(await portal.post("/portal/previous", wrong_card))
    assert mismatch.error("certificate_no").startswith("该证件编号与证件持有人的上届证件不符")

    known = wrong_card | {"certificate_no": "b05-0102345"}
    found = page_of(await portal.post("/portal/previous", known))
    assert found.status == 200, found.html
    assert found.text("previous-certificate-no") == "B05-0102345"
    assert found.text("previous-unit-name") == "上海示例进口贸易有限公司"
    assert found.text("previous-unit-credit-code") == "91310115Y5298G5CBP"
    assert found.text("previous-revalidatable").startswith("可以延续使用")
    assert not found.has("previous-revalidate")  # the account has no unit yet: the unit form first
    unit_link = re.search(r'href="([^"]+)" id="previous-register-unit"', found.html)
    assert unit_link
    unit_page = await portal.get(unit_link.group(1).replace("&amp;", "&"))
    assert unit_page.value("name") == "上海示例进口贸易有限公司"
    assert unit_page.value("credit_code") == "91310115Y5298G5CBP"
    assert unit_page.value("mission.affiliation") == "residence"
    assert unit_page.value("address") == "上海市浦东新区示例路100号"

    # With the unit registered: on to the person form, the card's number filled in to re-validate it.
    registered = await portal.post(
        "/portal/unit",
        unit_form(
            name="上海示例进口贸易有限公司",
            credit_code="91310115Y5298G5CBP",
            address="上海市浦东新区示例路100号",
        ),
    )
    assert registered.status_code == 303, registered.text
    again = page_of(await portal.post("/portal/previous", known))
    revalidate = re.search(r'href="([^"]+)" id="previous-revalidate"', again.html)
    assert revalidate and not again.has("previous-register-unit")
    person = await portal.get(revalidate.group(1).replace("&amp;", "&"))
    assert person.value("revalidate_certificate_no") == "B05-0102345"


async def test_a_password_reset_by_code_sets_a_new_password_to_log_in_with(portal: Portal) -> None:
    await sign_up(portal, "lin@ningbo-trade.example.com")
    await portal.post("/portal/logout", {})
    login = await portal.get("/portal/login")
    assert login.has("forgot-password") and 'href="/portal/password-reset"' in login.html

    form = await portal.get("/portal/password-reset")
    assert form.value("channel") == "sms"
    asked = await portal.post(
        "/portal/password-reset", {"login": "lin@ningbo-trade.example.com", "channel": "sms"}
    )
    assert asked.status_code == 303, asked.text
    confirm = await portal.get(asked.headers["location"])
    assert confirm.value("login") == "lin@ningbo-trade.example.com"
    assert "验证码已发送" in confirm.html
    code = portal.notifications.last_code("+8613812345678")
    assert re.fullmatch(r"\d{6}", code)

    new_password = "Hongqiao-Expo-88"
    typed = {
        "login": "lin@ningbo-trade.example.com",
        "new_password": new_password,
        "new_password_confirm": new_password,
    }
    wrong = page_of(
        await portal.post(
            "/portal/password-reset/confirm", typed | {"code": "000000" if code != "000000" else "111111"}
        )
    )
    assert wrong.status == 400
    assert wrong.error("code") == "验证码错误或已使用，请核对或重新获取"
    assert wrong.value("login") == "lin@ningbo-trade.example.com" and wrong.value("code") != ""  # kept
    assert wrong.value("new_password") == "" and wrong.value("new_password_confirm") == ""  # never sent back

    weak = page_of(
        await portal.post(
            "/portal/password-reset/confirm?lang=en",
            typed | {"code": code, "new_password": "short", "new_password_confirm": "short"},
        )
    )
    assert weak.status == 422 and weak.error("new_password")
    assert weak.value("code") == code

    done = await portal.post("/portal/password-reset/confirm?lang=zh", typed | {"code": code})
    assert (done.status_code, done.headers["location"]) == (303, "/portal/login?notice=password_reset")
    assert "密码已重置" in (await portal.get(done.headers["location"] + "&lang=zh")).html

    old = await portal.post("/portal/login", {"login": "lin@ningbo-trade.example.com", "password": PASSWORD})
    assert old.status_code == 400
    logged_in = await portal.post(
        "/portal/login", {"login": "lin@ningbo-trade.example.com", "password": new_password}
    )
    assert (logged_in.status_code, logged_in.headers["location"]) == (303, "/portal")
    assert portal.browser.cookies.get("expo_buyer")


async def test_an_unpaid_person_is_withdrawn_only_once_confirmed(
    portal: Portal, lifecycle: Lifecycle
) -> None:
    unit_id = await with_unit(portal, "lin@ningbo-trade.example.com")
    rid = registration_id(await add_person(portal, demo_photo("林晓")))
    await lifecycle.approve_unit(unit_id)
    await lifecycle.reached(rid, RegistrationStatus.UNPAID)
    shown = await portal.get(f"/portal/registrations/{rid}")
    assert shown.has("withdraw-form") and 'data-confirm="确定撤回该人员的报名吗？"' in shown.html

    # Without the box ticked nothing is withdrawn.
    unconfirmed = page_of(await portal.post(f"/portal/registrations/{rid}/withdraw", {}))
    assert unconfirmed.status == 422
    assert unconfirmed.error("confirm_withdrawal") == "请勾选确认撤回报名"
    assert unconfirmed.text("status") == "待缴费"
    assert (await portal.get(f"/portal/registrations/{rid}")).text("status") == "待缴费"

    withdrawn = await portal.post(f"/portal/registrations/{rid}/withdraw", {"confirm_withdrawal": "yes"})
    assert withdrawn.status_code == 303, withdrawn.text
    after = await portal.get(withdrawn.headers["location"])
    assert after.text("status") == "已撤回"
    assert "报名已撤回" in after.html and not after.has("withdraw-form")
    assert not after.has("change-person") and not after.has("substitute-person")  # it has ended


async def test_a_refused_withdrawal_is_explained_in_the_pages_language(
    portal: Portal, lifecycle: Lifecycle
) -> None:
    unit_id = await with_unit(portal, "lin@ningbo-trade.example.com")
    rid = registration_id(await add_person(portal, demo_photo("林晓")))
    lifecycle.services.hold(c.MAKE_CERTIFICATE)  # the card stays in production
    await lifecycle.approve_unit(unit_id)
    await lifecycle.reached(rid, RegistrationStatus.UNPAID)
    await lifecycle.pay(rid)
    await lifecycle.reached(rid, RegistrationStatus.TO_BE_REVIEWED)
    await lifecycle.pass_review(rid)
    await lifecycle.reached(rid, RegistrationStatus.CERTIFICATE_IN_PRODUCTION)
    await portal.get(f"/portal/registrations/{rid}")
    refused = page_of(
        await portal.post(f"/portal/registrations/{rid}/withdraw", {"confirm_withdrawal": "yes"})
    )
    assert refused.status == 409
    assert (
        refused.error("confirm_withdrawal") == "人员审核已通过，证件制作已开始，不能退款、换人或修改个人信息"
    )
    assert refused.text("status") == "制证中"
    english = page_of(
        await portal.post(f"/portal/registrations/{rid}/withdraw?lang=en", {"confirm_withdrawal": "yes"})
    )
    assert english.error("confirm_withdrawal").startswith("the personnel review has passed")
    assert lifecycle.services.refunds == []  # nothing went back

    # The person's data cannot change any more either: the workflow's refusal, above the form.
    form = await portal.get(f"/portal/registrations/{rid}/edit?lang=zh")
    late = page_of(
        await portal.post(f"/portal/registrations/{rid}/edit", person_change(form, job_title="采购总监"))
    )
    assert late.status == 409
    assert late.text("form-error") == "人员审核已通过，证件制作已开始，不能退款、换人或修改个人信息"
    assert late.value("job_title") == "采购总监"
    assert (await portal.get(f"/portal/registrations/{rid}/edit")).value("job_title") == "采购经理"


CHANGE_INPUTS = ("name", "mobile", "email", "job_title", "personnel_label", "entrance_date")


def person_change(form: Page, **changes: str) -> dict[str, str]:
    """The change form as shown (the data as registered), with ``changes`` typed over it."""
    return {name: form.value(name) for name in CHANGE_INPUTS} | changes


async def test_a_persons_changed_data_shows_on_the_registration_page(
    portal: Portal, lifecycle: Lifecycle
) -> None:
    await with_unit(portal, "lin@ningbo-trade.example.com")
    rid = registration_id(await add_person(portal, demo_photo("林晓")))
    shown = await portal.get(f"/portal/registrations/{rid}")
    assert shown.has("change-person") and shown.has("substitute-person")

    form = await portal.get(f"/portal/registrations/{rid}/edit")
    assert (form.value("name"), form.value("job_title")) == ("林晓", "采购经理")
    assert form.value("entrance_date") == portal.expo_days[0]
    assert form.value("mobile") == "+8613900005555"  # as the API keeps it (E.164)
    assert not form.has("f-id_number") and "身份证" in form.text("document")  # changed by substitution
    assert form.text("delivery-method") == "交易团统一领取"

    # An invalid email is the request validation's refusal: beside its input, the rest kept.
    typed = person_change(form, name="林晓明", job_title="采购总监", entrance_date=portal.expo_days[1])
    invalid_email = page_of(await portal.post(f"/portal/registrations/{rid}/edit", typed | {"email": "lin@"}))
    assert invalid_email.status == 422 and invalid_email.error("email") == "此项填写有误，请核对"
    assert (
        invalid_email.value("name") == "林晓明"
        and invalid_email.value("entrance_date") == portal.expo_days[1]
    )

    changed = await portal.post(f"/portal/registrations/{rid}/edit", typed)
    assert changed.status_code == 303, changed.text
    assert changed.headers["location"] == f"/portal/registrations/{rid}?notice=person_changed"
    after = await portal.get(changed.headers["location"])
    assert after.text("person-name") == "林晓明" and "个人信息已修改" in after.html
    assert after.text("entrance-date") == portal.expo_days[1]
    again = await portal.get(f"/portal/registrations/{rid}/edit")
    assert (again.value("name"), again.value("job_title")) == ("林晓明", "采购总监")


async def test_a_revalidated_cards_name_is_refused_beside_it_in_english_with_the_typing_kept(
    portal: Portal,
) -> None:
    await import_shipped(portal.ctx.db)
    assert (await sign_up(portal, "zhang.san@shanghai-example.example")).status_code == 303
    await portal.get("/portal/unit")
    shanghai = unit_form(
        name="上海示例进口贸易有限公司", credit_code="91310115Y5298G5CBP", address="上海市浦东新区示例路100号"
    )
    assert (await portal.post("/portal/unit", shanghai)).status_code == 303
    zhang = {"name": "张三", "id_number": "31010419850312011X", "revalidate_certificate_no": "B05-0102345"}
    rid = registration_id(await add_person(portal, None, **zhang))  # last edition's card, re-validated
    shown = await portal.get(f"/portal/registrations/{rid}")
    assert shown.has("change-person") and not shown.has("substitute-person")  # the card is the holder's

    form = await portal.get(f"/portal/registrations/{rid}/edit?lang=en")
    typed = person_change(form, name="张叁", job_title="Purchasing director")
    refused = page_of(await portal.post(f"/portal/registrations/{rid}/edit?lang=en", typed))
    assert refused.status == 409
    assert refused.error("name") == (
        "a re-validated certificate keeps the data printed on it: the name, personnel label and day of"
        " entrance cannot change"
    )
    for name, value in typed.items():
        assert refused.value(name) == value, name
    assert (await portal.get(f"/portal/registrations/{rid}")).text("person-name") == "张三"


async def test_a_substitute_takes_the_place_with_their_photo(portal: Portal, lifecycle: Lifecycle) -> None:
    await with_unit(portal, "lin@ningbo-trade.example.com")
    lin_xiao = demo_id_number("19880808")
    rid = registration_id(await add_person(portal, demo_photo("林晓"), id_number=lin_xiao))
    form = await portal.get(f"/portal/registrations/{rid}/substitute")
    assert "已缴费用保留" in form.text("substitution-rules") and "重新进行人员审核" in form.text(
        "substitution-rules"
    )
    assert form.value("delivery_method") == "mission_collection"  # as registered, sent as it is
    assert form.value("entrance_date") == portal.expo_days[0] and form.value("name") == ""
    english = await portal.get(f"/portal/registrations/{rid}/substitute?lang=en")
    assert "payment stay" in english.text("substitution-rules")

    wang = person_form(portal, name="王芳", job_title="采购专员", email="wang.fang@ningbo-trade.example.com")
    photo = {"photo": ("photo.jpg", demo_photo("王芳"), "image/jpeg")}
    # The person being replaced cannot be their own substitute: already registered, beside the number.
    taken = page_of(
        await portal.post(
            f"/portal/registrations/{rid}/substitute?lang=zh", wang | {"id_number": lin_xiao}, files=photo
        )
    )
    assert taken.status == 409
    assert taken.error("id_number") == "该人员已报名本届展会，每人每届只能报名一次"
    assert taken.value("name") == "王芳" and taken.value("id_number") == lin_xiao
    assert "请重新选择照片" in taken.html

    substituted = await portal.post(f"/portal/registrations/{rid}/substitute", wang, files=photo)
    assert substituted.status_code == 303, substituted.text
    assert substituted.headers["location"] == f"/portal/registrations/{rid}?notice=person_substituted"
    after = await portal.get(substituted.headers["location"])
    assert after.text("person-name") == "王芳" and after.text("photo-state") == "已上传"
    assert after.text("registration-id") == rid  # the same place
    person = (await portal.browser.get(f"/v1/registrations/{rid}", headers=portal.buyer)).json()
    assert person["photo_uploaded"] is True and person["id_number_masked"].endswith(wang["id_number"][-4:])
