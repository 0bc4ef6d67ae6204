"""Every process the system runs, in one list: the embedded stack, the image's entry point, the
Kubernetes manifests and the compose file all take their commands from here.

    python -m deploy.processes registration-api     # what the image runs: `docker run IMAGE registration-api`
    python -m deploy.processes --list               # the names

Kinds: ``api`` (an HTTP service: uvicorn on ``API_PORT`` in a container), ``worker`` (a Temporal
worker; its probes and metrics on ``WORKER_HTTP_PORT`` when ``EXPO_WORKER_HTTP_PORT`` is set), ``job``
(runs once and exits: migrations, buckets, the first administrator, Temporal's search attributes) and
``sandbox`` (development stand-ins for the payment gateway and the courier: never deployed to
production, where ``EXPO_GATEWAY_URL`` and ``EXPO_COURIER_URL`` name the real ones).
"""

from __future__ import annotations

import argparse
import os
import sys
import urllib.request
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from shared.process import GRACEFUL_SHUTDOWN
from shared.settings import SERVICES, ServiceName, Settings, get_settings

Kind = Literal["api", "worker", "job", "sandbox"]

PROCESS_VARIABLE = "PROCESS_NAME"  # the running process's name, set by main() for the health check
API_PORT = 8000  # every HTTP process listens here in its container
WORKER_HTTP_PORT = 9000  # a worker's /healthz, /readyz and /metrics in its container (EXPO_WORKER_HTTP_PORT)
# uvicorn finishes the requests in flight for this long after SIGTERM.
API_GRACEFUL_SHUTDOWN = timedelta(seconds=15)
# An API pod keeps serving this long after Kubernetes decides to stop it (preStop), while the Ingress
# and Services stop sending it requests.
PRE_STOP_DELAY = timedelta(seconds=5)


@dataclass(frozen=True)
class ProcessSpec:
    name: str
    kind: Kind
    module: str  # run as `python -m <module> <args>`; for APIs, the ASGI app uvicorn serves
    args: tuple[str, ...] = ()
    service: ServiceName | None = None  # the service whose database and buckets it uses

    @property
    def http_port(self) -> int | None:
        """Its port in a container (APIs and sandboxes: the API; workers: probes and metrics)."""
        if self.kind in ("api", "sandbox"):
            return API_PORT
        return WORKER_HTTP_PORT if self.kind == "worker" else None

    @property
    def termination_grace_seconds(self) -> int:
        """How long Kubernetes waits after SIGTERM before it kills the process: longer than the
        process's own graceful shutdown (workers: their activities' time to finish; APIs: the delay
        before the endpoint is taken out of the Service, then the requests in flight)."""
        own = GRACEFUL_SHUTDOWN if self.kind == "worker" else API_GRACEFUL_SHUTDOWN + PRE_STOP_DELAY
        return int(own.total_seconds()) + 15

    def argv(self, settings: Settings, *, host: str = "0.0.0.0", port: int | None = None) -> list[str]:  # noqa: S104 - a container's interface
        """The command line after ``python``; HTTP processes bind ``host:port`` (default: in a container)."""
        if self.kind in ("api", "sandbox"):
            return [
                "-m", "uvicorn", self.module, "--host", host, "--port", str(port or API_PORT),
                "--log-level", "warning", "--proxy-headers", "--forwarded-allow-ips", "*",
                "--timeout-graceful-shutdown", str(int(API_GRACEFUL_SHUTDOWN.total_seconds())),
            ]  # fmt: skip
        return ["-m", self.module, *(arg.format(admin_login=settings.admin_login) for arg in self.args)]


def _api(service: ServiceName) -> ProcessSpec:
    return ProcessSpec(f"{service}-api", "api", f"services.{service}.api:app", service=service)


def _worker(service: ServiceName) -> ProcessSpec:
    return ProcessSpec(f"{service}-worker", "worker", "services.worker", (service,), service=service)


MIGRATE = ProcessSpec("migrate", "job", "shared.migrate")
# The organiser's first administrator (password EXPO_ADMIN_PASSWORD); an existing login is left alone.
CREATE_ADMIN = ProcessSpec(
    "create-admin", "job", "services.review.staff",
    ("create-admin", "--login", "{admin_login}", "--name", "Organiser"), service="review",
)  # fmt: skip
CREATE_BUCKETS = ProcessSpec("create-buckets", "job", "deploy.buckets")
TEMPORAL_SETUP = ProcessSpec("temporal-setup", "job", "deploy.temporal_setup")
# Earlier editions' certificate holders shipped with the code (a rehearsal's data; production imports
# the organiser's own files with `python -m services.registration.previous import FILE ...`).
IMPORT_SHIPPED = ProcessSpec(
    "import-previous", "job", "services.registration.previous", ("import-shipped",), service="registration"
)

PROCESSES: tuple[ProcessSpec, ...] = (
    *(_api(service) for service in SERVICES),
    *(_worker(service) for service in SERVICES),
    ProcessSpec("workflow-worker", "worker", "workflows.worker"),
    MIGRATE,
    CREATE_BUCKETS,
    CREATE_ADMIN,
    TEMPORAL_SETUP,
    IMPORT_SHIPPED,
    ProcessSpec("gateway-sandbox", "sandbox", "services.payment.sandbox_gateway:app"),
    ProcessSpec("courier-sandbox", "sandbox", "services.certificate.sandbox_courier:app"),
)
BY_NAME = {process.name: process for process in PROCESSES}
# What production runs: everything but the sandboxes and the shipped rehearsal data.
PRODUCTION = tuple(p for p in PROCESSES if p.kind != "sandbox" and p is not IMPORT_SHIPPED)


def healthcheck(name: str | None, settings: Settings) -> int:
    """The image's HEALTHCHECK: the running process's liveness endpoint answers (0), or not (1)."""
    process = BY_NAME.get(name or "")
    if process is None or process.kind == "job":
        return 0
    port = settings.worker_http_port if process.kind == "worker" else process.http_port
    if not port:  # a worker without its HTTP port: alive as long as it runs
        return 0
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=4) as answer:
            return 0 if answer.status == 200 else 1
    except OSError:
        return 1


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("name", nargs="?", choices=sorted(BY_NAME), metavar="PROCESS")
    parser.add_argument("--list", action="store_true", help="print every process's name and kind")
    parser.add_argument("--healthcheck", action="store_true", help="check the running process (the image's)")
    args = parser.parse_args()
    if args.healthcheck:
        sys.exit(healthcheck(os.environ.get(PROCESS_VARIABLE), get_settings()))
    if args.list or not args.name:
        for process in PROCESSES:
            print(f"{process.name:<22}{process.kind}")
        return
    argv = BY_NAME[args.name].argv(get_settings())
    sys.stdout.flush()
    # The process replaces this one, so signals (Kubernetes' SIGTERM) reach it directly; it keeps
    # its name in the environment for the health check.
    os.execve(sys.executable, [sys.executable, *argv], {**os.environ, PROCESS_VARIABLE: args.name})  # noqa: S606 - our own modules


if __name__ == "__main__":
    main()
