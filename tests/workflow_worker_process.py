"""The workflow worker as a process of its own, so a test can kill it (SIGKILL) mid-lifecycle.

Not a test module: ``python -m tests.workflow_worker_process <address>`` runs the production list of
workflows against the Temporal server at ``address`` until killed.
"""

from __future__ import annotations

import asyncio
import sys

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

from shared.temporal import WORKFLOW_TASK_QUEUE
from workflows.worker import WORKFLOWS


async def serve(address: str) -> None:
    client = await Client.connect(address, data_converter=pydantic_data_converter)
    # No sticky cache: each workflow task goes through the shared queue, so a killed worker's tasks
    # are not left on its private queue (the test server does not time those out as a cluster does).
    async with Worker(client, task_queue=WORKFLOW_TASK_QUEUE, workflows=WORKFLOWS, max_cached_workflows=0):
        print("ready", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1]))
