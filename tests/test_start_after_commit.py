"""A registration's row is committed before its workflow is started, and removed again if the start fails.

The registration API in process on a migrated SQLite file, Temporal's time-skipping test server (no
worker: a start only has to be accepted), and for "Temporal down" a client of a stopped server or an
address where nothing listens. What a start sees of the database is observed by a client interceptor
on the API's own client, at the moment the start is sent.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import select
from temporalio.client import (
    Client,
    Interceptor,
    OutboundInterceptor,
    StartWorkflowInput,
    WorkflowHandle,
)
from temporalio.testing import WorkflowEnvironment

from services.registration.api import app
from services.registration.models import Account, PersonRegistration, Unit
from shared import temporal
from shared.service import ServiceContext
from shared.settings import Settings
from tests.service_env import buyer_headers
from tests.test_certificate_service import unreachable_temporal
from tests.test_registration_service import (
    ON_TEST_SERVER,
    add_unit,
    api,
    assert_refused,
    ctx,
    person_in,
    server_address,
    settings,
    unit_in,
)

__all__ = ["ctx", "settings"]  # the registration service tests' fixtures, used here too

UNIT = unit_in("310104").model_dump(mode="json", exclude_none=True)  # another unit than add_unit's


def closed_address() -> str:
    """An address where nothing listens: the API's lazy client never gets to connect."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"


@contextmanager
def temporal_of_the_api(client: Client) -> Iterator[None]:
    """The running API uses ``client`` for Temporal meanwhile."""
    ctx: ServiceContext = app.state.ctx
    own, ctx.temporal = ctx.temporal, client
    try:
        yield
    finally:
        ctx.temporal = own


@asynccontextmanager
async def intercepted(env: WorkflowEnvironment, interceptor: Interceptor) -> AsyncIterator[None]:
    with temporal_of_the_api(Client(**(env.client.config() | {"interceptors": [interceptor]}))):
        yield


async def workflow_exists(env: WorkflowEnvironment, workflow_id: str) -> bool:
    return (await env.client.get_workflow_handle(workflow_id).describe()).id == workflow_id


# ---------------------------------------------------------------------------------------- Temporal down


@ON_TEST_SERVER
async def test_a_person_refused_while_temporal_is_down_is_not_kept_and_the_retry_registers(
    ctx: ServiceContext, settings: Settings, env: WorkflowEnvironment, monkeypatch: pytest.MonkeyPatch
) -> None:
    unit = await add_unit(ctx)
    people = f"/v1/units/{unit.id}/people"
    async with api(monkeypatch, settings, closed_address(), as_unit=unit) as client:  # never reached
        assert_refused(await client.post(people, json=person_in()), 503, "workflow_unavailable")
        assert (await client.get(people)).json() == []
    async with api(monkeypatch, settings, server_address(env), as_unit=unit) as client:
        answer = await client.post(people, json=person_in())  # the same person: not "already registered"
        assert answer.status_code == 201, answer.text
        listed = (await client.get(people)).json()
    registration_id = answer.json()["registration_id"]
    assert [person["registration_id"] for person in listed] == [registration_id]
    assert await workflow_exists(env, temporal.registration_workflow_id(unit.edition, registration_id))


@ON_TEST_SERVER
async def test_a_unit_refused_while_temporal_is_down_is_not_kept_and_the_retry_registers(
    ctx: ServiceContext, settings: Settings, env: WorkflowEnvironment, monkeypatch: pytest.MonkeyPatch
) -> None:
    buyer = await buyer_headers(ctx)
    async with api(monkeypatch, settings, server_address(env)) as client:
        with temporal_of_the_api(await unreachable_temporal()):  # down after the API connected
            assert_refused(
                await client.post("/v1/units", json=UNIT, headers=buyer), 503, "workflow_unavailable"
            )
            assert (await client.get("/v1/accounts/me", headers=buyer)).json()["unit_id"] is None
        # Neither "unit_exists" (the account) nor "unit_already_registered" (the credit code).
        answer = await client.post("/v1/units", json=UNIT, headers=buyer)
        assert answer.status_code == 201, answer.text
        unit_id = answer.json()["id"]
        assert (await client.get("/v1/accounts/me", headers=buyer)).json()["unit_id"] == unit_id
    async with ctx.db.sessions() as session:
        assert (await session.scalars(select(Unit.id))).all() == [unit_id]
    assert await workflow_exists(env, temporal.unit_workflow_id(ctx.edition.code, unit_id))


