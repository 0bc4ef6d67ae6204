"""The notification service with real parts: its migrated SQLite database, the project's own mail server
(``deploy/local/mailbox.py``: SMTP into a Maildir, read back through its JSON API), the embedded SMS
outbox, the real ``notify`` activity (directly, and on the time-skipping Temporal server through a tiny
workflow that calls it as the registration workflow does: unlimited retries, 1 s to 1 min back-off),
and its HTTP API. The registration service's person route and the review service's staff session route
are small stand-ins reached over httpx, as the service reaches the real ones (tests/service_stand_ins.py:
a staff token is ``staff:<role>[:<mission>]``; anything else is refused as the review service would).

What is proved: one message per step reaches the outbox and the inbox however often the step is
notified, a crash between sending and logging included; a mail server that is down delays the mail
(logged pending, with attempts and the error) and loses nothing; the log is read by staff of the right
missions only; the on-site pickup email says where, when and what to bring in both languages; a mobile
outside the Chinese mainland gets email only; a reissued card's message is sent once and logged.
"""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from temporalio import workflow
from temporalio.client import Client
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from deploy.local.mailbox import serve
from services.notification import activities as notification_activities
from services.notification import api as notification_api
from services.notification import delivery
from services.notification.activities import NotificationActivities
from services.notification.channels import OutboxSmsProvider, message_id
from services.notification.models import SentMessage
from services.notification.templates import SIGNATURE, pickup_params, render
from shared import auth as shared_auth
from shared import contracts as c
from shared.catalogue import load_edition
from shared.records import PersonRecord
from shared.service import ServiceContext
from shared.settings import Settings, get_settings
from shared.types import DeliveryMethod, FeeKind, RegistrationStatus
from tests.service_env import service_context
from tests.service_stand_ins import NOTIFICATION, URLS, StandIns, staff
from workflows.calls import call

EDITION = load_edition("ciie6")

# Who the stand-in registration service knows (the notification service asks it by registration id).
SHANGHAI = "RSH7K2M4Q9XJ3"  # a mainland buyer of the Shanghai mission: SMS and email, express
BEIJING = "RBJ7K2M4Q9XJ3"  # another mission's
OVERSEAS = "ROS7K2M4Q9XJ3"  # a German buyer with a German mobile, picking the card up on site
OVERSEAS_CN_MOBILE = "ROC7K2M4Q9XJ3"  # an overseas buyer with a mainland mobile, on-site pickup too


def person(
    registration_id: str,
    *,
    name: str,
    mobile: str,
    email: str,
    mission: str,
    nationality: str = "CHN",
    delivery: DeliveryMethod = DeliveryMethod.EXPRESS,
) -> PersonRecord:
    return PersonRecord(
        registration_id=registration_id,
        edition="ciie6",
        unit_id="U7K2M4Q9XJ3PA",
        unit_name="东方贸易有限公司",
        name=name,
        nationality=nationality,
        mobile=mobile,
        email=email,
        mission=mission,
        sub_mission=None,
        fee_kind=FeeKind.STANDARD,
        status=RegistrationStatus.SUBMITTED,
        delivery_method=delivery,
        delivery_address=None,
        photo_key=None,
    )


PEOPLE = {
    p.registration_id: p
    for p in (
        person(
            SHANGHAI,
            name="张伟",
            mobile="+8613812345678",
            email="zhang.wei@buyers.example.com",
            mission="shanghai",
        ),
        person(
            BEIJING, name="李娜", mobile="+8613912345678", email="li.na@buyers.example.com", mission="beijing"
        ),
        person(
            OVERSEAS,
            name="Anna Schmidt",
            mobile="+4915112345678",
            email="anna.schmidt@buyers.example.de",
            mission="shanghai",
            nationality="DEU",
            delivery=DeliveryMethod.ONSITE_PICKUP,
        ),
        person(
            OVERSEAS_CN_MOBILE,
            name="John Smith",
            mobile="+8613712345678",
            email="john.smith@buyers.example.co.uk",
            mission="shanghai",
            nationality="GBR",
            delivery=DeliveryMethod.ONSITE_PICKUP,
        ),
    )
}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# ------------------------------------------------------------------------------------------ the mail server


