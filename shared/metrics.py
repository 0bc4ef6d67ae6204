"""Prometheus metrics: every API's requests, latency and errors, and the business counters.

Everything is registered in prometheus_client's default registry, which each process serves at
``/metrics`` (the APIs on their own port, the workers on ``worker_http_port``). The Temporal SDK's own
metrics (workflow and activity latencies, schedule-to-start, ...) are served by the SDK itself on
``temporal_metrics_bind`` (see ``shared.temporal``).

Labels are closed vocabularies only: a route's template (``/v1/units/{unit_id}``, never the path
itself), a status, a method, a channel, an error code. No id, name, number or address is ever a label:
they would leak personal data and make a series per person.

Business counters are incremented where the write they count commits, and only when that write was
new: activities are retried and their idempotency checks answer "already done" on a repeat, which is
not counted again.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.routing import Match, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.http import ApiError

METRICS_PATH = "/metrics"
# Probes and the scrape itself: polled every few seconds, they would drown the real traffic.
UNMEASURED_PATHS = frozenset({METRICS_PATH, "/healthz", "/readyz"})
UNMATCHED_ROUTE = "<unmatched>"  # a 404 for a path no route knows: one series, whatever was asked

# ---------------------------------------------------------------------------------------------- HTTP

HTTP_REQUESTS = Counter(
    "expo_http_requests",
    "HTTP requests answered, by route template and status.",
    ["service", "method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "expo_http_request_duration_seconds",
    "Time from a request's arrival to the end of its answer.",
    ["service", "method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
HTTP_ERRORS = Counter(
    "expo_http_errors",
    "Answers of 4xx and 5xx, by the machine-readable code of the error body (ApiError's code, "
    "invalid_input for validation, http_<status> for the framework's own, internal_error for a crash).",
    ["service", "method", "route", "status", "code"],
)

# ---------------------------------------------------------------------------------------------- business

REGISTRATION_STATUS_CHANGES = Counter(
    "expo_registration_status_changes",
    "Steps written on buyers' timelines, by the status each put its registration in.",
    ["status"],
)
PAYMENTS_CONFIRMED = Counter(
    "expo_payments_confirmed", "Payment orders booked as paid, by payment method.", ["method"]
)
PAYMENT_AMOUNT = Counter(
    "expo_payment_amount_fen", "Money of the orders booked as paid (fen), by payment method.", ["method"]
)
REFUNDS = Counter(
    "expo_refunds",
    "Refunds the gateway made: a person's share of an order, or money that matched no one.",
    ["kind"],
)
REFUND_AMOUNT = Counter("expo_refund_amount_fen", "Money refunded (fen).", ["kind"])
CERTIFICATES = Counter(
    "expo_certificates",
    "Certificate events: issued (a new card), reactivated (last edition's card valid again), "
    "reissued (a lost card replaced), delivered (courier scan or hand-out).",
    ["event"],
)
MESSAGES = Counter(
    "expo_messages",
    "Messages to buyers by channel: sent, or failed (an attempt that Temporal or the caller retries).",
    ["channel", "outcome"],
)

_SAMPLE_SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created")}
# Every name this module exports, as Prometheus serves it (counters gain ``_total``): the dashboard's
# queries are checked against it.
EXPORTED_NAMES = frozenset(
    name
    for metric in (
        HTTP_REQUESTS,
        HTTP_LATENCY,
        HTTP_ERRORS,
        REGISTRATION_STATUS_CHANGES,
        PAYMENTS_CONFIRMED,
        PAYMENT_AMOUNT,
        REFUNDS,
        REFUND_AMOUNT,
        CERTIFICATES,
        MESSAGES,
    )
    for family in metric.describe()
    for name in (family.name + suffix for suffix in _SAMPLE_SUFFIXES[family.type])
)


def refund_kind(registration_id: str | None) -> str:
    return "person" if registration_id is not None else "unmatched_money"


# ---------------------------------------------------------------------------------------------- the API side

_ERROR_CODE = "expo.error_code"  # set in the request's scope by the error handlers, read on the way out


def route_template(app: ASGIApp, scope: Scope) -> str:
    """The template of the route that answered (``/v1/units/{unit_id}``), never the raw path."""
    route = scope.get("route")  # FastAPI's routes note themselves; the docs and static mounts do not
    if route is None:
        routes = getattr(getattr(app, "router", None), "routes", ())
        route = next((r for r in routes if r.matches(scope)[0] is not Match.NONE), None)
    if isinstance(route, Mount):
        return f"{route.path}/{{path}}"  # static files: one series for the mount
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    return template if isinstance(template, str) else UNMATCHED_ROUTE


class MetricsMiddleware:
    """Counts and times every request but the probes and the scrape (pure ASGI: no body buffering)."""

    def __init__(self, app: ASGIApp, *, service: str, root: FastAPI) -> None:
        self.app = app
        self.service = service
        self.root = root

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNMEASURED_PATHS:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # a crash before the answer started is a 500 (ServerErrorMiddleware's answer)

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            self._observe(scope, status, time.perf_counter() - started)

    def _observe(self, scope: Scope, status: int, seconds: float) -> None:
        method = scope["method"]
        route = route_template(self.root, scope)
        HTTP_REQUESTS.labels(self.service, method, route, str(status)).inc()
        HTTP_LATENCY.labels(self.service, method, route).observe(seconds)
        if status >= 400:
            fallback = "internal_error" if status == 500 else f"http_{status}"
            code = str(scope.get(_ERROR_CODE) or fallback)
            HTTP_ERRORS.labels(self.service, method, route, str(status), code).inc()


Handler = Callable[[Request, Any], Response | Awaitable[Response]]


def _noting_code(handler: Handler, code_of: Callable[[Exception], str]) -> Handler:
    async def handle(request: Request, exc: Exception) -> Response:
        request.scope[_ERROR_CODE] = code_of(exc)
        answer = handler(request, exc)
        return await answer if inspect.isawaitable(answer) else answer

    return handle


async def metrics_endpoint(_: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def measure_api(app: FastAPI, service: str) -> None:
    """Measure ``app`` and serve ``/metrics`` (left out of the OpenAPI schema). Called after the error
    handlers are installed: their codes become the error counter's ``code`` label."""
    handlers: dict[Any, Handler] = app.exception_handlers
    if ApiError in handlers:
        handlers[ApiError] = _noting_code(
            handlers[ApiError], lambda exc: exc.body.code if isinstance(exc, ApiError) else "api_error"
        )
    if RequestValidationError in handlers:
        handlers[RequestValidationError] = _noting_code(
            handlers[RequestValidationError], lambda _: "invalid_input"
        )
    app.add_api_route(METRICS_PATH, metrics_endpoint, methods=["GET"], include_in_schema=False)
    app.add_middleware(MetricsMiddleware, service=service, root=app)
