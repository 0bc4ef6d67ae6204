"""Observability as an operator meets it: each API's /metrics (requests, latency and errors by route
template), business counters moved by the real activities, one trace from an HTTP request through the
workflow it starts to the workflow's activities, the Temporal SDK's own metrics served by a worker,
log lines that mask personal data and name their trace, and a Grafana dashboard that queries only
metrics the code exports.

The APIs run in process on their own SQLite databases; Temporal is the time-skipping test server, with
the workflows on their worker and fake services answering the activities (tests/workflow_env.py),
except where a real service's activity is the point.
"""

from __future__ import annotations

import io
import json
import logging
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from temporalio.client import Client
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from deploy.local.demo import demo_id_number
from services.payment.activities import PaymentActivities, gateway_for
from services.registration import api as registration_api
from services.registration.models import AccountKind
from shared import contracts as c
from shared import metrics, temporal
from shared.db import utcnow
from shared.logs import JsonFormatter, PersonalDataFilter
from shared.settings import Settings
from shared.tracing import ScrubbingExporter
from shared.types import PaymentMethod
from tests.service_env import buyer_headers, service_context
from tests.test_payment_service import FEE, add_order
from tests.test_registration_rules import REHEARSAL, unit_body
from tests.workflow_env import FakeServices, running_workers
from tests.workflow_world import eventually, recorded_histories, replayer, until

DASHBOARD = Path(__file__).parent.parent / "deploy" / "grafana" / "expo-dashboard.json"
MOBILE = "13800000003"  # unit_body()'s contact: in the request, never in a label, span or log line
EMAIL = "lin@ningbo-trade.example.com"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """A /metrics page as {(sample name, labels): value}."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(page: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return page.get((name, frozenset(labels.items())), 0.0)


async def connected(env: WorkflowEnvironment, **settings: Any) -> Client:
    """A client as the processes make it (``shared.temporal.connect``), on the test's server."""
    target = env.client.service_client.config.target_host
    return await temporal.connect(Settings(temporal_address=target, **settings), worker=True)