class Mailbox:
    """The project's mail server on fixed ports, so that it can be stopped (the mail server is down:
    connections are refused) and started again on the same port with the same Maildir."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.smtp_port, self.http_port = free_port(), free_port()
        self._stop: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        stop, ready = asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(
            serve(self.directory, "127.0.0.1", self.smtp_port, self.http_port, stop, ready=ready)
        )
        waiting = asyncio.create_task(ready.wait())
        await asyncio.wait({waiting, task}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
        if task.done():
            task.result()  # the reason it did not start
        assert ready.is_set(), "the mail server did not start within 10 s"
        self._stop, self._task = stop, task

    async def stop(self) -> None:
        if self._stop is not None and self._task is not None:
            self._stop.set()
            await asyncio.wait_for(self._task, timeout=10)
        self._stop = self._task = None

    def stored(self) -> int:
        """How many messages the Maildir holds (readable while the server is down)."""
        return sum(1 for sub in ("new", "cur") for _ in (self.directory / sub).glob("*"))

    async def messages(self, to: str) -> list[dict[str, Any]]:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.http_port}", timeout=10) as client:
            listed: list[dict[str, Any]] = (await client.get("/api/messages", params={"to": to})).json()
            return [(await client.get(f"/api/messages/{m['id']}")).json() for m in listed]


# ------------------------------------------------------------------------------------------ fixtures


@dataclass
class World:
    settings: Settings
    ctx: ServiceContext
    mail: Mailbox
    activities: NotificationActivities
    api: httpx.AsyncClient
    stand_ins: StandIns

    def sms(self, to: str | None = None) -> list[dict[str, str]]:
        path = self.settings.sms_outbox_path
        if not path.exists():
            return []
        lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        return [line for line in lines if to is None or line["to"] == to]

    async def rows(self, key: str | None = None) -> list[SentMessage]:
        query = select(SentMessage).order_by(SentMessage.id)
        if key is not None:
            query = query.where(SentMessage.key == key)
        async with self.ctx.db.sessions() as session:
            return list(await session.scalars(query))

    async def notify(self, request: c.Notify) -> c.Notified:
        """The real activity, outside a workflow (what one attempt does)."""
        result: c.Notified = await ActivityEnvironment().run(self.activities.notify, request)
        return result


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    mail = Mailbox(tmp_path / "mail")
    settings = Settings(
        data_dir=tmp_path,
        edition="ciie6",
        **URLS,
        smtp_host="127.0.0.1",
        smtp_port=mail.smtp_port,
        sms_outbox=tmp_path / "sms-outbox.jsonl",
    )
    stand_ins = StandIns.fresh(settings)
    stand_ins.people.update(PEOPLE)
    http = httpx.AsyncClient(mounts=stand_ins.mounts())
    await mail.start()
    try:
        async with service_context("notification", settings, http=http) as ctx:
            notification_api.app.state.ctx = ctx
            notification_api.app.dependency_overrides[get_settings] = lambda: settings
            acts = NotificationActivities(ctx, OutboxSmsProvider(settings.sms_outbox_path))
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=notification_api.app), base_url=NOTIFICATION
            ) as api:
                yield World(settings, ctx, mail, acts, api, stand_ins)
    finally:
        notification_api.app.dependency_overrides.pop(get_settings, None)
        shared_auth.clear_cache()
        await mail.stop()


def notify(registration_id: str, seq: int, step: c.Step, **params: str) -> c.Notify:
    """A step's message as the registration workflow sends it: keyed by registration, sequence and step."""
    return c.Notify(
        registration_id=registration_id, step=step, key=f"{registration_id}:{seq}:{step.value}", params=params
    )


PAID = {"order_no": "P7K2M4Q9XJ3PA"}


# ------------------------------------------------------------------------------------------ (a) once per step


async def test_a_step_notified_twice_reaches_the_outbox_and_the_inbox_once(world: World) -> None:
    request = notify(SHANGHAI, 9, c.Step.PAID, **PAID)
    first = await world.notify(request)
    again = await world.notify(request)  # the activity retried, or the workflow replayed into it
    assert first == again == c.Notified(sms_sent=True, email_sent=True)

    [sms] = world.sms()
    assert sms["key"] == request.key and sms["to"] == "+8613812345678"
    assert sms["text"].startswith("【进博会】") and SHANGHAI in sms["text"] and "P7K2M4Q9XJ3PA" in sms["text"]
    [mail] = await world.mail.messages("zhang.wei@")
    assert mail["headers"]["Message-ID"] == message_id(request.key)
    assert (
        SHANGHAI in mail["subject"]
        and "缴费成功" in mail["subject"]
        and "payment received" in mail["subject"]
    )
    assert mail["text"].startswith("张伟：") and "Payment received" in mail["text"]

    rows = await world.rows(request.key)
    assert [(r.channel, r.status, r.attempts, r.mission) for r in rows] == [
        ("sms", "sent", 1, "shanghai"),
        ("email", "sent", 1, "shanghai"),
    ]
    assert {r.recipient for r in rows} == {"+8613****78", "zh***@buyers.example.com"}  # masked
    assert all(r.sent_at is not None and r.last_error is None and r.step == "paid" for r in rows)


