"""How every process reaches Temporal: the client factory, task queues and search attributes."""

from __future__ import annotations

from pydantic import BaseModel
from temporalio.client import Client
from temporalio.common import SearchAttributeKey, WorkflowIDReusePolicy
from temporalio.contrib.pydantic import pydantic_data_converter

from shared.settings import Settings

# Workflows run on their own worker; each service serves its activities on its own queue.
WORKFLOW_TASK_QUEUE = "workflows"
REGISTRATION_QUEUE = "registration"
REVIEW_QUEUE = "review"
PAYMENT_QUEUE = "payment"
CERTIFICATE_QUEUE = "certificate"
NOTIFICATION_QUEUE = "notification"

# Typed search attributes, so operators filter workflows in the Temporal UI. No personal data here.
SA_EDITION = SearchAttributeKey.for_keyword("ExpoEdition")
SA_MISSION = SearchAttributeKey.for_keyword("ExpoMission")
SA_SUB_MISSION = SearchAttributeKey.for_keyword("ExpoSubMission")
SA_UNIT = SearchAttributeKey.for_keyword("ExpoUnit")
SA_STATUS = SearchAttributeKey.for_keyword("ExpoStatus")
SA_PAYMENT_METHOD = SearchAttributeKey.for_keyword("ExpoPaymentMethod")
SEARCH_ATTRIBUTES = (SA_EDITION, SA_MISSION, SA_SUB_MISSION, SA_UNIT, SA_STATUS, SA_PAYMENT_METHOD)


async def connect(settings: Settings, *, lazy: bool = False) -> Client:
    """A client with the pydantic converter; ``lazy`` connects on first use (HTTP APIs start without
    waiting for Temporal)."""
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
        lazy=lazy,
    )


async def start_workflow(client: Client, workflow: str, arg: BaseModel, *, id: str, summary: str) -> None:
    """Start one of the project's workflows by name. Its id is a business key that is never reused:
    a second start for the same registration, unit or order is refused."""
    await client.start_workflow(
        workflow,
        arg,
        id=id,
        task_queue=WORKFLOW_TASK_QUEUE,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        static_summary=summary,
    )


def registration_workflow_id(edition: str, registration_id: str) -> str:
    return f"registration-{edition}-{registration_id}"


def unit_workflow_id(edition: str, unit_id: str) -> str:
    return f"unit-{edition}-{unit_id}"


def payment_order_workflow_id(edition: str, order_no: str) -> str:
    return f"payment-order-{edition}-{order_no}"
