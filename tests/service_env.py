"""A service's own context for tests of its activities and routes: its migrated database (SQLite under
``settings.data_dir``), and the Temporal client, HTTP client and object store the test chooses.

Not a test module."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from temporalio.client import Client

from services.registration.auth import hash_password, issue_token
from services.registration.models import Account, AccountKind
from services.review.models import StaffAccount, StaffRole
from services.review.staff import issue_staff_token
from shared.db import Database
from shared.ids import new_id
from shared.migrate import upgrade
from shared.service import ServiceContext
from shared.settings import ServiceName, Settings
from shared.storage import ObjectStore
from shared.temporal import connect


@asynccontextmanager
async def service_context(
    service: ServiceName,
    settings: Settings,
    *,
    temporal: Client | None = None,
    http: httpx.AsyncClient | None = None,
    store: ObjectStore | None = None,
) -> AsyncIterator[ServiceContext]:
    """The tables exactly as the migrations build them; Temporal lazily connected unless given (tests
    whose activities never call it)."""
    upgrade((service,), settings)
    context = ServiceContext(
        service=service,
        settings=settings,
        db=Database(settings.service_database_url(service)),
        temporal=temporal or await connect(settings, lazy=True),
        http=http or httpx.AsyncClient(),
        store=store or ObjectStore(settings),
    )
    try:
        yield context
    finally:
        await context.close()


async def buyer_headers(
    ctx: ServiceContext, kind: AccountKind = AccountKind.UNIT, unit_id: str | None = None
) -> dict[str, str]:
    """A registration-service account (owning ``unit_id``, if given), logged in: its Authorization header."""
    async with ctx.db.transaction() as session:
        account = Account(
            id=new_id("A"),
            kind=kind,
            login=f"{new_id('L').lower()}@buyers.example.com",
            email="buyer@buyers.example.com",
            mobile="+8613900000000",
            password_hash=hash_password("correct horse 42"),
            unit_id=unit_id,
        )
        session.add(account)
        token, _ = await issue_token(session, account)
    return {"Authorization": f"Bearer {token}"}


async def staff_headers(ctx: ServiceContext, role: StaffRole, mission: str | None = None) -> dict[str, str]:
    """A review-service staff account in ``role`` (of ``mission``), logged in: its Authorization header."""
    async with ctx.db.transaction() as session:
        staff = StaffAccount(
            id=new_id("S"),
            login=f"{new_id('L').lower()}@organiser.example.com",
            name=f"{role.value} {mission or ''}".strip(),
            role=role,
            mission=mission,
            password_hash=hash_password("correct horse 42"),
        )
        session.add(staff)
        token, _ = await issue_staff_token(session, staff)
    return {"Authorization": f"Bearer {token}"}
