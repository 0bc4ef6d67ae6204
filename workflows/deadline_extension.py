"""An organiser's extension of the payment deadlines, announced to every workflow that waits on them.

The registration service stores the extension and starts this workflow; it asks the registration and
payment services to signal their waiting registrations and open orders (long, heartbeating
activities that resume where they stopped). A workflow the announcement misses still learns of the
extension: each re-reads the edition's deadlines when its timer fires, before expiring anything.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from shared import contracts as c
    from shared.temporal import SA_EDITION

from workflows.calls import call
from workflows.visibility import show_status


@workflow.defn(name="PaymentDeadlineExtension")
class PaymentDeadlineExtensionWorkflow:
    @workflow.run
    async def run(self, start: c.DeadlineExtensionStart) -> c.Announced:
        workflow.upsert_search_attributes([SA_EDITION.value_set(start.edition)])
        show_status("announcing", f"Payment deadlines of {start.edition} extended: announcing")
        announcement = c.AnnounceDeadlines(edition=start.edition, deadlines=start.deadlines)
        announced = await asyncio.gather(
            *(
                call(ref, announcement, summary=f"announce to {ref.task_queue}", **LONG_RUNNING)
                for ref in (c.ANNOUNCE_DEADLINES_TO_REGISTRATIONS, c.ANNOUNCE_DEADLINES_TO_ORDERS)
            )
        )
        signalled = sum(each.signalled for each in announced)
        show_status("announced", f"Payment deadlines of {start.edition} extended: {signalled} workflows told")
        return c.Announced(signalled=signalled)


LONG_RUNNING = {"timeout": timedelta(hours=2), "heartbeat": timedelta(minutes=1)}