@pytest.fixture(scope="module")
def spans() -> Iterator[InMemorySpanExporter]:
    """The process's tracer provider (set up once, as a process does) with an exporter that keeps
    what it is given, behind the scrubbing every exporter gets. Stopped after the module."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(ScrubbingExporter(exporter)))
    yield exporter
    exporter.shutdown()


# ------------------------------------------------------------------------------------------ API metrics


async def test_an_api_counts_and_times_requests_by_route_template_without_ids_or_personal_data(
    tmp_path: Path,
) -> None:
    settings = Settings(data_dir=tmp_path, edition_year_shift=REHEARSAL)
    async with service_context("registration", settings) as ctx:
        registration_api.app.state.ctx = ctx
        transport = httpx.ASGITransport(app=registration_api.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://registration.test") as client:
            before = samples((await client.get("/metrics")).text)
            headers = await buyer_headers(ctx, AccountKind.UNIT)
            unknown = await client.get("/v1/units/UNOSUCHUNIT01", headers=headers)
            kindless = {k: v for k, v in unit_body().items() if k != "kind"}
            invalid = await client.post(f"/v1/units?mobile={MOBILE}", json=kindless, headers=headers)
            assert (await client.get("/healthz")).status_code == 200
            page = await client.get("/metrics")
            schema = (await client.get("/openapi.json")).json()

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/plain")
    after = samples(page.text)
    unit_route = "/v1/units/{unit_id}"
    assert unknown.status_code >= 400 and invalid.status_code == 422
    for route, answer in ((unit_route, unknown), ("/v1/units", invalid)):
        method = answer.request.method
        status = str(answer.status_code)
        key = {"service": "registration", "method": method, "route": route}
        assert value(after, "expo_http_requests_total", **key, status=status) == (
            value(before, "expo_http_requests_total", **key, status=status) + 1
        )
        assert value(after, "expo_http_request_duration_seconds_count", **key) == (
            value(before, "expo_http_request_duration_seconds_count", **key) + 1
        )
        code = answer.json()["code"]  # the error body's code is the error counter's
        assert value(after, "expo_http_errors_total", **key, status=status, code=code) == (
            value(before, "expo_http_errors_total", **key, status=status, code=code) + 1
        )
    assert value(after, "expo_http_errors_total", service="registration", method="POST", route="/v1/units",
                 status="422", code="invalid_input") >= 1  # fmt: skip
    # Neither the probes nor the scrape are counted; the raw path, the query and the body never show.
    routes = {dict(labels).get("route") for _, labels in after}
    assert {"/healthz", "/metrics"}.isdisjoint(routes)
    for secret in ("UNOSUCHUNIT01", MOBILE, EMAIL, "mobile="):
        assert secret not in page.text
    assert "/metrics" not in schema["paths"]


# ------------------------------------------------------------------------------------------ business counters


async def test_a_payment_is_counted_once_however_often_its_activity_runs(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    async with service_context("payment", settings) as ctx:
        acts = PaymentActivities(ctx, gateway_for(ctx))
        order_no, _ = await add_order(ctx, 2, method=PaymentMethod.B2B)
        before = samples(generate_latest().decode())
        paid = c.MarkOrderPaid(
            order_no=order_no, transaction_id="T-OBS-1", amount_fen=2 * FEE, paid_at=utcnow()
        )
        await acts.mark_order_paid(paid)
        await acts.mark_order_paid(paid)  # a retry after a lost answer: booked and counted once
        after = samples(generate_latest().decode())

    assert value(after, "expo_payments_confirmed_total", method="b2b") == (
        value(before, "expo_payments_confirmed_total", method="b2b") + 1
    )
    assert value(after, "expo_payment_amount_fen_total", method="b2b") == (
        value(before, "expo_payment_amount_fen_total", method="b2b") + 2 * FEE
    )


# ------------------------------------------------------------------------------------------ tracing


def attribute_text(span: ReadableSpan) -> str:
    events = [dict(event.attributes or {}) for event in span.events]
    return json.dumps([dict(span.attributes or {}), events, span.status.description], default=str)


async def test_one_trace_runs_from_the_http_request_through_the_workflow_to_its_activities(
    tmp_path: Path, env: WorkflowEnvironment, spans: InMemorySpanExporter
) -> None:
    spans.clear()
    settings = Settings(data_dir=tmp_path, edition_year_shift=REHEARSAL)
    client = await connected(env)
    services = FakeServices()
    async with (
        running_workers(client, services),
        service_context("registration", settings, temporal=client) as ctx,
    ):
        registration_api.app.state.ctx = ctx
        transport = httpx.ASGITransport(app=registration_api.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://registration.test") as http:
            headers = await buyer_headers(ctx, AccountKind.UNIT)
            answer = await http.post(f"/v1/units?mobile={MOBILE}", json=unit_body(), headers=headers)
        assert answer.status_code == 201, answer.text
        unit_id = answer.json()["id"]
        await until(lambda: any(t.subject_id == unit_id for t in services.review_tasks), "review task opened")

        def traced() -> list[ReadableSpan]:
            request = next(s for s in spans.get_finished_spans() if s.name == "POST /v1/units")
            assert request.context is not None
            return [
                s
                for s in spans.get_finished_spans()
                if s.context is not None and s.context.trace_id == request.context.trace_id
            ]

        async def names() -> set[str]:
            return {s.name for s in traced()}

        run_activity = f"RunActivity:{c.OPEN_REVIEW_TASK.name}"
        expected = {"POST /v1/units", "StartWorkflow:UnitReview", "RunWorkflow:UnitReview", run_activity}
        await eventually(names, lambda seen: expected <= seen, "the request's spans")

    for span in traced():  # the query, the body and the client's address are in no span
        text = attribute_text(span)
        assert MOBILE not in text and EMAIL not in text, (span.name, text)
        assert not {"net.peer.ip", "client.address", "http.user_agent"} & set(span.attributes or {}), text
    # The probes and the scrape are not traced.
    assert not [s for s in spans.get_finished_spans() if s.name.endswith(("/healthz", "/metrics"))]


async def test_recorded_histories_replay_with_the_tracing_interceptor() -> None:
    histories = recorded_histories()
    assert histories
    config = replayer().config()  # the replay test's, with the interceptor every worker now has
    config["interceptors"] = [TracingInterceptor()]
    traced = Replayer(**config)
    for history in histories:
        await traced.replay_workflow(history)


# ------------------------------------------------------------------------------------------ SDK metrics


SDK_PREFIX = "temporal_"


def dashboard_metric_names() -> set[str]:
    """Every metric name the example dashboard's queries use."""
    exprs = [
        target["expr"]
        for panel in json.loads(DASHBOARD.read_text(encoding="utf-8"))["panels"]
        for target in panel.get("targets", [])
    ]
    assert exprs
    return {name for expr in exprs for name in re.findall(r"\b((?:expo|temporal)_[a-z0-9_]+)\b", expr)}


