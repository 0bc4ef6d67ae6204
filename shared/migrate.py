"""Alembic migrations, one history per service (its own folder and its own version table).

expo-migrate                       # upgrade every service to head
expo-migrate registration          # one service
expo-migrate --revision review -m "add queue index"   # autogenerate a revision
"""

from __future__ import annotations

import argparse
from importlib import resources

from alembic import command
from alembic.config import Config
from sqlalchemy import MetaData, engine_from_config, pool

from shared.db import install_sqlite_pragmas, sync_url
from shared.settings import SERVICES, ServiceName, Settings, get_settings


def alembic_config(service: ServiceName, settings: Settings) -> Config:
    config = Config()
    location = resources.files(f"services.{service}").joinpath("migrations")
    config.set_main_option("script_location", str(location))
    # '%' is Alembic's interpolation character; URLs may contain it (encoded passwords).
    config.set_main_option(
        "sqlalchemy.url",
        sync_url(settings.service_database_url(service))
        .render_as_string(hide_password=False)
        .replace("%", "%%"),
    )
    config.attributes["service"] = service
    return config


def version_table(service: ServiceName) -> str:
    return f"alembic_version_{service}"


def run_env(target_metadata: MetaData) -> None:
    """The body of every service's migrations/env.py (online mode only: we always have a database)."""
    from alembic import context

    config = context.config
    service: ServiceName = config.attributes["service"]
    engine = engine_from_config(
        config.get_section(config.config_ini_section) or {}, prefix="sqlalchemy.", poolclass=pool.NullPool
    )
    install_sqlite_pragmas(engine)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            version_table=version_table(service),
            render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()


def upgrade(services: tuple[ServiceName, ...] = SERVICES, settings: Settings | None = None) -> None:
    settings = settings or get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    for service in services:
        command.upgrade(alembic_config(service, settings), "head")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "services", nargs="*", metavar="SERVICE", help=f"default: all of {', '.join(SERVICES)}"
    )
    parser.add_argument("--revision", metavar="SERVICE", choices=SERVICES, help="autogenerate a revision")
    parser.add_argument("-m", "--message", default="change")
    args = parser.parse_args()
    settings = get_settings()
    if args.revision:
        command.revision(alembic_config(args.revision, settings), message=args.message, autogenerate=True)
        return
    unknown = set(args.services) - set(SERVICES)
    if unknown:
        parser.error(f"unknown service(s): {', '.join(sorted(unknown))}")
    upgrade(tuple(args.services) or SERVICES, settings)


if __name__ == "__main__":
    main()
