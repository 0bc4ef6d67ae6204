"""The staff console at ``/console``: review queues, subjects' details and decisions, the audit log and
statistics, in Chinese and English. Included in the review app with ``app.include_router(pages.router)``.

The console is a client of this service's own public API, called over HTTP at ``settings.review_url``
with the staff member's bearer token (kept in the HttpOnly cookie ``expo_staff``), exactly as any other
client would call it: what a role may see and decide is the API's business, and the pages show what it
answers: its refusals next to the field they concern, a subject it does not show as a 404 page.
Everything works without JavaScript. The login, the cookie and the error pages are ``shared/pages.py``'s
(the finance pages use them too); how pages are built, ``shared/web.py``'s.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qsl, quote, urlencode

from fastapi import Depends, Request, Response
from fastapi.responses import HTMLResponse
from starlette.datastructures import FormData

from shared.catalogue import load_missions
from shared.http import ApiError, ErrorBody
from shared.labels import LABELS as DOMAIN_LABELS
from shared.labels import labeller
from shared.pages import StaffPage, StaffPages, form_text, local_error, mission_name
from shared.service import ServiceContext
from shared.temporal import registration_workflow_id, unit_workflow_id
from shared.web import FormErrors, Lang, check_csrf, page_templates, pass_on, redirect

PAGE_SIZE = 50

# ------------------------------------------------------------------------------------------ words

# The domain's words are shared/labels.py's; the console's own vocabularies, (Chinese, English).
LABELS: dict[str, dict[str, tuple[str, str]]] = {
    **DOMAIN_LABELS,
    "kind": {"unit": ("单位", "Unit"), "person": ("人员", "Person")},
    "queue_status": {
        "pending": ("待审核", "Pending"),
        "decided": ("已审核", "Decided"),
        "closed": ("已关闭（未审核）", "Closed without a decision"),
        "all": ("全部", "All"),
    },
    "round_state": {
        "pending": ("待审核", "Awaiting a decision"),
        "decided": ("已审核", "Decided"),
        "closed": ("已关闭（未审核）", "Closed without a decision"),
    },
}

# ------------------------------------------------------------------------------------------ the site

SITE = StaffPages(
    prefix="/console",
    cookie="expo_staff",
    templates=page_templates(Path(__file__).parent / "templates"),
    api_url=lambda settings: settings.review_url,  # this service's own API, over HTTP like any client
    deciding_roles=frozenset({"mission_staff", "administrator"}),  # as services.review.staff.require_decider
    labels=LABELS,
    layout="console/layout.html",
    login_title=("工作人员登录", "Staff login"),
    home_id="back-to-queue",
    home_text=("返回审核队列", "Back to the review queue"),
)
router = SITE.router()
page = SITE.page
Staff = Annotated[StaffPage, Depends(SITE.staff)]


# ------------------------------------------------------------------------------------------ the queue

QUEUE_FILTERS = ("kind", "status", "mission", "sub_mission", "unit_kind", "opened_from", "opened_to")


@dataclass
class QueueView:
    """The queue's filters as the page shows them, and the page of tasks the API answered."""

    filters: dict[str, str]
    page: int = 1
    tasks: list[dict[str, Any]] = field(default_factory=list)
    total: int = 0

    @classmethod
    def of(cls, params: Mapping[str, str]) -> QueueView:
        filters = {name: (params.get(name) or "").strip() for name in QUEUE_FILTERS}
        filters["kind"] = filters["kind"] if filters["kind"] in ("unit", "person") else "unit"
        filters["status"] = filters["status"] or "pending"
        try:
            number = max(int(params.get("page") or 1), 1)
        except ValueError:
            number = 1
        return cls(filters, number)

    @property
    def api_params(self) -> dict[str, str]:
        return {name: value for name, value in self.filters.items() if value}

    @property
    def pages(self) -> int:
        return max(math.ceil(self.total / PAGE_SIZE), 1)

    def url(self, **changes: Any) -> str:
        """This queue with ``changes`` (``page=2``, ``format=csv``...)."""
        return "?" + urlencode({**self.api_params, **{k: v for k, v in changes.items() if v is not None}})

    @property
    def query(self) -> str:
        return urlencode({**self.api_params, "page": self.page})