# ---------------------------------------------------------------------------------------- committed first


@dataclass
class AtStart:
    """What the database looked like, from another connection, as a start was sent."""

    workflow: str
    row_found: bool
    other_write: str  # "ok", or why another session could not write


@dataclass
class DatabaseAtStart(Interceptor):
    """At each start the API sends: is its row visible to another session, and can another buyer
    open an account meanwhile (a write: on SQLite it needs the write lock)?"""

    ctx: ServiceContext
    seen: list[AtStart] = field(default_factory=list)

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        return _LookFirst(next, self)


class _LookFirst(OutboundInterceptor):
    def __init__(self, next: OutboundInterceptor, probe: DatabaseAtStart) -> None:
        super().__init__(next)
        self.probe = probe

    async def start_workflow(self, input: StartWorkflowInput) -> WorkflowHandle[Any, Any]:
        ctx = self.probe.ctx  # the test's own engine on the service's database file
        async with ctx.db.sessions() as session:
            found = await session.scalar(select(Unit.id).where(Unit.workflow_id == input.id)) or (
                await session.scalar(
                    select(PersonRegistration.id).where(PersonRegistration.workflow_id == input.id)
                )
            )
        try:
            await buyer_headers(ctx)
            wrote = "ok"
        except Exception as exc:  # "database is locked", after the 10 s busy timeout
            wrote = repr(exc)
        self.probe.seen.append(AtStart(input.workflow, found is not None, wrote))
        return await super().start_workflow(input)


@ON_TEST_SERVER
async def test_the_row_is_committed_and_the_database_free_when_the_workflow_starts(
    ctx: ServiceContext, settings: Settings, env: WorkflowEnvironment, monkeypatch: pytest.MonkeyPatch
) -> None:
    buyer = await buyer_headers(ctx)
    probe = DatabaseAtStart(ctx)
    async with api(monkeypatch, settings, server_address(env)) as client, intercepted(env, probe):
        unit = await client.post("/v1/units", json=UNIT, headers=buyer)
        assert unit.status_code == 201, unit.text
        person = await client.post(f"/v1/units/{unit.json()['id']}/people", json=person_in(), headers=buyer)
        assert person.status_code == 201, person.text
    assert probe.seen == [AtStart("UnitReview", True, "ok"), AtStart("BuyerRegistration", True, "ok")]
    async with ctx.db.sessions() as session:  # the accounts opened meanwhile are kept
        assert len((await session.scalars(select(Account.id))).all()) == 1 + 2


class _AnswerLost(OutboundInterceptor):
    """Sends each start twice, as a start retried after its first answer was lost would."""

    async def start_workflow(self, input: StartWorkflowInput) -> WorkflowHandle[Any, Any]:
        await super().start_workflow(input)
        return await super().start_workflow(input)  # WorkflowAlreadyStartedError from the server


class AnswerLost(Interceptor):
    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        return _AnswerLost(next)


@ON_TEST_SERVER
async def test_a_workflow_that_already_started_counts_as_started(
    ctx: ServiceContext, settings: Settings, env: WorkflowEnvironment, monkeypatch: pytest.MonkeyPatch
) -> None:
    unit = await add_unit(ctx)
    people = f"/v1/units/{unit.id}/people"
    async with api(monkeypatch, settings, server_address(env), as_unit=unit) as client:
        async with intercepted(env, AnswerLost()):
            answer = await client.post(people, json=person_in())
        assert answer.status_code == 201, answer.text
        listed = (await client.get(people)).json()
    registration_id = answer.json()["registration_id"]
    assert [person["registration_id"] for person in listed] == [registration_id]
    assert await workflow_exists(env, temporal.registration_workflow_id(unit.edition, registration_id))
