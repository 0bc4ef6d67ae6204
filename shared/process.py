"""Running a Temporal worker as a process that stops cleanly on SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal

from temporalio.worker import Worker

log = logging.getLogger(__name__)


async def run_until_stopped(worker: Worker) -> None:
    """Run until a stop signal, then let running tasks finish (the worker's graceful shutdown)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with worker:
        log.info("worker started on task queue %s", worker.task_queue)
        await stop.wait()
        log.info("stopping: finishing running tasks")
    log.info("worker stopped")
