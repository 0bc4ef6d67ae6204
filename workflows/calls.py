"""Calling service activities from workflow code, by contract."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import FailureError

with workflow.unsafe.imports_passed_through():
    from shared import contracts as c
    from shared.contracts import ActivityRef, Message

InputT = TypeVar("InputT", bound=Message)
OutputT = TypeVar("OutputT")

# Services may be down for a while (a deploy, a database restart): keep retrying, back off to a minute.
# Business refusals are raised as non-retryable ApplicationErrors by the activities themselves.
SERVICE_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1))


async def call(
    ref: ActivityRef[InputT, OutputT],
    arg: InputT,
    *,
    summary: str | None = None,
    timeout: timedelta = timedelta(seconds=30),
    heartbeat: timedelta | None = None,
) -> OutputT:
    result_type: Any = None if ref.output is type(None) else ref.output
    result: OutputT = await workflow.execute_activity(
        ref.name,
        arg,
        task_queue=ref.task_queue,
        result_type=result_type,
        start_to_close_timeout=timeout,
        heartbeat_timeout=heartbeat,
        retry_policy=SERVICE_RETRY,
        summary=summary,
    )
    return result


async def signal_if_open(workflow_id: str, signal: str, arg: Message) -> bool:
    """Signal another workflow; False if it has closed (a registration that expired, say) or never
    existed, which the caller handles instead of failing."""
    try:
        await workflow.get_external_workflow_handle(workflow_id).signal(signal, arg)
    except FailureError:
        return False
    return True


async def record_decision(
    kind: c.ReviewKind, subject_id: str, round: int, decision: c.ReviewDecision
) -> None:
    """Write a staff decision to the review service's audit log (and take it off the queue)."""
    label = "unit review" if kind is c.ReviewKind.UNIT else "personnel review"
    await call(
        c.RECORD_DECISION,
        c.RecordDecision(
            kind=kind,
            subject_id=subject_id,
            round=round,
            decision=decision.decision,
            reason=decision.reason,
            reviewer=decision.reviewer,
            decided_at=workflow.now(),
        ),
        summary=f"{label}: {decision.decision.value}",
    )
