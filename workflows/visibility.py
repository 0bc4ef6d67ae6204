"""What operators see of a workflow in the Temporal UI: typed search attributes and current details.
No personal data: ids, codes and statuses only."""

from __future__ import annotations

from temporalio import workflow
from temporalio.common import SearchAttributeUpdate

with workflow.unsafe.imports_passed_through():
    from shared.temporal import (
        SA_EDITION,
        SA_MISSION,
        SA_PAYMENT_METHOD,
        SA_STATUS,
        SA_SUB_MISSION,
        SA_UNIT,
    )


def identify(
    *,
    edition: str,
    mission: str,
    unit: str,
    sub_mission: str | None = None,
    payment_method: str | None = None,
    status: str | None = None,
) -> None:
    """Whose workflow this is, set once at the start so operators can filter by it."""
    pairs: list[SearchAttributeUpdate[str]] = [
        SA_EDITION.value_set(edition),
        SA_MISSION.value_set(mission),
        SA_UNIT.value_set(unit),
    ]
    if sub_mission:
        pairs.append(SA_SUB_MISSION.value_set(sub_mission))
    if payment_method:
        pairs.append(SA_PAYMENT_METHOD.value_set(payment_method))
    if status:
        pairs.append(SA_STATUS.value_set(status))
    workflow.upsert_search_attributes(pairs)


def show_status(status: str, details: str) -> None:
    """The status operators filter by, and the line they read at the top of the workflow."""
    workflow.upsert_search_attributes([SA_STATUS.value_set(status)])
    workflow.set_current_details(details)
