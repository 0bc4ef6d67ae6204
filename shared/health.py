"""Health as Kubernetes (and compose, and an operator with curl) asks for it.

- ``/healthz``, liveness: the process answers. A failing dependency never fails it (restarting the
  pod would not bring the database back).
- ``/readyz``, readiness: what the process needs answers, each check with a short timeout: its
  database (migrated to the head of its service's history), the object store's buckets it uses, and
  Temporal (the namespace described). 200 when all pass; 503 naming each failing check and why.
- ``/metrics`` on a worker's own HTTP port (``EXPO_WORKER_HTTP_PORT``): Prometheus' default registry.

The APIs serve ``/readyz`` beside their routes; a worker serves all three on a small uvicorn server
running in the worker's event loop (``worker_http``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import boto3
import uvicorn
from alembic.script import ScriptDirectory
from botocore.config import Config
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import SecretStr
from sqlalchemy import text
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client

from shared.db import Database
from shared.metrics import METRICS_PATH, metrics_endpoint
from shared.settings import ServiceName, Settings

CHECK_TIMEOUT = 3.0  # seconds per check; a probe's own timeout (deploy/k8s) is longer than all together

# The buckets each service reads or writes (its API and its activities): readiness checks these.
SERVICE_BUCKETS: dict[ServiceName, tuple[str, ...]] = {
    "registration": ("bucket_photos",),
    "review": ("bucket_photos",),
    "payment": ("bucket_vouchers", "bucket_invoices"),
    "certificate": ("bucket_certificates", "bucket_photos"),
    "notification": (),
}


@dataclass
class Readiness:
    """What one process needs, and the checks that say whether it answers now."""

    name: str  # the process or service, as the answers name it
    settings: Settings
    temporal: Client
    db: Database | None = None
    service: ServiceName | None = None  # whose migration history the database must be at the head of
    buckets: tuple[str, ...] = ()
    _heads: set[str] | None = field(default=None, repr=False)
    _s3: Any = field(default=None, repr=False)

    @classmethod
    def for_service(
        cls, service: ServiceName, settings: Settings, db: Database, temporal: Client
    ) -> Readiness:
        buckets = tuple(getattr(settings, name) for name in SERVICE_BUCKETS[service])
        return cls(service, settings, temporal, db=db, service=service, buckets=buckets)

    async def check(self) -> dict[str, dict[str, Any]]:
        """Every check, run together: ``{"database": {"ok": True}, "temporal": {"ok": False, "error": ...}}``."""
        checks: dict[str, Callable[[], Awaitable[None]]] = {"temporal": self._temporal}
        if self.db is not None:
            checks["database"] = self._database
        if self.buckets:
            checks["object_store"] = self._object_store
        results = await asyncio.gather(*(self._run(check) for check in checks.values()))
        return dict(zip(checks, results, strict=True))

    async def _run(self, check: Callable[[], Awaitable[None]]) -> dict[str, Any]:
        try:
            await asyncio.wait_for(check(), CHECK_TIMEOUT)
        except TimeoutError:
            return {"ok": False, "error": f"no answer within {CHECK_TIMEOUT:g}s"}
        except Exception as exc:
            return {"ok": False, "error": self._redacted(f"{type(exc).__name__}: {exc}")}
        return {"ok": True}

    async def _temporal(self) -> None:
        # Connects the lazy client on first use; describing the namespace proves it exists, too.
        await self.temporal.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace=self.temporal.namespace),
            timeout=timedelta(seconds=CHECK_TIMEOUT),
        )

    async def _database(self) -> None:
        assert self.db is not None
        async with self.db.engine.connect() as connection:
            if self.service is None:
                await connection.execute(text("SELECT 1"))
                return
            table = f"alembic_version_{self.service}"
            try:
                found = set((await connection.execute(text(f"SELECT version_num FROM {table}"))).scalars())  # noqa: S608 - our own table name
            except Exception as exc:
                raise RuntimeError(f"not migrated ({table} unreadable): run the migrations") from exc
        heads = self._migration_heads()
        if found != heads:
            raise RuntimeError(
                f"schema at {sorted(found) or 'nothing'}, the code needs {sorted(heads)}: run the migrations"
            )

    def _migration_heads(self) -> set[str]:
        if self._heads is None:
            from shared.migrate import alembic_config  # imports Alembic's machinery: only when needed

            assert self.service is not None
            config = alembic_config(self.service, self.settings)
            self._heads = set(ScriptDirectory.from_config(config).get_heads())
        return self._heads

    async def _object_store(self) -> None:
        if self._s3 is None:
            # A client of its own: no retries and short timeouts, so a probe answers in time.
            self._s3 = boto3.client(
                "s3",
                endpoint_url=self.settings.s3_endpoint_url,
                region_name=self.settings.s3_region,
                aws_access_key_id=self.settings.s3_access_key,
                aws_secret_access_key=self.settings.s3_secret_key.get_secret_value(),
                config=Config(
                    signature_version="s3v4",
                    s3={"addressing_style": "path"},
                    connect_timeout=CHECK_TIMEOUT,
                    read_timeout=CHECK_TIMEOUT,
                    retries={"max_attempts": 1},
                ),
            )
        for bucket in self.buckets:
            try:
                await asyncio.to_thread(self._s3.head_bucket, Bucket=bucket)
            except Exception as exc:
                raise RuntimeError(f"bucket {bucket}: {exc}") from exc

    def _redacted(self, message: str) -> str:
        """No secret in an answer: every secret setting, and the database password, is masked."""
        secrets = [
            value.get_secret_value()
            for value in self.settings.__dict__.values()
            if isinstance(value, SecretStr) and value.get_secret_value()
        ]
        if self.db is not None and self.db.engine.url.password:
            secrets.append(str(self.db.engine.url.password))
        for secret in secrets:
            message = message.replace(secret, "***")
        return message[:300]


async def readiness_answer(readiness: Readiness | None) -> JSONResponse:
    """``/readyz``'s answer: 200 when every check passes, else 503 naming the failing ones."""
    if readiness is None:  # still starting
        return JSONResponse({"status": "starting"}, status_code=503)
    checks = await readiness.check()
    failed = sorted(name for name, result in checks.items() if not result["ok"])
    body: dict[str, Any] = {
        "status": "not_ready" if failed else "ready",
        "name": readiness.name,
        "checks": checks,
    }
    if failed:
        body["failed"] = failed
    return JSONResponse(body, status_code=503 if failed else 200)


