"""The certificate service as buyers, mission staff and the certificate office use it: who may see and
do what, the collection lists and their exports, hand-outs (which tell the registration its card was
delivered), and reissues of lost cards, checked at the gate with the QR code read off the badges.

The certificate API runs in process on its own migrated SQLite database; cards are made by the
``make`` activity. The registration, review and notification services are stand-ins answering the
routes this service calls (tests/service_stand_ins.py: a buyer's token ``unit:<unit id>``, a staff
token ``staff:<role>[:<mission>]``). The object store is the session's SeaweedFS (tests/object_store.py),
with buckets of each test's own (a badge's key is its card's number). Temporal is the test's own
time-skipping server; where a test looks at what registrations are told, a small recorder workflow
runs under each registration's workflow id and keeps the signals it gets.
"""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from openpyxl import load_workbook  # type: ignore[import-untyped, unused-ignore]
from PIL import Image
from sqlalchemy import select, update
from temporalio import workflow
from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RetryConfig
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from services.certificate.activities import CertificateActivities
from services.certificate.admission_code import AdmissionClaims
from services.certificate.api import app
from services.certificate.cards import signer_for
from services.certificate.courier import Courier
from services.certificate.models import Certificate, CertificateActivation, CertificateReissue
from shared import auth as shared_auth
from shared import contracts as c
from shared.db import utcnow
from shared.service import ServiceContext
from shared.settings import Settings
from shared.temporal import registration_workflow_id
from shared.types import DeliveryMethod, FeeKind
from tests.object_store import SeaweedFS
from tests.service_env import service_context
from tests.service_stand_ins import URLS, StandIns, bearer, person, staff, unit
from tests.workflow_env import quiet_runtime, time_skipping_environment

EDITION = "ciie6"
CERTIFICATE = "http://certificate.test"
OPEN = {("post", "/v1/verify"), ("post", "/v1/courier/events")}  # gates; the courier's signed callbacks

# Every operation of the API but the open ones: who it is for. A new route must be added here.
OPERATIONS: dict[tuple[str, str], str] = {
    ("get", "/v1/registrations/{registration_id}/certificate"): "buyer or staff",
    ("get", "/v1/registrations/{registration_id}/certificate/tracking"): "buyer or staff",
    ("get", "/v1/certificates/{certificate_no}"): "staff",
    ("get", "/v1/certificates/{certificate_no}/badge.pdf"): "staff",
    ("get", "/v1/collection-list"): "staff",
    ("post", "/v1/certificates/{certificate_no}/hand-out"): "staff",
    ("post", "/v1/certificates/{certificate_no}/reissue"): "staff",
}
BODIES = {"/v1/certificates/{certificate_no}/reissue": {"reason": "lost on the metro"}}

OFFICE = staff("certificate_office")
ADMIN = staff("administrator")
OBSERVER = staff("observer")
SHANGHAI = staff("mission_staff", "shanghai")
BEIJING = staff("mission_staff", "beijing")


# ------------------------------------------------------------------------------------------ doubles


@workflow.defn(name="DeliveryRecorder")
class DeliveryRecorder:
    """Stands in for a registration's workflow, under its id: keeps the deliveries it is told of."""

    def __init__(self) -> None:
        self.deliveries: list[c.CertificateDelivered] = []

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)  # until cancelled, or its server stops

    @workflow.signal(name=c.SIGNAL_CERTIFICATE_DELIVERED)
    def certificate_delivered(self, delivered: c.CertificateDelivered) -> None:
        self.deliveries.append(delivered)

    @workflow.query
    def delivered(self) -> list[c.CertificateDelivered]:
        return list(self.deliveries)


@dataclass
class Recorders:
    """A recorder under the workflow id of each registration in PEOPLE."""

    handles: dict[str, WorkflowHandle[DeliveryRecorder, None]]

    async def told(self) -> dict[str, list[c.CertificateDelivered]]:
        """What the registrations have been told, by registration id (those told anything)."""
        told = {rid: await handle.query(DeliveryRecorder.delivered) for rid, handle in self.handles.items()}
        return {rid: deliveries for rid, deliveries in told.items() if deliveries}


