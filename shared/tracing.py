"""OpenTelemetry tracing: one trace from an HTTP request through the workflow it starts or updates to
the activities the workflow runs, and the HTTP calls those make.

Each process sets tracing up once (``configure_tracing``) under its own name (``service.name``, e.g.
``registration-api``, ``payment-worker``). The pieces:

- the APIs' FastAPI apps (``trace_api``, from ``create_service_app``): a server span per request,
  named by route template; the probes and the scrape are left out;
- every ``httpx`` client of the process: a client span per call, its context passed on in the
  ``traceparent`` header;
- every Temporal client (``shared.temporal.connect``) and the workers built on it: the SDK's
  ``TracingInterceptor`` carries the context in workflow and activity headers (StartWorkflow,
  RunWorkflow, StartActivity, RunActivity, updates and signals). It creates no span on replay, so
  recorded histories replay as before.

Spans are exported over OTLP/HTTP when ``otlp_endpoint`` is set. Whatever the exporter, spans pass
through ``ScrubbingExporter`` first: no query string (names and phones can be searched for), no client
address or user agent, and exception texts masked like the logs (``shared.logs``).
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit, urlunsplit

from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import Status
from opentelemetry.util.types import AttributeValue

from shared.logs import mask_personal_data
from shared.settings import Settings

UNTRACED_PATHS = "/healthz$,/readyz$,/metrics$"  # regular expressions: the probes and the scrape

# Attributes whose value is a URL or a path with its query: kept without the query.
_URL_ATTRIBUTES = frozenset({"http.url", "url.full", "http.target"})
# Attributes dropped altogether: the query itself, and what identifies the person's device.
_DROPPED_ATTRIBUTES = frozenset(
    {
        "url.query",
        "net.peer.ip",
        "net.peer.port",
        "client.address",
        "client.port",
        "http.client_ip",
        "http.user_agent",
        "user_agent.original",
    }
)
_TEXT_ATTRIBUTES = frozenset({"exception.message", "exception.stacktrace"})


def _without_query(value: str) -> str:
    parts = urlsplit(value)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def _clean(attributes: object) -> dict[str, AttributeValue]:
    cleaned: dict[str, AttributeValue] = {}
    for key, value in dict(attributes or {}).items():  # type: ignore[call-overload]
        if key in _DROPPED_ATTRIBUTES:
            continue
        if isinstance(value, str) and key in _URL_ATTRIBUTES:
            value = _without_query(value)
        elif isinstance(value, str) and key in _TEXT_ATTRIBUTES:
            value = mask_personal_data(value)
        cleaned[key] = value
    return cleaned


def scrubbed(span: ReadableSpan) -> ReadableSpan:
    """A copy of ``span`` without personal data in its attributes, events and status."""
    status = span.status
    if status.description:
        status = Status(status.status_code, mask_personal_data(status.description))
    return ReadableSpan(
        name=span.name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=_clean(span.attributes),
        events=[Event(e.name, _clean(e.attributes), e.timestamp) for e in span.events],
        links=span.links,
        kind=span.kind,
        status=status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


class ScrubbingExporter(SpanExporter):
    """Hands ``exporter`` scrubbed copies of the spans."""

    def __init__(self, exporter: SpanExporter) -> None:
        self.exporter = exporter

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self.exporter.export([scrubbed(span) for span in spans])

    def shutdown(self) -> None:
        self.exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.exporter.force_flush(timeout_millis)


def configure_tracing(process_name: str, settings: Settings) -> TracerProvider:
    """The process's tracer provider (``service.name`` = ``process_name``), set once: a second call
    answers the first's. Spans are made (their ids reach the logs) even when none is exported."""
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        return current
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: process_name}))
    if settings.otlp_endpoint:
        endpoint = settings.otlp_endpoint.rstrip("/") + "/v1/traces"
        provider.add_span_processor(
            BatchSpanProcessor(ScrubbingExporter(OTLPSpanExporter(endpoint=endpoint)))
        )
    trace.set_tracer_provider(provider)
    HTTPXClientInstrumentor().instrument()
    return provider


def trace_api(app: FastAPI) -> None:
    """Server spans for ``app``'s requests, named by route template (the ASGI messages get none)."""
    FastAPIInstrumentor.instrument_app(app, excluded_urls=UNTRACED_PATHS, exclude_spans=["receive", "send"])
