"""The parts every service's HTTP app and activity worker are built from."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI, Request
from temporalio.client import Client
from temporalio.worker import Worker

from shared.catalogue import Edition, current_edition, load_missions
from shared.db import Database
from shared.health import Readiness, add_readiness
from shared.http import add_health, install_error_handlers
from shared.logs import configure_logging
from shared.metrics import measure_api
from shared.process import GRACEFUL_SHUTDOWN, run_until_stopped
from shared.settings import ServiceName, Settings, get_settings
from shared.storage import ObjectStore
from shared.temporal import connect
from shared.tracing import configure_tracing, trace_api


@dataclass
class ServiceContext:
    """What a service's handlers and activities use: its own database, Temporal, HTTP to the others."""

    service: ServiceName
    settings: Settings
    db: Database
    temporal: Client
    http: httpx.AsyncClient
    store: ObjectStore

    @property
    def edition(self) -> Edition:
        return current_edition(self.settings)

    def readiness(self) -> Readiness:
        return Readiness.for_service(self.service, self.settings, self.db, self.temporal)

    async def close(self) -> None:
        await self.http.aclose()
        await self.db.dispose()


async def open_context(
    service: ServiceName, settings: Settings | None = None, *, lazy: bool = False, worker: bool = False
) -> ServiceContext:
    settings = settings or get_settings()
    temporal = await connect(settings, lazy=lazy, worker=worker)
    return ServiceContext(
        service=service,
        settings=settings,
        db=Database(settings.service_database_url(service)),
        temporal=temporal,
        http=httpx.AsyncClient(timeout=httpx.Timeout(10.0)),
        store=ObjectStore(settings),
    )


def create_service_app(service: ServiceName, *, title: str, description: str, version: str = "1") -> FastAPI:
    """A FastAPI app whose lifespan opens the service context (``request.app.state.ctx``)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(f"{service}-api")  # after uvicorn's own set-up: its lines become JSON too
        configure_tracing(f"{service}-api", get_settings())
        # Lazy Temporal connection: the API starts (and answers health checks) while Temporal starts.
        app.state.ctx = await open_context(service, lazy=True)
        # The edition and the mission catalogue are validated now: a broken data file stops the start.
        load_missions()
        _ = app.state.ctx.edition
        try:
            yield
        finally:
            await app.state.ctx.close()

    app = FastAPI(title=title, description=description, version=version, lifespan=lifespan)
    install_error_handlers(app)
    add_health(app, service)
    measure_api(app, service)
    trace_api(app)
    add_readiness(app, lambda: app.state.ctx.readiness() if hasattr(app.state, "ctx") else None)
    return app


def context(request: Request) -> ServiceContext:
    ctx: ServiceContext = request.app.state.ctx
    return ctx


async def serve_activities(
    service: ServiceName, task_queue: str, build: Callable[[ServiceContext], Sequence[Callable[..., Any]]]
) -> None:
    """Run a service's activity worker until stopped."""
    ctx = await open_context(service, worker=True)
    try:
        worker = Worker(
            ctx.temporal,
            task_queue=task_queue,
            activities=build(ctx),
            graceful_shutdown_timeout=GRACEFUL_SHUTDOWN,
        )
        await run_until_stopped(worker, ctx.readiness(), ctx.settings.worker_http_port)
    finally:
        await ctx.close()
