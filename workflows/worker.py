"""The workflow worker: deterministic workflow code only, on its own task queue."""

from __future__ import annotations

import asyncio

from temporalio.worker import Worker

from shared.logs import configure_logging
from shared.process import run_until_stopped
from shared.settings import get_settings
from shared.temporal import WORKFLOW_TASK_QUEUE, connect
from workflows.deadline_extension import PaymentDeadlineExtensionWorkflow
from workflows.payment_order import PaymentOrderWorkflow
from workflows.registration import BuyerRegistrationWorkflow
from workflows.unit import UnitWorkflow

WORKFLOWS = [BuyerRegistrationWorkflow, UnitWorkflow, PaymentOrderWorkflow, PaymentDeadlineExtensionWorkflow]


async def serve() -> None:
    client = await connect(get_settings())
    worker = Worker(client, task_queue=WORKFLOW_TASK_QUEUE, workflows=WORKFLOWS)
    await run_until_stopped(worker)


def main() -> None:
    configure_logging("workflow-worker")
    asyncio.run(serve())


if __name__ == "__main__":
    main()