async def _load_queue(staff: StaffPage, view: QueueView) -> FormErrors | None:
    """Fill ``view`` with its page of tasks; or the API's refusal of a filter (another mission's, a date
    that is not one), which the page shows next to that filter."""
    params = {**view.api_params, "limit": PAGE_SIZE, "offset": (view.page - 1) * PAGE_SIZE}
    try:
        answer = await staff.api.call_response("GET", "/v1/queue", params=params)
    except FormErrors as refused:
        if refused.status == 401:
            raise
        return refused
    view.tasks = answer.json()
    view.total = int(answer.headers.get("x-total-count", len(view.tasks)))
    return None


def _mission_options(staff: StaffPage) -> list[tuple[str, str]]:
    """Mission staff see their own mission only; everyone else every mission of the catalogue."""
    lang = staff.lang
    every = ("", "全部交易团" if lang == "zh" else "Every mission")
    if staff.me.role == "mission_staff":
        own = staff.me.mission or ""
        return [("", "本交易团" if lang == "zh" else "My mission"), (own, mission_name(lang, own))]
    return [every] + [(m.code, m.name_zh if lang == "zh" else m.name_en) for m in load_missions().missions]


def _sub_mission_options(staff: StaffPage, mission: str) -> list[tuple[str, str]]:
    """The sub-missions of the mission chosen (or the staff member's own): without JavaScript the list
    follows the mission once the filter is applied."""
    lang = staff.lang
    code = mission or (staff.me.mission if staff.me.role == "mission_staff" else None)
    found = load_missions().get(code) if code else None
    options = [("", "全部交易分团" if lang == "zh" else "Every sub-mission")]
    if found is not None:
        options += [(sub.code, sub.name_zh if lang == "zh" else sub.name_en) for sub in found.sub_missions]
    return options


async def _queue_page(
    staff: StaffPage,
    view: QueueView,
    *,
    errors: dict[str, ErrorBody] | None = None,
    results: dict[str, Any] | None = None,
    values: Mapping[str, Any] | None = None,
    status: int = 200,
) -> HTMLResponse:
    shown_errors = dict(errors or {})
    refused = await _load_queue(staff, view)
    if refused is not None:
        status = refused.status
        for name, body in refused.errors.items():  # the filter it concerns, else the filters as a whole
            shown_errors[name if name in QUEUE_FILTERS else "filters"] = body
    lang = staff.lang
    return page(
        staff.request,
        "console/queue.html",
        {
            "view": view,
            "mission_options": _mission_options(staff),
            "sub_mission_options": _sub_mission_options(staff, view.filters["mission"]),
            "kind_options": [(k, LABELS["kind"][k][0 if lang == "zh" else 1]) for k in ("unit", "person")],
            "status_options": [(k, v[0 if lang == "zh" else 1]) for k, v in LABELS["queue_status"].items()],
            "unit_kind_options": [("", "全部" if lang == "zh" else "Any")]
            + [(k, v[0 if lang == "zh" else 1]) for k, v in LABELS["unit_kind"].items()],
            "results": results,
            "errors": shown_errors,
            **(values or {}),
        },
        status=status,
    )


@router.get("")
async def queue_page(request: Request, staff: Staff) -> HTMLResponse:
    return await _queue_page(staff, QueueView.of(request.query_params))


