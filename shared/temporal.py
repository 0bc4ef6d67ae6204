"""How every process reaches Temporal: the client factory, task queues and search attributes."""

from __future__ import annotations

import dataclasses
from functools import cache

from pydantic import BaseModel
from temporalio.client import Client
from temporalio.common import SearchAttributeKey, WorkflowIDReusePolicy
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from shared.codec import codec_for
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


def data_converter(settings: Settings) -> DataConverter:
    """The pydantic converter; with ``EXPO_PAYLOAD_KEYS`` set, payloads are encrypted (shared/codec.py)
    and so are failures' messages and stack traces (they may quote personal data)."""
    keys = settings.payload_keys
    codec = codec_for(keys.get_secret_value() if keys else None)
    if codec is None:
        return pydantic_data_converter
    return dataclasses.replace(
        pydantic_data_converter,
        payload_codec=codec,
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )


@cache
def _sdk_runtime(bind_address: str) -> Runtime:
    # Durations in seconds, as Prometheus expects (the SDK's default is milliseconds).
    metrics = PrometheusConfig(bind_address=bind_address, durations_as_seconds=True)
    return Runtime(telemetry=TelemetryConfig(metrics=metrics))


async def connect(settings: Settings, *, lazy: bool = False, worker: bool = False) -> Client:
    """A client with the project's converter (``data_converter``); ``lazy`` connects on first use
    (HTTP APIs start without waiting for Temporal). Workers built on it inherit its tracing
    interceptor (``shared.tracing``). ``worker``: the process runs a worker, whose SDK metrics are
    served on ``temporal_metrics_bind`` if set (one runtime per process)."""
    bind = settings.temporal_metrics_bind
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=data_converter(settings),
        interceptors=[TracingInterceptor()],
        runtime=_sdk_runtime(bind) if worker and bind else None,
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
