"""Fixtures shared by the test modules: fresh PostgreSQL databases and the running embedded stack."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url
from temporalio.testing import WorkflowEnvironment

from deploy.local.stack import DEFAULT_PORTS, Stack, free_ports
from services.payment import sandbox_gateway
from shared.settings import Settings, get_settings
from tests.browser import Browser, chromium
from tests.object_store import SeaweedFS, running_seaweedfs
from tests.workflow_env import FakeServices, running_workers, time_skipping_environment
from tests.workflow_world import World

POSTGRES_URL = os.environ.get("EXPO_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def _admin_connection() -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=5)


@pytest.fixture(scope="session")
def postgres_available() -> None:
    try:
        _admin_connection().close()
    except psycopg.OperationalError as exc:
        if os.environ.get("CI"):
            raise  # CI has PostgreSQL: its absence is a failure, not a skip
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_URL}: {exc}")


# The suite's second pass (``./expo test`` runs it): every test that keeps data in a service's database
# runs again with its services on PostgreSQL (a fresh database per test) instead of SQLite files.
ON_POSTGRES = os.environ.get("EXPO_TEST_DATABASE") == "postgresql"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On the PostgreSQL pass, keep the tests of modules that build a service's database
    (``service_context`` or ``upgrade``); the full-stack tests have PostgreSQL variants of their own."""
    if not ON_POSTGRES:
        return
    keep: list[pytest.Item] = []
    leave: list[pytest.Item] = []
    for item in items:
        module = item.getparent(pytest.Module)
        names = vars(module.obj) if module is not None else {}
        builds_a_database = "service_context" in names or "upgrade" in names
        runs_the_stack = {"stack", "postgres_stack"} & set(getattr(item, "fixturenames", ()))
        both_already = module is not None and module.name == "test_database.py"
        (keep if builds_a_database and not runs_the_stack and not both_already else leave).append(item)
    config.hook.pytest_deselected(items=leave)
    items[:] = keep


@pytest.fixture(autouse=True)
def service_databases_on_postgres(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """Every ``Settings`` a test builds (autouse fixtures come first) keeps its services' databases as
    SQLite files under its ``data_dir``, whatever the shell says; on the PostgreSQL pass they name a
    fresh PostgreSQL database through ``EXPO_DATABASE_URL``."""
    if not ON_POSTGRES:
        monkeypatch.delenv("EXPO_DATABASE_URL", raising=False)
        yield
        return
    request.getfixturevalue("postgres_available")
    for url in _fresh_database():
        monkeypatch.setenv("EXPO_DATABASE_URL", url)
        yield


@pytest.fixture
def postgres_database(postgres_available: None) -> Iterator[str]:
    """A new, empty database for one test; dropped afterwards."""
    yield from _fresh_database()


def _fresh_database() -> Iterator[str]:
    name = f"expo_test_{secrets.token_hex(4)}"
    with _admin_connection() as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with _admin_connection() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _run_stack(data_dir: Path, database_url: str | None = None, attempts: int = 3) -> Iterator[Stack]:
    # free_ports lets go of the ports it found before the stack's processes bind them, and another server
    # of the test run may take one meanwhile: such a start is tried again, on other ports.
    for attempt in range(1, attempts + 1):
        stack = Stack(
            data_dir / f"start-{attempt}", free_ports(list(DEFAULT_PORTS)), database_url=database_url
        )
        try:
            stack.start()
            break
        except RuntimeError:
            stack.stop()
            if attempt == attempts or not _lost_a_port(stack):
                raise
    try:
        yield stack
    finally:
        stack.stop()


def _lost_a_port(stack: Stack) -> bool:
    return any(
        "address already in use" in log.read_text(errors="replace") for log in stack.logs.glob("*.log")
    )


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The whole system on free ports with SQLite, shared by the full-stack tests."""
    yield from _run_stack(tmp_path_factory.mktemp("stack"))


@pytest.fixture(scope="module")
def own_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A whole system of the test module's own (SQLite, free ports), for tests that add processes to
    it or kill some: the shared ``stack`` is left as the other tests expect it."""
    yield from _run_stack(tmp_path_factory.mktemp("own-stack"))


@pytest.fixture(scope="module")
def postgres_stack(tmp_path_factory: pytest.TempPathFactory, postgres_available: None) -> Iterator[Stack]:
    """The whole system on free ports with every service on one fresh PostgreSQL database."""
    for database_url in _fresh_database():
        yield from _run_stack(tmp_path_factory.mktemp("pg-stack"), database_url)


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    """One SeaweedFS (the S3 store) for the session, started as the stack starts it, buckets created:
    ``Settings(**seaweedfs.settings, ...)`` points at it, ``seaweedfs.store`` is a store on it. Write
    keys of the test's own (see tests/object_store.py)."""
    with running_seaweedfs(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server


@pytest.fixture
async def env() -> AsyncIterator[WorkflowEnvironment]:
    """A time-skipping Temporal server of the test's own (it starts in a fraction of a second).

    Not shared on purpose: time skips for every workflow on a server, and a workflow terminated
    while one of its activities is in flight (a test that failed halfway) keeps the test server from
    skipping time until that activity's timeout passes in real time, which would stall later tests.
    """
    async with time_skipping_environment() as environment:
        yield environment


@pytest.fixture
async def world(env: WorkflowEnvironment) -> AsyncIterator[World]:
    """The workflows on their worker, with fake services, on the test's own server."""
    services = FakeServices()
    world = World(env, services)
    async with running_workers(env.client, services):
        yield world


@pytest.fixture
def browser(request: pytest.FixtureRequest) -> Iterator[Browser]:
    """Debian's Chromium through Playwright; screenshots under var/test-artifacts/screenshots/<test>/."""
    with chromium(request.node.name) as browser:
        yield browser


@pytest.fixture
def sandbox(settings: Settings) -> Iterator[sandbox_gateway.SandboxState]:
    """The sandbox gateway with our merchant's key, from the test module's ``settings``; its callbacks
    still to be delivered at the end are cancelled."""
    sandbox_gateway.app.dependency_overrides[get_settings] = lambda: settings
    try:
        yield sandbox_gateway.STATE
    finally:
        sandbox_gateway.app.dependency_overrides.clear()
        for delivery in list(sandbox_gateway.STATE.deliveries):
            delivery.cancel()