@router.post("/decisions")
async def bulk_decision(request: Request, staff: Staff) -> HTMLResponse:
    """Decide the rows ticked on the queue page (approve, or reject with a reason); the page shows each
    item's outcome. Not redirected: the outcomes are the answer (sending it again decides nothing twice:
    the decided items are refused as decided)."""
    form = await request.form()
    view = QueueView.of(dict(parse_qsl(form_text(form, "back"))))
    view.filters["kind"] = (
        form_text(form, "kind") if form_text(form, "kind") in ("unit", "person") else view.filters["kind"]
    )
    decision, reason = form_text(form, "decision"), form_text(form, "reason")
    subjects = [value for value in form.getlist("subject_id") if isinstance(value, str) and value]
    values = {"reason": reason, "selected": set(subjects)}
    try:
        check_csrf(request, form)
    except ApiError as expired:
        return await _queue_page(
            staff, view, errors={"bulk": expired.body}, values=values, status=expired.status
        )
    if not subjects:
        nothing = local_error(
            "nothing_selected", "tick at least one row of the queue first", "请先勾选要审核的记录"
        )
        return await _queue_page(staff, view, errors={"subject_id": nothing}, values=values, status=422)
    body = {
        "kind": view.filters["kind"],
        "items": [{"subject_id": s, "decision": decision, "reason": reason or None} for s in subjects],
    }
    try:
        answer = await staff.api.call("POST", "/v1/decisions", json=body)
    except FormErrors as refused:
        if refused.status == 401:
            raise
        shown = {
            "bulk" if not name or name.startswith("items") else name: err
            for name, err in refused.errors.items()
        }
        return await _queue_page(staff, view, errors=shown, values=values, status=refused.status)
    errors: dict[str, ErrorBody] = {}
    missing_reason = next((r for r in answer["results"] if r.get("code") == "reason_required"), None)
    if missing_reason is not None:  # the refusal belongs next to the reason, as well as in its row
        errors["reason"] = ErrorBody(
            code="reason_required", message=missing_reason["message"], message_zh=missing_reason["message_zh"]
        )
    else:
        values["reason"] = ""
        values["selected"] = set()
    return await _queue_page(staff, view, errors=errors, results=answer, values=values)


@router.get("/queue/export")
async def queue_export(request: Request, staff: Staff) -> Response:
    """The filtered queue as CSV or Excel, from the API with the cookie's token, passed on as it comes."""
    view = QueueView.of(request.query_params)
    file_format = "xlsx" if request.query_params.get("format") == "xlsx" else "csv"
    return pass_on(
        await staff.api.stream("GET", "/v1/queue/export", params={**view.api_params, "format": file_format})
    )


# ------------------------------------------------------------------------------------------ subjects


def temporal_ui(ctx: ServiceContext, workflow_id: str) -> str:
    """The workflow's page in the Temporal UI (operators follow each registration there)."""
    namespace = quote(ctx.settings.temporal_namespace, safe="")
    return f"{ctx.settings.temporal_ui_url}/namespaces/{namespace}/workflows/{quote(workflow_id, safe='')}"


def _decision_errors(refused: FormErrors) -> dict[str, ErrorBody]:
    """A refused decision's message goes next to what it concerns: the reason (a rejection needs one,
    and the workflow says so with ``reason_required``) or else the decision itself."""
    shown: dict[str, ErrorBody] = {}
    for name, body in refused.errors.items():
        if body.code == "reason_required" or name == "reason":
            shown["reason"] = body
        else:
            shown["decision"] = body
    return shown


def _decision_body(form: FormData) -> dict[str, Any]:
    return {"decision": form_text(form, "decision"), "reason": form_text(form, "reason") or None}