async def test_a_worker_serves_the_sdk_metrics_the_dashboard_queries(env: WorkflowEnvironment) -> None:
    bind = f"127.0.0.1:{free_port()}"
    client = await connected(env, temporal_metrics_bind=bind)
    services = FakeServices()
    async with running_workers(client, services):
        start = c.UnitStart(
            edition="ciie6",
            unit_id="UOBSERVED0001",
            mission="shanghai",
            sub_mission=None,
            registration_closes=utcnow().replace(year=utcnow().year + 1),
            expo_closes=utcnow().replace(year=utcnow().year + 1),
        )
        await temporal.start_workflow(
            client, "UnitReview", start, id=temporal.unit_workflow_id("ciie6", start.unit_id), summary="obs"
        )
        await until(lambda: bool(services.review_tasks), "the workflow's first activity")
        async with httpx.AsyncClient() as http:

            async def served() -> str:
                return (await http.get(f"http://{bind}/metrics")).text

            wanted = {n for n in dashboard_metric_names() if n.startswith(SDK_PREFIX)}
            assert wanted, "the dashboard shows the SDK's workflow and activity metrics"
            page = await eventually(served, lambda text: all(n in text for n in wanted), "the SDK metrics")

    names = {name for name, _ in samples(page)}
    assert wanted <= names, wanted - names
    assert any(n.startswith(SDK_PREFIX) for n in names)


def test_the_dashboard_queries_only_metrics_the_code_exports() -> None:
    ours = {n for n in dashboard_metric_names() if n.startswith("expo_")}
    assert ours, "the dashboard shows the services' own metrics"
    assert ours <= metrics.EXPORTED_NAMES, ours - metrics.EXPORTED_NAMES
    for wanted in (
        "expo_http_requests_total",
        "expo_registration_status_changes_total",
        "expo_refunds_total",
    ):
        assert wanted in ours


# ------------------------------------------------------------------------------------------ logs


@pytest.fixture
def log_lines() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger writing as the processes do (JSON, personal data masked), into a buffer."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(JsonFormatter("test-worker"))
    handler.addFilter(PersonalDataFilter())
    logger = logging.getLogger("tests.observability")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)  # what the processes log at (shared.logs.configure_logging)
    logger.propagate = False
    try:
        yield logger, buffer
    finally:
        logger.removeHandler(handler)


def test_log_lines_mask_personal_data_in_messages_and_exceptions(
    log_lines: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, buffer = log_lines
    id_number = demo_id_number("19880808")
    passport = "E12345678"
    logger.warning("registration R7K2M4Q9XJ3PA: %s, %s, %s", id_number, f"+86{MOBILE}", EMAIL)
    try:
        raise ValueError(f"the gateway said: holder {id_number} / {MOBILE} / {EMAIL} / {passport}")
    except ValueError:
        logger.exception("certificate B06-0000001 not made")

    first, second = (json.loads(line) for line in buffer.getvalue().splitlines())
    for entry in (first, second):
        text = json.dumps(entry, ensure_ascii=False)
        for secret in (id_number, MOBILE, EMAIL, passport):
            assert secret not in text, (secret, text)
    assert first["message"] == "registration R7K2M4Q9XJ3PA: ***, ***, ***"  # ids stay readable
    assert first["process"] == "test-worker" and first["level"] == "warning"
    assert second["message"] == "certificate B06-0000001 not made"
    assert "ValueError: the gateway said: holder *** / *** / *** / ***" in second["exception"]


def test_a_log_line_inside_a_span_names_its_trace(
    log_lines: tuple[logging.Logger, io.StringIO], spans: InMemorySpanExporter
) -> None:
    logger, buffer = log_lines
    with trace.get_tracer(__name__).start_as_current_span("work") as span:
        logger.info("inside")
    logger.info("outside")
    inside, outside = (json.loads(line) for line in buffer.getvalue().splitlines())
    assert inside["trace_id"] == trace.format_trace_id(span.get_span_context().trace_id)
    assert inside["span_id"] == trace.format_span_id(span.get_span_context().span_id)
    assert "trace_id" not in outside
