"""The workflow worker: deterministic workflow code only, on its own task queue."""

from __future__ import annotations

import asyncio

from temporalio.worker import Worker

from shared.health import Readiness
from shared.logs import configure_logging
from shared.process import GRACEFUL_SHUTDOWN, run_until_stopped
from shared.settings import get_settings
from shared.temporal import WORKFLOW_TASK_QUEUE, connect
from shared.tracing import configure_tracing
from workflows.deadline_extension import PaymentDeadlineExtensionWorkflow
from workflows.payment_order import PaymentOrderWorkflow
from workflows.registration import BuyerRegistrationWorkflow
from workflows.unit import UnitWorkflow

WORKFLOWS = [BuyerRegistrationWorkflow, UnitWorkflow, PaymentOrderWorkflow, PaymentDeadlineExtensionWorkflow]


async def serve() -> None:
    settings = get_settings()
    client = await connect(settings, worker=True)
    worker = Worker(
        client,
        task_queue=WORKFLOW_TASK_QUEUE,
        workflows=WORKFLOWS,
        graceful_shutdown_timeout=GRACEFUL_SHUTDOWN,
    )
    await run_until_stopped(worker, Readiness("workflow-worker", settings, client), settings.worker_http_port)


def main() -> None:
    configure_logging("workflow-worker")
    configure_tracing("workflow-worker", get_settings())
    asyncio.run(serve())


if __name__ == "__main__":
    main()