async def _audit_of(staff: StaffPage, kind: str, subject_id: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = await staff.api.call(
        "GET", "/v1/audit", params={"kind": kind, "subject_id": subject_id, "limit": 100}
    )
    return entries


def _decided_notice(request: Request, lang: Lang) -> str | None:
    """After a decision (redirected here): what it did, in the page's language. Only a status the API
    has is named: the query string is the visitor's to write."""
    status = request.query_params.get("decided")
    if not status:
        return None
    vocabulary = next((v for v in ("registration_status", "unit_status") if status in LABELS[v]), None)
    if vocabulary is None:
        return "审核决定已提交。" if lang == "zh" else "Decision recorded."
    shown = labeller(LABELS, lang)(vocabulary, status)
    return f"审核决定已提交，当前状态：{shown}" if lang == "zh" else f"Decision recorded. Status now: {shown}"


async def _unit_page(
    staff: StaffPage, unit_id: str, *, errors: dict[str, ErrorBody] | None = None,
    values: Mapping[str, Any] | None = None, status: int = 200,
) -> HTMLResponse:  # fmt: skip
    unit = await staff.api.call("GET", f"/v1/units/{quote(unit_id, safe='')}")
    audit = await _audit_of(staff, "unit", unit_id)
    return page(
        staff.request,
        "console/unit.html",
        {
            "unit": unit,
            "audit": audit,
            "pending": bool(unit["rounds"]) and unit["rounds"][0]["state"] == "pending",
            "temporal_url": temporal_ui(staff.ctx, unit_workflow_id(unit["edition"], unit["unit_id"])),
            "notice": _decided_notice(staff.request, staff.lang),
            "errors": errors or {},
            **(values or {}),
        },
        status=status,
    )


async def _registration_page(
    staff: StaffPage, registration_id: str, *, errors: dict[str, ErrorBody] | None = None,
    values: Mapping[str, Any] | None = None, status: int = 200,
) -> HTMLResponse:  # fmt: skip
    person = await staff.api.call("GET", f"/v1/registrations/{quote(registration_id, safe='')}")
    audit = await _audit_of(staff, "person", registration_id)
    workflow_id = registration_workflow_id(person["edition"], person["registration_id"])
    return page(
        staff.request,
        "console/registration.html",
        {
            "person": person,
            "audit": audit,
            "pending": bool(person["rounds"]) and person["rounds"][0]["state"] == "pending",
            "temporal_url": temporal_ui(staff.ctx, workflow_id),
            "workflow_id": workflow_id,
            "notice": _decided_notice(staff.request, staff.lang),
            "errors": errors or {},
            **(values or {}),
        },
        status=status,
    )


@router.get("/units/{unit_id}")
async def unit_page(unit_id: str, staff: Staff) -> HTMLResponse:
    return await _unit_page(staff, unit_id)


@router.post("/units/{unit_id}/decision")
async def decide_unit(unit_id: str, request: Request, staff: Staff) -> Response:
    form = await request.form()
    body = _decision_body(form)
    try:
        check_csrf(request, form)
        answer = await staff.api.call("POST", f"/v1/units/{quote(unit_id, safe='')}/decision", json=body)
    except ApiError as expired:
        return await _unit_page(
            staff, unit_id, errors={"decision": expired.body}, values=body, status=expired.status
        )
    except FormErrors as refused:
        if refused.status in (401, 404):  # the login ended, or the unit is not this mission's
            raise
        return await _unit_page(
            staff, unit_id, errors=_decision_errors(refused), values=body, status=refused.status
        )
    return redirect(f"/console/units/{quote(unit_id, safe='')}?{urlencode({'decided': answer['status']})}")


@router.get("/registrations/{registration_id}")
async def registration_page(registration_id: str, staff: Staff) -> HTMLResponse:
    return await _registration_page(staff, registration_id)


@router.post("/registrations/{registration_id}/decision")
async def decide_registration(registration_id: str, request: Request, staff: Staff) -> Response:
    form = await request.form()
    body = _decision_body(form)
    path = f"/v1/registrations/{quote(registration_id, safe='')}/decision"
    try:
        check_csrf(request, form)
        answer = await staff.api.call("POST", path, json=body)
    except ApiError as expired:
        return await _registration_page(
            staff, registration_id, errors={"decision": expired.body}, values=body, status=expired.status
        )
    except FormErrors as refused:
        if refused.status in (401, 404):
            raise
        return await _registration_page(
            staff, registration_id, errors=_decision_errors(refused), values=body, status=refused.status
        )
    return redirect(
        f"/console/registrations/{quote(registration_id, safe='')}?{urlencode({'decided': answer['status']})}"
    )


@router.get("/registrations/{registration_id}/photo")
async def registration_photo(registration_id: str, staff: Staff) -> Response:
    """The person's photo for the page's ``<img>``: the browser cannot send the API its token."""
    try:
        photo = await staff.api.stream("GET", f"/v1/registrations/{quote(registration_id, safe='')}/photo")
    except FormErrors as refused:
        if refused.status == 401:
            raise
        return Response(status_code=refused.status)  # an image's failure: no page to show in an <img>
    return pass_on(photo)


# ------------------------------------------------------------------------------------------ audit

AUDIT_FILTERS = ("subject_id", "kind", "mission", "reviewer")


@router.get("/audit")
async def audit_page(request: Request, staff: Staff) -> HTMLResponse:
    filters = {name: (request.query_params.get(name) or "").strip() for name in AUDIT_FILTERS}
    try:
        number = max(int(request.query_params.get("page") or 1), 1)
    except ValueError:
        number = 1
    shown = {name: value for name, value in filters.items() if value}
    params = {
        **shown,
        "limit": PAGE_SIZE + 1,
        "offset": (number - 1) * PAGE_SIZE,
    }  # one more: is there a next?
    errors: dict[str, ErrorBody] = {}
    status = 200
    try:
        entries: list[dict[str, Any]] = await staff.api.call("GET", "/v1/audit", params=params)
    except FormErrors as refused:
        if refused.status == 401:
            raise
        entries, status = [], refused.status
        errors = {name if name in AUDIT_FILTERS else "filters": body for name, body in refused.errors.items()}
    lang = staff.lang

    def url(**changes: Any) -> str:
        return "?" + urlencode({**shown, **changes})

    return page(
        request,
        "console/audit.html",
        {
            "filters": filters,
            "entries": entries[:PAGE_SIZE],
            "page_number": number,
            "has_next": len(entries) > PAGE_SIZE,
            "url": url,
            "mission_options": _mission_options(staff),
            "kind_options": [("", "全部" if lang == "zh" else "Any")]
            + [(k, LABELS["kind"][k][0 if lang == "zh" else 1]) for k in ("unit", "person")],
            "errors": errors,
        },
        status=status,
    )


# ------------------------------------------------------------------------------------------ statistics

# The figures the chart draws for each row, with their colours (distinct for colour-blind readers too).
CHART_SERIES: list[tuple[str, str, str, str]] = [
    ("people_registered", "报名人数", "People registered", "#0b3d91"),
    ("paid", "已缴费", "Paid", "#e08a00"),
    ("approved", "人员审核通过", "Approved", "#1b6e20"),
]
TABLE_FIGURES: list[tuple[str, str, str]] = [
    ("units_registered", "报名单位数", "Units registered"),
    ("units_under_review", "单位审核中", "Units under review"),
    ("units_approved", "单位审核通过", "Units approved"),
    ("people_registered", "报名人数", "People registered"),
    ("under_review", "审核中", "Under review"),
    ("unpaid", "未缴费", "Unpaid"),
    ("paid", "已缴费", "Paid"),
    ("approved", "人员审核通过", "Approved"),
    ("certificates_issued", "已制证", "Certificates issued"),
    ("review_failed", "人员审核未通过", "Personnel review failed"),
    ("refunded", "已退款", "Refunded"),
    ("expired", "逾期未缴费", "Payment deadline passed"),
    ("withdrawn", "已撤回", "Withdrawn"),
]


@dataclass
class ChartBar:
    series: str
    value: int
    y: float
    width: float
    colour: str


@dataclass
class ChartGroup:
    label: str  # as drawn (cut to fit)
    title: str  # in full (the bars' tooltips)
    y: float
    bars: list[ChartBar]


@dataclass
class BarChart:
    """Horizontal grouped bars, laid out here so the page draws them as plain SVG (no script)."""

    width: int
    height: int
    label_width: int
    groups: list[ChartGroup]
    legend: list[tuple[str, str]]


def bar_chart(rows: Iterable[tuple[str, Mapping[str, Any]]], lang: Lang) -> BarChart:
    """One group of bars per row (its label, its figures) that has any figure to draw."""
    label_width, plot_width, bar, gap = 220, 420, 12, 14
    shown = [(label, figures) for label, figures in rows if any(figures[key] for key, *_ in CHART_SERIES)]
    top = max((int(figures[key]) for _, figures in shown for key, *_ in CHART_SERIES), default=0) or 1
    groups: list[ChartGroup] = []
    y = 30.0  # below the legend
    for label, figures in shown:
        bars = []
        for index, (key, zh, en, colour) in enumerate(CHART_SERIES):
            value = int(figures[key])
            bars.append(
                ChartBar(zh if lang == "zh" else en, value, y + index * bar, plot_width * value / top, colour)
            )
        groups.append(ChartGroup(_fit(label, label_width - 12), label, y, bars))
        y += len(CHART_SERIES) * bar + gap
    legend = [(zh if lang == "zh" else en, colour) for _, zh, en, colour in CHART_SERIES]
    return BarChart(label_width + plot_width + 60, int(y) + 4, label_width, groups, legend)


def _fit(label: str, width: float) -> str:
    """The label cut (with an ellipsis) to about ``width`` pixels of 12px text: the chart's labels sit in
    a column of their own; the table below has the full names."""
    used = 0.0
    for index, char in enumerate(label):
        used += 12.0 if ord(char) > 0x2E7F else 6.8  # CJK characters are square, Latin ones narrower
        if used > width:
            return label[: max(index - 1, 1)] + "…"
    return label


def _row_label(row: Mapping[str, Any], lang: Lang) -> str:
    name = row.get("mission_name_zh" if lang == "zh" else "mission_name_en") or row.get("mission") or ""
    sub = row.get("sub_mission_name_zh" if lang == "zh" else "sub_mission_name_en")
    industrial = row.get("industrial_mission_name_zh" if lang == "zh" else "industrial_mission_name_en")
    if industrial:
        return ("其中：" if lang == "zh" else "of which: ") + str(industrial)
    return str(sub) if sub else str(name)


@router.get("/statistics")
async def statistics_page(request: Request, staff: Staff) -> HTMLResponse:
    mission = (request.query_params.get("mission") or "").strip()
    lang = staff.lang
    errors: dict[str, ErrorBody] = {}
    status = 200
    try:
        result: dict[str, Any] | None = await staff.api.call(
            "GET", "/v1/statistics", params={"mission": mission} if mission else {}
        )
    except FormErrors as refused:
        if refused.status == 401:
            raise
        result, status = None, refused.status
        errors = {"mission": next(iter(refused.errors.values()))}  # the one filter there is
    chart = None
    if result is not None:
        missions = [row for row in result["rows"] if row["level"] == "mission"]
        # Every mission: one bar group each; one mission: its sub-missions'.
        charted = (
            missions if len(missions) > 1 else [r for r in result["rows"] if r["level"] != "from_industrial"]
        )
        chart = bar_chart([(_row_label(row, lang), row) for row in charted], lang)
    return page(
        request,
        "console/statistics.html",
        {
            "mission": mission,
            "result": result,
            "chart": chart,
            "figures": [(key, zh if lang == "zh" else en) for key, zh, en in TABLE_FIGURES],
            "row_label": lambda row: _row_label(row, lang),
            "mission_options": _mission_options(staff),
            "export_url": lambda fmt: (
                "/console/statistics/export?"
                + urlencode({"format": fmt, **({"mission": mission} if mission else {})})
            ),
            "errors": errors,
        },
        status=status,
    )


@router.get("/statistics/export")
async def statistics_export(request: Request, staff: Staff) -> Response:
    mission = (request.query_params.get("mission") or "").strip()
    file_format = "xlsx" if request.query_params.get("format") == "xlsx" else "csv"
    params = {"format": file_format, **({"mission": mission} if mission else {})}
    return pass_on(await staff.api.stream("GET", "/v1/statistics", params=params))