async def unreachable_temporal() -> Client:
    """A client whose server has stopped (Temporal down after the service connected), without the
    client's retries: its calls fail at once with RPCError UNAVAILABLE."""
    async with time_skipping_environment() as gone:
        client = await Client.connect(
            gone.client.service_client.config.target_host,
            namespace=gone.client.namespace,
            data_converter=pydantic_data_converter,
            retry_config=RetryConfig(
                initial_interval_millis=10, max_interval_millis=10, max_elapsed_time_millis=50, max_retries=1
            ),
            runtime=quiet_runtime(),
        )
    return client


# ------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def module_buckets(seaweedfs: SeaweedFS) -> Iterator[dict[str, str]]:
    with seaweedfs.own_buckets() as buckets:
        yield buckets


@pytest.fixture
def buckets(seaweedfs: SeaweedFS, module_buckets: dict[str, str]) -> dict[str, str]:
    """Buckets no other test writes to, empty: a badge's key is its card's number, which every test's
    database starts at 1, and the photos' keys are the registration ids of PEOPLE. The module's own,
    emptied for each test (new buckets for each would cost a fifth of a second apiece)."""
    for bucket in module_buckets.values():
        seaweedfs.empty(bucket)
    return module_buckets


@pytest.fixture
def settings(tmp_path: Path, seaweedfs: SeaweedFS, buckets: dict[str, str]) -> Settings:
    return Settings(
        **{**seaweedfs.settings, **buckets},
        data_dir=tmp_path,
        edition=EDITION,
        edition_year_shift=0,
        **URLS,
    )


@pytest.fixture
def stand_ins(settings: Settings) -> StandIns:
    return StandIns.fresh(settings)


@pytest.fixture
async def ctx(
    settings: Settings, stand_ins: StandIns, env: WorkflowEnvironment, seaweedfs: SeaweedFS
) -> AsyncIterator[ServiceContext]:
    http = httpx.AsyncClient(mounts=stand_ins.mounts())
    async with service_context(
        "certificate", settings, temporal=env.client, http=http, store=seaweedfs.store
    ) as context:
        yield context
    shared_auth.clear_cache()


@pytest.fixture
async def api(ctx: ServiceContext) -> AsyncIterator[httpx.AsyncClient]:
    app.state.ctx = ctx
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=CERTIFICATE) as client:
        yield client


def _photo() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (300, 420), (190, 205, 230)).save(out, format="PNG")
    return out.getvalue()


@dataclass
class Cards:
    """This edition's cards, made by the ``make`` activity and dispatched, by registration id."""

    numbers: dict[str, str]

    def __getitem__(self, registration_id: str) -> str:
        return self.numbers[registration_id]


PEOPLE = [
    ("RSH1", "USH", "shanghai", "shanghai-huangpu", DeliveryMethod.MISSION_COLLECTION),
    ("RSH2", "USH", "shanghai", "shanghai-xuhui", DeliveryMethod.MISSION_COLLECTION),
    ("RSH3", "USH", "shanghai", None, DeliveryMethod.ONSITE_PICKUP),
    ("RSH4", "USH2", "shanghai", None, DeliveryMethod.EXPRESS),
    ("RBJ1", "UBJ", "beijing", "beijing-dongcheng", DeliveryMethod.MISSION_COLLECTION),
]


@pytest.fixture
async def cards(ctx: ServiceContext, stand_ins: StandIns) -> Cards:
    activities = CertificateActivities(ctx, cast(Courier, None))  # dispatch (the courier) is not used here
    numbers = {}
    for registration_id, unit_id, mission, sub_mission, method in PEOPLE:
        record = person(registration_id, unit_id, mission, sub_mission, method)
        stand_ins.people[registration_id] = record
        assert record.photo_key
        await ctx.store.put(ctx.settings.bucket_photos, record.photo_key, _photo(), "image/png")
        made = await activities.make(
            c.MakeCertificate(registration_id=registration_id, edition=EDITION, fee_kind=FeeKind.STANDARD)
        )
        numbers[registration_id] = made.certificate_no
        async with ctx.db.transaction() as session:  # as the dispatch activity leaves it
            await session.execute(
                update(Certificate)
                .where(Certificate.certificate_no == made.certificate_no)
                .values(
                    delivery_method=method,
                    carrier="SANDBOX-EXPRESS" if method is DeliveryMethod.EXPRESS else None,
                    tracking_no="SX000000000042" if method is DeliveryMethod.EXPRESS else None,
                    dispatched_at=utcnow(),
                )
            )
    return Cards(numbers)


