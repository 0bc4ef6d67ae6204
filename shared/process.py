"""Running a Temporal worker as a process that stops cleanly on SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from datetime import timedelta

from temporalio.worker import Worker

from shared.health import Readiness, worker_http

log = logging.getLogger(__name__)

# After a stop signal, a worker takes no new tasks and gives running activities this long to finish
# before cancelling them (Worker's graceful_shutdown_timeout). Kubernetes waits longer than this
# before it kills the pod (terminationGracePeriodSeconds in deploy/k8s).
GRACEFUL_SHUTDOWN = timedelta(seconds=30)


async def run_until_stopped(worker: Worker, readiness: Readiness | None = None, http_port: int = 0) -> None:
    """Run until a stop signal, then let running tasks finish (the worker's graceful shutdown). With an
    ``http_port``, serve the worker's /healthz, /readyz (``readiness``) and /metrics on it meanwhile."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with worker_http(readiness, http_port) if readiness else contextlib.nullcontext(), worker:
        log.info("worker started on task queue %s", worker.task_queue)
        await stop.wait()
        log.info("stopping: finishing running tasks")
    log.info("worker stopped")
