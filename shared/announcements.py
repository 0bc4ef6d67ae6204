"""Telling many waiting workflows of an edition about extended payment deadlines, from an activity.

Both the registration service (its waiting registrations) and the payment service (its open orders)
page through their own tables; this is the part they share: signal each page's workflows a few dozen
at a time, skip those that have closed, and heartbeat the last key done, so that a retried activity
resumes after it instead of starting over.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from temporalio import activity
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from shared import contracts as c

PAGE_SIZE = 500
SIGNALS_IN_FLIGHT = 50

# Given the last key done ("" at first), the next page of (key, workflow id), in key order.
NextPage = Callable[[str], Awaitable[Sequence[tuple[str, str]]]]


async def signal_if_running(client: Client, workflow_id: str, signal: str, arg: c.Message) -> bool:
    """Signal a workflow; False if it has closed (expired, withdrawn, paid and done) or never ran."""
    try:
        await client.get_workflow_handle(workflow_id).signal(signal, arg)
    except RPCError as exc:
        if exc.status is not RPCStatusCode.NOT_FOUND:
            raise
        return False
    return True


async def announce_deadlines(
    client: Client, deadlines: c.PaymentDeadlines, next_page: NextPage
) -> c.Announced:
    details = activity.info().heartbeat_details
    last = str(details[0]) if details else ""
    signalled = int(details[1]) if len(details) > 1 else 0
    in_flight = asyncio.Semaphore(SIGNALS_IN_FLIGHT)

    async def tell(workflow_id: str) -> bool:
        async with in_flight:
            return await signal_if_running(client, workflow_id, c.SIGNAL_DEADLINES_EXTENDED, deadlines)

    while page := await next_page(last):
        signalled += sum(await asyncio.gather(*(tell(workflow_id) for _, workflow_id in page)))
        last = page[-1][0]
        activity.heartbeat(last, signalled)
    return c.Announced(signalled=signalled)