@pytest.fixture
async def recorders(env: WorkflowEnvironment) -> AsyncIterator[Recorders]:
    """A recorder running under each registration's workflow id, on a worker of the test's server."""
    queue = "delivery-recorders"
    async with Worker(
        env.client,
        task_queue=queue,
        workflows=[DeliveryRecorder],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        handles = {
            rid: await env.client.start_workflow(
                DeliveryRecorder.run, id=registration_workflow_id(EDITION, rid), task_queue=queue
            )
            for rid, *_ in PEOPLE
        }
        yield Recorders(handles)
        for handle in handles.values():
            await handle.cancel()


async def card(ctx: ServiceContext, number: str) -> Certificate:
    async with ctx.db.sessions() as session:
        found = await session.get(Certificate, number)
    assert found is not None
    return found


def operations() -> list[tuple[str, str]]:
    """Every operation in the API's OpenAPI schema but the open ones (and the probes)."""
    paths: dict[str, dict[str, Any]] = app.openapi()["paths"]
    found = [
        (method, path)
        for path, ops in paths.items()
        if path not in ("/healthz", "/readyz")
        for method in ops
        if (method, path) not in OPEN
    ]
    assert found, "the schema lists no operations"
    return found


async def call(
    api: httpx.AsyncClient,
    method: str,
    path: str,
    *,
    registration_id: str = "RSH1",
    number: str = "B06-0000001",
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    assert (method, path) in OPERATIONS, f"{method.upper()} {path} is new: say who may call it in OPERATIONS"
    url = path.replace("{registration_id}", registration_id).replace("{certificate_no}", number)
    return await api.request(method.upper(), url, json=BODIES.get(path), headers=headers or {})


def assert_refused(response: httpx.Response, status: int, code: str, what: str = "") -> dict[str, Any]:
    assert response.status_code == status, f"{what}: {response.status_code} {response.text}"
    body: dict[str, Any] = response.json()
    assert body["code"] == code and body["message"] and body["message_zh"], (what, body)
    assert body["message"] != body["message_zh"], (what, "a Chinese message, not the English one again")
    return body


# ------------------------------------------------------------------------------------------ logins


def test_every_operation_is_classified() -> None:
    assert sorted(operations()) == sorted(OPERATIONS), "OPERATIONS and the API's schema differ"
    paths = app.openapi()["paths"]
    assert all(paths.get(path, {}).get(method) for method, path in OPEN), "the open routes are there"


async def test_every_operation_refuses_a_caller_without_a_valid_login(
    api: httpx.AsyncClient, cards: Cards
) -> None:
    for method, path in operations():
        what = f"{method.upper()} {path}"
        for wrong in (None, bearer("not-a-token"), {"Authorization": "Basic dXNlcjpwYXNz"}):
            assert_refused(
                await call(api, method, path, number=cards["RSH1"], headers=wrong),
                401,
                "unauthenticated",
                what,
            )
    # Finance staff have no business here.
    for method, path in operations():
        response = await call(api, method, path, number=cards["RSH1"], headers=staff("finance"))
        assert_refused(response, 403, "certificate_staff_only", f"{method.upper()} {path}")
    # The gates need no login: a code proves itself.
    assert (await api.post("/v1/verify", json={"code": "CIIE1.x.y"})).json()["verdict"] == "forged"


async def test_a_buyer_sees_their_own_units_cards_only(
    api: httpx.AsyncClient, ctx: ServiceContext, cards: Cards, stand_ins: StandIns
) -> None:
    own = await api.get("/v1/registrations/RSH1/certificate", headers=unit("USH"))
    assert own.status_code == 200, own.text
    view = own.json()
    assert view["certificate_no"] == cards["RSH1"] and view["delivery_method"] == "mission_collection"
    assert view["holder_name"] == "持证人RSH1" and view["unit_id"] == "USH" and view["mission"] == "shanghai"
    assert view["dispatched_at"] and view["delivered_at"] is None and view["handed_out_at"] is None
    express = (await api.get("/v1/registrations/RSH4/certificate", headers=unit("USH2"))).json()
    assert (express["carrier"], express["tracking_no"]) == ("SANDBOX-EXPRESS", "SX000000000042")
    tracking = await api.get("/v1/registrations/RSH1/certificate/tracking", headers=unit("USH"))
    assert tracking.status_code == 200 and tracking.json()["certificate_no"] == cards["RSH1"], tracking.text

    # Another unit's registration, an unknown one, or any for an account without a unit: as if absent.
    for registration_id, buyer in (
        ("RBJ1", "USH"),
        ("RSH4", "USH"),
        ("RSH1", "UBJ"),
        ("RNONE", "USH"),
        ("RSH1", ""),
    ):
        for suffix in ("", "/tracking"):
            response = await api.get(
                f"/v1/registrations/{registration_id}/certificate{suffix}", headers=unit(buyer)
            )
            assert_refused(response, 404, "not_found", f"{buyer} on {registration_id}{suffix}")
    # A buyer's login is no staff login: no badge (its QR admits), no list, no hand-out, no reissue.
    for method, path in operations():
        if OPERATIONS[(method, path)] == "staff":
            response = await call(api, method, path, number=cards["RSH1"], headers=unit("USH"))
            assert_refused(response, 401, "unauthenticated", f"{method.upper()} {path}")

    # A re-activated old card is its new registration's unit's to see.
    stand_ins.people["RNEW"] = person("RNEW", "UNEW", "shanghai", None, DeliveryMethod.MISSION_COLLECTION)
    activities = CertificateActivities(ctx, cast(Courier, None))
    await activities.reactivate(
        c.ReactivateCertificate(
            registration_id="RNEW", edition=EDITION, previous_certificate_no="B05-0000042"
        )
    )
    async with ctx.db.sessions() as session:
        activation = await session.get(CertificateActivation, "RNEW")
    assert activation is not None and activation.unit_id == "UNEW"
    old = await api.get("/v1/registrations/RNEW/certificate", headers=unit("UNEW"))
    assert old.status_code == 200 and old.json()["valid_for"] == ["ciie5", EDITION], old.text
    assert (await api.get("/v1/registrations/RNEW/certificate/tracking", headers=unit("UNEW"))).json()[
        "events"
    ] == []
    assert_refused(await api.get("/v1/registrations/RNEW/certificate", headers=unit("USH")), 404, "not_found")


async def test_mission_staff_see_their_mission_only(api: httpx.AsyncClient, cards: Cards) -> None:
    own = await api.get(f"/v1/certificates/{cards['RSH1']}", headers=SHANGHAI)
    assert own.status_code == 200 and own.json()["registration_id"] == "RSH1", own.text
    assert (await api.get("/v1/registrations/RSH1/certificate", headers=SHANGHAI)).status_code == 200
    pdf = await api.get(f"/v1/certificates/{cards['RSH1']}/badge.pdf", headers=SHANGHAI)
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    for path in (
        f"/v1/certificates/{cards['RBJ1']}",
        f"/v1/certificates/{cards['RBJ1']}/badge.pdf",
        "/v1/registrations/RBJ1/certificate",
        "/v1/registrations/RBJ1/certificate/tracking",
    ):
        assert_refused(await api.get(path, headers=SHANGHAI), 404, "not_found", path)

    # The list: the mission's own by default; another mission's is refused, not emptied.
    listed = await api.get("/v1/collection-list", headers=SHANGHAI)
    assert listed.status_code == 200, listed.text
    assert {row["registration_id"] for row in listed.json()} == {"RSH1", "RSH2", "RSH3"}  # not RSH4 (express)
    assert listed.headers["X-Total-Count"] == "3"
    assert_refused(
        await api.get("/v1/collection-list", params={"mission": "beijing"}, headers=SHANGHAI),
        403,
        "outside_your_mission",
    )
    # The certificate office, administrators and observers see every mission; filters narrow it.
    everyone = await api.get("/v1/collection-list", headers=OBSERVER)
    assert {row["registration_id"] for row in everyone.json()} == {"RSH1", "RSH2", "RSH3", "RBJ1"}
    onsite = await api.get("/v1/collection-list", params={"delivery_method": "onsite_pickup"}, headers=OFFICE)
    assert [row["registration_id"] for row in onsite.json()] == ["RSH3"]
    sub = await api.get("/v1/collection-list", params={"sub_mission": "shanghai-xuhui"}, headers=ADMIN)
    assert [row["registration_id"] for row in sub.json()] == ["RSH2"]
    page = await api.get("/v1/collection-list", params={"limit": 2, "offset": 2}, headers=OFFICE)
    assert len(page.json()) == 2 and page.headers["X-Total-Count"] == "4"
    bad = await api.get("/v1/collection-list", params={"delivery_method": "express"}, headers=OFFICE)
    assert_refused(bad, 422, "invalid_input")


async def test_hand_outs(
    api: httpx.AsyncClient,
    ctx: ServiceContext,
    cards: Cards,
    env: WorkflowEnvironment,
    recorders: Recorders,
) -> None:
    collected, onsite, express, beijing = cards["RSH1"], cards["RSH3"], cards["RSH4"], cards["RBJ1"]

    def hand_out(number: str, headers: dict[str, str]) -> Any:
        return api.post(
            f"/v1/certificates/{number}/hand-out", json={"note": "collected by the unit"}, headers=headers
        )

    assert_refused(await hand_out(collected, OBSERVER), 403, "read_only")
    assert_refused(await hand_out(beijing, SHANGHAI), 404, "not_found")  # another mission's card
    assert_refused(await hand_out(onsite, SHANGHAI), 403, "certificate_office_only")
    assert_refused(await hand_out(express, OFFICE), 409, "express_delivery")

    done = await hand_out(collected, SHANGHAI)
    assert done.status_code == 200, done.text
    assert done.json()["handed_out_by"] == "mission_staff.shanghai@organiser.example.com"
    stored = await card(ctx, collected)
    assert stored.handed_out_at is not None and stored.delivered_at == stored.handed_out_at
    # The registration's workflow was told (and only it: the refused hand-outs told no one).
    assert await recorders.told() == {"RSH1": [c.CertificateDelivered(at=stored.delivered_at)]}
    buyer_view = (await api.get("/v1/registrations/RSH1/certificate", headers=unit("USH"))).json()
    assert buyer_view["handed_out_at"] and buyer_view["delivered_at"] and buyer_view["handed_out_by"] is None

    twice = assert_refused(await hand_out(collected, OFFICE), 409, "already_handed_out")
    assert "mission_staff.shanghai@organiser.example.com" in twice["message"]
    assert twice["details"][0]["handed_out_by"] == "mission_staff.shanghai@organiser.example.com"
    assert (await card(ctx, collected)).handed_out_by == "mission_staff.shanghai@organiser.example.com"

    # On-site pickups are the certificate office's; the lists then say who handed out what.
    assert (await hand_out(onsite, OFFICE)).status_code == 200
    handed = await api.get("/v1/collection-list", params={"handed_out": "true"}, headers=OBSERVER)
    assert {(r["registration_id"], r["handed_out_by"]) for r in handed.json()} == {
        ("RSH1", "mission_staff.shanghai@organiser.example.com"),
        ("RSH3", "certificate_office.all@organiser.example.com"),
    }
    waiting = await api.get("/v1/collection-list", params={"handed_out": "false"}, headers=SHANGHAI)
    assert [r["registration_id"] for r in waiting.json()] == ["RSH2"]

    # Temporal down: the hand-out stands (503 says so), and sending it again tells the registration.
    ctx.temporal = await unreachable_temporal()
    assert_refused(await hand_out(cards["RSH2"], ADMIN), 503, "workflow_unavailable")
    pending = await card(ctx, cards["RSH2"])
    assert pending.handed_out_at is not None and pending.delivered_at is None
    assert "RSH2" not in await recorders.told()
    ctx.temporal = env.client  # Temporal is back
    assert_refused(await hand_out(cards["RSH2"], ADMIN), 409, "already_handed_out")
    resent = await card(ctx, cards["RSH2"])
    assert resent.delivered_at == pending.handed_out_at
    told = await recorders.told()
    assert told["RSH2"] == [c.CertificateDelivered(at=pending.handed_out_at)]
    assert set(told) == {"RSH1", "RSH2", "RSH3"}  # the on-site pickup's registration was told too

    # A revoked card is not handed out.
    async with ctx.db.transaction() as session:
        await session.execute(
            update(Certificate).where(Certificate.certificate_no == beijing).values(revoked=True)
        )
    assert_refused(await hand_out(beijing, ADMIN), 409, "certificate_revoked")


async def test_collection_list_exports_open_in_a_spreadsheet(api: httpx.AsyncClient, cards: Cards) -> None:
    await api.post(f"/v1/certificates/{cards['RSH1']}/hand-out", headers=SHANGHAI)
    as_csv = await api.get("/v1/collection-list", params={"format": "csv"}, headers=SHANGHAI)
    assert as_csv.status_code == 200 and as_csv.headers["content-type"].startswith("text/csv")
    assert "collection-ciie6-shanghai.csv" in as_csv.headers["content-disposition"]
    table = list(csv.reader(io.StringIO(as_csv.content.decode("utf-8-sig"), newline="")))
    assert table[0][:3] == ["证件号 / Certificate no.", "持证人 / Holder", "单位 / Unit"]
    by_number = {row[0]: row for row in table[1:]}
    assert set(by_number) == {cards["RSH1"], cards["RSH2"], cards["RSH3"]}
    row = by_number[cards["RSH1"]]
    assert row[1:5] == ["持证人RSH1", "USH 贸易有限公司", "shanghai", "shanghai-huangpu"]
    assert row[5] == "mission_collection" and row[7].endswith("+08:00") and row[8].startswith("mission_staff")

    as_xlsx = await api.get(
        "/v1/collection-list", params={"format": "xlsx", "mission": "beijing"}, headers=OFFICE
    )
    assert as_xlsx.status_code == 200, as_xlsx.text
    sheet = load_workbook(io.BytesIO(as_xlsx.content), read_only=True).active
    rows = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert rows[0][0] == "证件号 / Certificate no." and len(rows) == 2
    assert rows[1][:4] == [cards["RBJ1"], "持证人RBJ1", "UBJ 贸易有限公司", "beijing"]
    assert isinstance(rows[1][6], datetime)  # a date Excel can sort by


# ------------------------------------------------------------------------------------------ reissue


def _tool(name: str) -> str | None:
    return shutil.which(name)


def qr_on(pdf: bytes, tmp_path: Path) -> str | None:
    """The code in the badge's QR, read as a gate reads it (pdftoppm, zbarimg); None without the tools."""
    pdftoppm, zbarimg = _tool("pdftoppm"), _tool("zbarimg")
    if pdftoppm is None or zbarimg is None:
        return None
    source = tmp_path / "badge.pdf"
    source.write_bytes(pdf)
    subprocess.run(
        [pdftoppm, "-png", "-r", "150", "-singlefile", str(source), str(tmp_path / "badge")], check=True
    )
    out = subprocess.run(
        [zbarimg, "--raw", "-q", "-Sdisable", "-Sqrcode.enable", str(tmp_path / "badge.png")],
        capture_output=True,
        text=True,
        check=False,
    )
    codes = [line for line in out.stdout.splitlines() if line]
    assert len(codes) == 1, out.stderr
    return codes[0]


async def test_a_reissue_revokes_the_lost_cards_qr_code(
    api: httpx.AsyncClient, ctx: ServiceContext, cards: Cards, stand_ins: StandIns, tmp_path: Path
) -> None:
    number = cards["RSH1"]
    stored = await card(ctx, number)
    old_badge = (await api.get(f"/v1/certificates/{number}/badge.pdf", headers=OFFICE)).content
    signer = signer_for(ctx)
    old_code = signer.sign(
        AdmissionClaims(edition=EDITION, certificate_no=number, serial=1, issued_at=stored.issued_at)
    )
    assert qr_on(old_badge, tmp_path) in (old_code, None)  # Ed25519 signs deterministically

    async def gate(code: str) -> str:
        answer = await api.post("/v1/verify", json={"code": code})
        assert answer.status_code == 200
        verdict: str = answer.json()["verdict"]
        return verdict

    assert await gate(old_code) == "valid"

    assert_refused(
        await api.post(f"/v1/certificates/{number}/reissue", json={"reason": "lost"}, headers=SHANGHAI),
        403,
        "certificate_office_only",
    )
    assert_refused(
        await api.post(f"/v1/certificates/{number}/reissue", json={"reason": "lost"}, headers=OBSERVER),
        403,
        "read_only",
    )
    assert_refused(
        await api.post(f"/v1/certificates/{number}/reissue", json={"reason": "  "}, headers=OFFICE),
        422,
        "invalid_input",
    )

    answer = await api.post(
        f"/v1/certificates/{number}/reissue", json={"reason": "lost on the metro"}, headers=OFFICE
    )
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["serial"] == 2 and body["buyer_notified"] is True
    assert body["certificate"]["certificate_no"] == number and body["certificate"]["serial"] == 2
    new_badge = (await api.get(f"/v1/certificates/{number}/badge.pdf", headers=OFFICE)).content
    assert new_badge != old_badge
    new_code = signer.sign(
        AdmissionClaims(
            edition=EDITION,
            certificate_no=number,
            serial=2,
            issued_at=datetime.fromisoformat(body["reissued_at"]),
        )
    )
    assert qr_on(new_badge, tmp_path) in (new_code, None)

    assert await gate(old_code) == "revoked"
    assert await gate(new_code) == "valid"
    tampered = new_code[:-6] + ("AAAAAA" if not new_code.endswith("AAAAAA") else "BBBBBB")
    assert await gate(tampered) == "forged"

    async with ctx.db.sessions() as session:
        reissues = list(await session.scalars(select(CertificateReissue)))
    assert [
        (r.certificate_no, r.serial, r.reason, r.staff_login, r.previous_badge_key) for r in reissues
    ] == [(number, 2, "lost on the metro", "certificate_office.all@organiser.example.com", stored.badge_key)]
    assert stand_ins.messages == [
        {
            "channel": "email",
            "to": "rsh1@buyers.example.com",
            "template": "certificate_reissued",
            "params": {"registration_id": "RSH1", "certificate_no": number, "serial": "2"},
            "key": f"reissue:{number}:2",
        }
    ]

    # The mail server down: the reissue stands, and says the buyer was not told.
    stand_ins.mail_down = True
    again = await api.post(f"/v1/certificates/{number}/reissue", json={"reason": "lost again"}, headers=ADMIN)
    assert (
        again.status_code == 201 and again.json()["buyer_notified"] is False and again.json()["serial"] == 3
    )
    assert await gate(new_code) == "revoked"


async def test_revoked_and_foreign_cards_are_not_reissued(
    api: httpx.AsyncClient, ctx: ServiceContext, cards: Cards, stand_ins: StandIns
) -> None:
    number = cards["RBJ1"]
    async with ctx.db.transaction() as session:
        await session.execute(
            update(Certificate)
            .where(Certificate.certificate_no == number)
            .values(revoked=True, revoked_at=utcnow())
        )
    assert_refused(
        await api.post(f"/v1/certificates/{number}/reissue", json={"reason": "lost"}, headers=OFFICE),
        409,
        "certificate_revoked",
    )
    # An earlier edition's card issued elsewhere, known here only by its re-activation.
    stand_ins.people["RNEW"] = person("RNEW", "UNEW", "shanghai", None, DeliveryMethod.MISSION_COLLECTION)
    await CertificateActivities(ctx, cast(Courier, None)).reactivate(
        c.ReactivateCertificate(
            registration_id="RNEW", edition=EDITION, previous_certificate_no="B05-0000042"
        )
    )
    assert_refused(
        await api.post("/v1/certificates/B05-0000042/reissue", json={"reason": "lost"}, headers=OFFICE),
        409,
        "not_issued_here",
    )
    assert_refused(
        await api.post("/v1/certificates/B06-9999999/reissue", json={"reason": "lost"}, headers=OFFICE),
        404,
        "not_found",
    )
    async with ctx.db.sessions() as session:
        assert list(await session.scalars(select(CertificateReissue))) == []
