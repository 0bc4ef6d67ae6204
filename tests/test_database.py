"""Each service's migrations build its tables on SQLite and on PostgreSQL, and the column types keep
what the services store: aware UTC times and enum values."""

from __future__ import annotations

import importlib
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from alembic import command
from sqlalchemy import create_engine, inspect, select

from services.registration.models import Unit
from shared.db import Database, sync_url
from shared.migrate import alembic_config, upgrade, version_table
from shared.settings import SERVICES, Settings
from shared.types import Affiliation, UnitKind, UnitStatus


def database_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    if request.param == "postgresql":
        url: str = request.getfixturevalue("postgres_database")
        return Settings(data_dir=tmp_path, database_url=url)
    return Settings(data_dir=tmp_path)


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    return database_settings(request, tmp_path)


def tables(settings: Settings, service: str) -> set[str]:
    engine = create_engine(sync_url(settings.service_database_url(service)))  # type: ignore[arg-type]
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def service_tables(service: str) -> list[str]:
    return list(importlib.import_module(f"services.{service}.models").Base.metadata.tables)


def test_migrations_create_every_services_tables_and_can_be_undone(settings: Settings) -> None:
    upgrade(settings=settings)
    for service in SERVICES:
        created = tables(settings, service)
        assert version_table(service) in created
        assert set(service_tables(service)) <= created
    upgrade(settings=settings)  # a second run changes nothing and does not fail
    for service in SERVICES:
        command.downgrade(alembic_config(service, settings), "base")
        assert not set(service_tables(service)) & tables(settings, service)


async def test_times_come_back_aware_in_utc_and_enums_as_members(settings: Settings) -> None:
    upgrade(("registration",), settings)
    db = Database(settings.service_database_url("registration"))
    beijing_evening = datetime(2023, 9, 30, 23, 59, tzinfo=ZoneInfo("Asia/Shanghai"))
    try:
        async with db.transaction() as session:
            session.add(
                Unit(
                    id="UTEST", edition="ciie6", kind=UnitKind.ENTERPRISE, affiliation=Affiliation.RESIDENCE,
                    name="测试单位", credit_code=None, country="CN", foreign_registration_no=None, address="上海",
                    industry="Trade", contact_name="王", contact_mobile="+8613800000000", contact_email="a@b.example",
                    mission="shanghai", sub_mission=None, statistics_mission="shanghai", statistics_sub_mission=None,
                    referral_code=None, workflow_id="unit-ciie6-UTEST", created_at=beijing_evening,
                )
            )  # fmt: skip
        async with db.sessions() as session:
            unit = (await session.scalars(select(Unit))).one()
        assert unit.created_at == beijing_evening and unit.created_at.utcoffset() is not None
        assert unit.created_at.tzinfo is not None and unit.created_at.hour == 15  # 23:59 Beijing = 15:59 UTC
        assert unit.status is UnitStatus.UNDER_REVIEW and unit.kind is UnitKind.ENTERPRISE
    finally:
        await db.dispose()