async def test_a_crash_between_sending_and_logging_sends_nothing_twice(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The messages went out, then the worker died before the log said so: the retry sends both again
    with the same key, and the SMS provider and the mail store drop the repeats."""
    request = notify(SHANGHAI, 12, c.Step.REVIEW_PASSED)
    real_finish = delivery.finish
    crashed: list[int] = []

    async def crash_before_marking_sent(db: Any, row_id: int, error: str | None = None) -> None:
        if error is None and row_id not in crashed:  # each row's first marking fails
            crashed.append(row_id)
            raise ConnectionResetError("the database went away")
        await real_finish(db, row_id, error)

    monkeypatch.setattr(
        notification_activities, "finish", crash_before_marking_sent
    )  # as the activity calls it
    with pytest.raises(ConnectionResetError):
        await world.notify(request)  # the SMS went, its row could not be marked sent
    assert [(r.channel, r.status) for r in await world.rows(request.key)] == [("sms", "pending")]
    with pytest.raises(ConnectionResetError):
        await world.notify(request)  # the SMS again (dropped), then the email went, unmarked
    assert await world.notify(request) == c.Notified(sms_sent=True, email_sent=True)

    assert [s["key"] for s in world.sms()] == [request.key]
    assert len(await world.mail.messages("zhang.wei@")) == 1
    rows = await world.rows(request.key)
    assert [(r.channel, r.status, r.attempts) for r in rows] == [("sms", "sent", 2), ("email", "sent", 2)]

    # A later step is a message of its own.
    monkeypatch.undo()
    await world.notify(notify(SHANGHAI, 13, c.Step.REFUNDED, refund_no="F1"))
    assert len(world.sms()) == 2 and len(await world.mail.messages("zhang.wei@")) == 2


# ------------------------------------------------------------------------------------------ (b) mail server down


@workflow.defn(name="NotifyStandIn")
class NotifyStandIn:
    """Calls the notification activity as the registration workflow does (its retry policy, its
    timeout), so that Temporal's own retries are what brings the message through."""

    @workflow.run
    async def run(self, request: c.Notify) -> c.Notified:
        return await call(c.NOTIFY, request, summary=f"notify {request.step.value}")


@pytest.fixture
async def temporal_world(world: World, env: WorkflowEnvironment) -> AsyncIterator[tuple[World, Client]]:
    async with (
        Worker(env.client, task_queue=c.NOTIFY.task_queue, activities=[world.activities.notify]),
        Worker(
            env.client,
            task_queue="notify-stand-in",
            workflows=[NotifyStandIn],
            workflow_runner=UnsandboxedWorkflowRunner(),  # a test module is no workflow sandbox's business
        ),
    ):
        yield world, env.client


async def wait_for(condition: Any, what: str, seconds: float = 20) -> None:
    for _ in range(int(seconds / 0.1)):
        if await condition():
            return
        await asyncio.sleep(0.1)
    pytest.fail(f"waited {seconds} s for {what}")


async def test_a_mail_server_that_is_down_delays_the_mail_and_loses_nothing(
    temporal_world: tuple[World, Client],
) -> None:
    world, client = temporal_world
    await world.mail.stop()
    request = notify(SHANGHAI, 3, c.Step.UNIT_APPROVED, deadline="2023-10-15T16:00:00+00:00")
    handle = await client.start_workflow(
        NotifyStandIn.run, request, id=f"notify-{uuid.uuid4().hex}", task_queue="notify-stand-in"
    )

    async def email_retried() -> bool:
        rows = {r.channel: r for r in await world.rows(request.key)}
        return "email" in rows and rows["email"].attempts >= 2

    await wait_for(email_retried, "a second attempt at the email")
    sms, email = await world.rows(request.key)
    assert (sms.channel, sms.status, sms.attempts) == ("sms", "sent", 1)  # the SMS went once, at once
    assert (email.channel, email.status) == ("email", "pending") and email.sent_at is None
    assert email.last_error is not None and email.last_error.startswith("SMTPConnectError")
    assert "zhang.wei" not in email.last_error and "13812345678" not in email.last_error
    assert email.body.startswith("张伟：")  # what will go out is in the log already
    # Staff see it waiting, and why.
    pending = await world.api.get(
        "/v1/messages", params={"status": "pending"}, headers=staff("administrator")
    )
    assert pending.status_code == 200, pending.text
    [shown] = pending.json()
    assert (shown["key"], shown["channel"], shown["attempts"] >= 2) == (request.key, "email", True)
    assert shown["last_error"].startswith("SMTPConnectError") and shown["sent_at"] is None
    assert len(world.sms()) == 1 and world.mail.stored() == 0  # the inbox's web page is down too
    # Operators see why in the Temporal UI: the retried activity's last failure, naming no recipient.
    [activity_info] = (await handle.describe()).raw_description.pending_activities
    failure = activity_info.last_failure.message
    assert "SMTPConnectError" in failure and activity_info.attempt >= 2
    for contact in ("zhang.wei", "13812345678", "张伟"):
        assert contact not in failure

    await world.mail.start()  # back: the next retry (time skipped to it) delivers
    assert await handle.result() == c.Notified(sms_sent=True, email_sent=True)

    [mail] = await world.mail.messages("zhang.wei@")
    assert "2023-10-16 00:00" in mail["text"] and SHANGHAI in mail["subject"]
    sms, email = await world.rows(request.key)
    assert (email.status, email.sent_at is not None, email.attempts >= 3) == ("sent", True, True)
    assert sms.attempts == 1 and len(world.sms()) == 1


# ------------------------------------------------------------------------------------------ (c) staff read the log


@pytest.fixture
async def logged(world: World) -> World:
    """Shanghai's and Beijing's messages, and an overseas buyer's (email only), oldest first."""
    await world.notify(notify(SHANGHAI, 1, c.Step.REGISTERED))
    await world.notify(notify(BEIJING, 1, c.Step.REGISTERED))
    await world.notify(notify(SHANGHAI, 5, c.Step.PAID, **PAID))
    await world.notify(notify(OVERSEAS, 1, c.Step.REGISTERED))
    return world


async def listed(world: World, headers: dict[str, str], **params: Any) -> tuple[int, list[dict[str, Any]]]:
    response = await world.api.get("/v1/messages", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return int(response.headers["X-Total-Count"]), response.json()


async def test_staff_read_the_log_of_their_own_mission(logged: World) -> None:
    world = logged
    everything = 2 + 2 + 2 + 1  # SMS and email for the mainland mobiles, email for the German one
    for role in ("administrator", "observer", "certificate_office", "finance"):
        total, rows = await listed(world, staff(role))
        assert total == everything == len(rows), role
        assert {r["mission"] for r in rows} == {"shanghai", "beijing"}
    for role in ("mission_staff", "finance"):
        total, rows = await listed(world, staff(role, "beijing"))
        assert total == 2 and {r["registration_id"] for r in rows} == {BEIJING}, role
        total, rows = await listed(world, staff(role, "shanghai"))
        assert total == 5 and {r["registration_id"] for r in rows} == {SHANGHAI, OVERSEAS}, role
        # Another mission's registration is simply not there for them.
        assert await listed(world, staff(role, "shanghai"), registration_id=BEIJING) == (0, [])

    admin = staff("administrator")
    total, rows = await listed(world, admin)
    newest = rows[0]
    assert (newest["registration_id"], newest["channel"], newest["step"]) == (OVERSEAS, "email", "registered")
    assert [r["created_at"] for r in rows] == sorted((r["created_at"] for r in rows), reverse=True)
    assert set(newest) >= {"status", "attempts", "last_error", "created_at", "sent_at", "recipient", "body"}
    assert newest["recipient"] == "an***@buyers.example.de"

    total, page = await listed(world, admin, limit=2, offset=2)
    assert total == everything and [r["id"] for r in page] == [r["id"] for r in rows[2:4]]
    total, rows = await listed(world, admin, registration_id=SHANGHAI, step="paid", channel="sms")
    assert total == 1 and rows[0]["key"] == f"{SHANGHAI}:5:paid"
    assert (await listed(world, admin, status="sent"))[0] == everything
    assert (await listed(world, admin, status="pending"))[0] == 0
    assert (await listed(world, admin, channel="email"))[0] == 4

    for bad in ({"status": "lost"}, {"step": "nonsense"}, {"channel": "fax"}, {"limit": 0}):
        refused = await world.api.get("/v1/messages", params=bad, headers=admin)
        assert refused.status_code == 422 and refused.json()["code"] == "invalid_input", (bad, refused.text)


async def test_the_log_refuses_callers_without_a_staff_login(logged: World) -> None:
    world = logged
    for headers in ({}, {"Authorization": "Bearer nobody"}, {"Authorization": "Basic dXNlcjpwYXNz"}):
        refused = await world.api.get("/v1/messages", headers=headers)
        assert refused.status_code == 401 and refused.json()["code"] == "unauthenticated", refused.text
    refused = await world.api.get("/v1/messages", headers=staff("visitor"))  # a role this log is not for
    assert refused.status_code == 403 and refused.json()["code"] == "messages_not_allowed", refused.text
    # Mission staff without a mission see no mission's messages.
    assert await listed(world, staff("mission_staff")) == (0, [])


# Routes that need no staff login, and why: health, the embedded SMS provider's outbox (it stands in
# for the phones), and the service-to-service routes (the service token).
OPEN = {("get", "/healthz"), ("get", "/readyz"), ("get", "/v1/sms-outbox")}


def operations() -> list[tuple[str, str]]:
    paths: dict[str, dict[str, Any]] = notification_api.app.openapi()["paths"]
    return [(method, path) for path, ops in paths.items() for method in ops]


async def test_every_route_but_health_the_outbox_and_internal_ones_needs_a_staff_login(world: World) -> None:
    found = operations()
    assert ("get", "/v1/messages") in found and ("post", "/internal/messages") in found
    assert set(found) >= OPEN
    for method, path in found:
        what = f"{method.upper()} {path}"
        if (method, path) in OPEN:
            response = await world.api.request(method.upper(), path)
            # answered without a login (readiness may say 503: this test's API has no Temporal)
            assert response.status_code not in (401, 403), (what, response.text)
            continue
        for headers in ({}, {"Authorization": "Bearer not-a-token"}):
            response = await world.api.request(method.upper(), path, json={}, headers=headers)
            expected = "unauthorised" if path.startswith("/internal/") else "unauthenticated"
            assert response.status_code == 401, (what, response.status_code, response.text)
            assert response.json()["code"] == expected, (what, response.text)
        if not path.startswith("/internal/"):
            response = await world.api.request(method.upper(), path, headers=staff("administrator"))
            assert response.status_code == 200, (what, response.text)


# ------------------------------------------------------------------------------------------ (d) on-site pickup


async def test_the_on_site_pickup_email_says_where_when_and_what_to_bring_in_both_languages(
    world: World,
) -> None:
    dispatched = {"certificate_no": "B06-0000003", "delivery_method": "onsite_pickup"}
    request = notify(OVERSEAS, 8, c.Step.DISPATCHED, **dispatched)
    assert await world.notify(request) == c.Notified(sms_sent=False, email_sent=True)
    [mail] = await world.mail.messages("anna.schmidt@")
    text = mail["text"]
    assert text.startswith("Anna Schmidt：") and text.rstrip().endswith(SIGNATURE)
    assert "B06-0000003" in text and OVERSEAS in mail["subject"]
    assert "现场领取" in mail["subject"] and "on-site pickup" in mail["subject"]
    zh, en = text.split("Your certificate", 1)
    # Where: the certificate centre's address, from the edition file.
    assert "进博会注册及证件管理中心" in zh and "上海市青浦区崧泽大道333号" in zh
    assert "CIIE Registration and Certificate Centre" in en and "333 Songze Avenue, Qingpu District" in en
    # When: its days and daily hours, Beijing time.
    assert "2023年10月28日至2023年11月10日，每日09:00–17:00（北京时间）" in zh
    assert "28 October 2023 to 10 November 2023, daily 09:00–17:00 Beijing time" in en
    # What to bring: the travel document used at registration, and the registration number.
    assert "护照或其他旅行证件原件" in zh and f"报名号{OVERSEAS}" in zh
    assert "passport or other travel document you registered with" in en
    assert f"registration number {OVERSEAS}" in en
    assert "—" not in text.replace(SIGNATURE, "") and "{" not in text
    [row] = await world.rows(request.key)
    assert (row.channel, row.status, row.body) == ("email", "sent", text.rstrip("\n"))

    # An overseas buyer with a mainland mobile: the SMS is short and points to the email.
    other = notify(OVERSEAS_CN_MOBILE, 8, c.Step.DISPATCHED, **dispatched)
    assert await world.notify(other) == c.Notified(sms_sent=True, email_sent=True)
    [sms] = world.sms("+8613712345678")
    assert "邮箱" in sms["text"] and "崧泽大道" not in sms["text"]
    [mail] = await world.mail.messages("john.smith@")
    assert "崧泽大道333号" in mail["text"] and "333 Songze Avenue" in mail["text"]


def test_the_pickup_days_move_with_a_rehearsals_calendar() -> None:
    shifted = pickup_params(EDITION.shifted(3))
    assert shifted["pickup_hours_en"].startswith("28 October 2026 to 10 November 2026")
    assert shifted["pickup_hours_zh"].startswith("2026年10月28日至2026年11月10日")


def test_the_other_dispatch_messages_name_the_carrier_or_the_mission() -> None:
    base = {"registration_id": SHANGHAI, "certificate_no": "B06-0000001"}
    subject, zh, en = render(
        c.Step.DISPATCHED,
        base | {"delivery_method": "express", "carrier": "SANDBOX-EXPRESS", "tracking_no": "SX000000000001"},
    )
    assert "SANDBOX-EXPRESS" in zh and "SX000000000001" in zh and "证件页面" in zh
    assert "carrier SANDBOX-EXPRESS, waybill SX000000000001" in en and "certificate page" in en
    assert "dispatched by express" in subject
    subject, zh, en = render(c.Step.DISPATCHED, base | {"delivery_method": "mission_collection"})
    assert "向您所属的交易团领取" in zh and "collect it from your trade mission" in en
    assert "trade mission" in subject


def test_every_step_message_names_the_registration_and_the_step_in_both_languages() -> None:
    silent = {c.Step.CERTIFICATE_MAKING, c.Step.CERTIFICATE_MADE, c.Step.DELIVERED}
    for step in set(c.Step) - silent:
        subject, zh, en = render(step, {"registration_id": SHANGHAI})
        title_zh, title_en = subject.split(" | ")
        assert SHANGHAI in title_zh and SHANGHAI in title_en and SHANGHAI in zh and SHANGHAI in en, step
        assert title_zh.startswith("进博会采购商报名") and title_en.startswith("CIIE buyer registration"), (
            step
        )
        assert "_" not in title_en, (step, "a title for people, not the step's code")


# ------------------------------------------------------------------------------------------ (e) email only


async def test_a_mobile_outside_the_mainland_gets_email_only(world: World) -> None:
    request = notify(OVERSEAS, 5, c.Step.PAID, **PAID)
    assert await world.notify(request) == c.Notified(sms_sent=False, email_sent=True)
    assert await world.notify(request) == c.Notified(sms_sent=False, email_sent=True)
    assert world.sms() == []
    [mail] = await world.mail.messages("anna.schmidt@")
    assert (
        "P7K2M4Q9XJ3PA" in mail["text"] and "缴费成功" in mail["text"] and "Payment received" in mail["text"]
    )
    assert [(r.channel, r.status, r.attempts) for r in await world.rows(request.key)] == [
        ("email", "sent", 1)
    ]


# ------------------------------------------------------------------------------------------ reissued cards


async def test_a_reissued_card_is_announced_once_per_channel_and_logged(world: World) -> None:
    auth = {"Authorization": f"Bearer {world.settings.internal_token.get_secret_value()}"}
    params = {"registration_id": SHANGHAI, "certificate_no": "B06-0000001", "serial": 2}
    for serial in (2, "2"):  # the certificate service asked twice (a retry): one message each way
        for channel, to in (("sms", "+8613812345678"), ("email", "zhang.wei@buyers.example.com")):
            sent = await world.api.post(
                "/internal/messages",
                json={
                    "channel": channel,
                    "to": to,
                    "template": "certificate_reissued",
                    "params": params | {"serial": serial},
                },
                headers=auth,
            )
            assert sent.status_code == 202, sent.text
            assert sent.json() == {"key": "certificate-reissued.B06-0000001.2", "channel": channel}

    [sms] = world.sms()
    assert "B06-0000001" in sms["text"] and "作废" in sms["text"] and "no longer admit" in sms["text"]
    [mail] = await world.mail.messages("zhang.wei@")
    assert "B06-0000001" in mail["subject"] and "reissued" in mail["subject"]
    text = mail["text"]
    assert "新证件序号为2" in text and "card serial 2" in text
    assert "二维码已作废" in text and "QR code no longer admit" in text
    assert "崧泽大道333号" in text and "333 Songze Avenue" in text and "09:00–17:00" in text

    rows = await world.rows("certificate-reissued.B06-0000001.2")
    assert [(r.channel, r.status, r.step, r.mission, r.attempts) for r in rows] == [
        ("sms", "sent", "certificate_reissued", "shanghai", 1),
        ("email", "sent", "certificate_reissued", "shanghai", 1),
    ]
    total, shown = await listed(world, staff("mission_staff", "shanghai"), step="certificate_reissued")
    assert total == 2 and {r["registration_id"] for r in shown} == {SHANGHAI}
    assert await listed(world, staff("mission_staff", "beijing"), step="certificate_reissued") == (0, [])

    refused = await world.api.post(
        "/internal/messages",
        json={
            "channel": "email",
            "to": "zhang.wei@buyers.example.com",
            "template": "certificate_reissued",
            "params": params | {"registration_id": "RNOSUCH"},
        },
        headers=auth,
    )
    assert refused.status_code == 422 and refused.json()["code"] == "unknown_registration", refused.text
    for bad in ({"serial": 1}, {"certificate_no": ""}, {"code": "123456"}):
        refused = await world.api.post(
            "/internal/messages",
            json={
                "channel": "sms",
                "to": "+8613812345678",
                "template": "certificate_reissued",
                "params": params | bad,
            },
            headers=auth,
        )
        assert refused.status_code == 422 and refused.json()["code"] == "invalid_input", (bad, refused.text)


async def test_a_reissued_cards_mail_waits_for_the_mail_server_and_is_then_sent_once(world: World) -> None:
    auth = {"Authorization": f"Bearer {world.settings.internal_token.get_secret_value()}"}
    message = {
        "channel": "email",
        "to": "li.na@buyers.example.com",
        "template": "certificate_reissued",
        "params": {"registration_id": BEIJING, "certificate_no": "B06-0000002", "serial": 3},
    }
    await world.mail.stop()
    refused = await world.api.post("/internal/messages", json=message, headers=auth)
    assert refused.status_code == 502 and refused.json()["code"] == "channel_unavailable", refused.text
    [row] = await world.rows("certificate-reissued.B06-0000002.3")
    assert (row.status, row.attempts, row.mission) == ("pending", 1, "beijing")
    assert row.last_error is not None and "li.na" not in row.last_error

    await world.mail.start()
    for _ in range(2):
        sent = await world.api.post("/internal/messages", json=message, headers=auth)
        assert sent.status_code == 202, sent.text
    assert len(await world.mail.messages("li.na@")) == 1
    [row] = await world.rows("certificate-reissued.B06-0000002.3")
    assert (row.status, row.attempts) == ("sent", 2)


def test_failures_are_described_without_the_contact() -> None:
    from aiosmtplib import SMTPRecipientRefused, SMTPRecipientsRefused, SMTPResponseException

    from services.notification.delivery import describe_failure

    refused = SMTPRecipientsRefused(
        [SMTPRecipientRefused(550, "5.1.1 Recipient address rejected", "zhang.wei@buyers.example.com")]
    )
    for exc in (
        refused,
        SMTPResponseException(550, "5.1.1 <zhang.wei@buyers.example.com>: Recipient address rejected"),
        RuntimeError("provider refused +8613812345678"),
    ):
        text = describe_failure(exc, "zhang.wei@buyers.example.com", "+8613812345678")
        assert text.startswith(type(exc).__name__) and len(text) <= 200, text
        assert "zhang.wei" not in text and "13812345678" not in text, text
    assert describe_failure(SMTPResponseException(451, "try later")) == "SMTPResponseException: 451 try later"
    assert describe_failure(ConnectionRefusedError(111, "Connection refused")) == (
        "ConnectionRefusedError: Connection refused"
    )


@pytest.fixture(autouse=True)
def _no_stale_auth_cache() -> Iterator[None]:
    shared_auth.clear_cache()
    yield
    shared_auth.clear_cache()