def add_readiness(app: FastAPI, readiness: Callable[[], Readiness | None]) -> None:
    """``/readyz`` on an API; ``readiness`` gives the app's checks once its lifespan has opened them."""

    @app.get("/readyz", tags=["operations"], summary="Readiness: database, object store, Temporal")
    async def readyz() -> JSONResponse:
        return await readiness_answer(readiness())


def worker_app(readiness: Readiness) -> FastAPI:
    """A worker's own HTTP app: ``/healthz``, ``/readyz`` and ``/metrics``."""
    app = FastAPI(title=f"{readiness.name} worker", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "name": readiness.name}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        return await readiness_answer(readiness)

    app.add_api_route(METRICS_PATH, metrics_endpoint, methods=["GET"])  # the default registry
    return app


class _Server(uvicorn.Server):
    """uvicorn inside a worker's event loop: the worker's process handles the signals itself."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def worker_http(readiness: Readiness, port: int, host: str = "0.0.0.0") -> AsyncIterator[None]:  # noqa: S104 - a container's interface
    """Serve ``worker_app`` on ``host:port`` while the block runs; ``port`` 0: serve nothing."""
    if not port:
        yield
        return
    server = _Server(
        uvicorn.Config(worker_app(readiness), host=host, port=port, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    try:
        yield
    finally:
        server.should_exit = True
        await task
