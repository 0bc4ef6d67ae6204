"""Finance's pages at ``/finance``: bank transfers awaiting confirmation (with their vouchers and the
decision), orders whose money does not match and their ledgers (who paid: the unit as registered and
the people paid for; payments, refunds, invoices), and the refunds, in Chinese and English. Every
list names each order's unit (one ``GET /v1/finance/units`` per page). Included in the payment app with ``app.include_router(pages.router)``.

Finance staff log in with their review-service staff login (the token is kept in the HttpOnly cookie
``expo_finance``); the pages call this service's public API over HTTP at ``settings.payment_url``
with it, as any client would, so what a role may see and decide is the API's business: finance staff
of a mission see their mission's orders only (another's is a 404 page), observers read and see no
decision form. The login, the cookie and the error pages are ``shared/pages.py``'s; how pages are
built, ``shared/web.py``'s. Nothing needs JavaScript.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

import httpx
from fastapi import Depends, Request, Response
from fastapi.responses import HTMLResponse

from shared.http import ApiError, ErrorBody
from shared.labels import LABELS as DOMAIN_LABELS
from shared.labels import labeller, options
from shared.pages import StaffPage, StaffPages, form_text
from shared.types import OrderStatus
from shared.web import FormErrors, Lang, check_csrf, page_templates, pass_on, redirect

log = logging.getLogger(__name__)
PAGE_SIZE = 50

# The domain's words are shared/labels.py's; the finance pages' own vocabulary, (Chinese, English).
LABELS: dict[str, dict[str, tuple[str, str]]] = {
    **DOMAIN_LABELS,
    "view": {
        "overpaid": ("多付", "Overpaid"),
        "underpaid": ("少付", "Underpaid"),
        "paid_but_expired": ("已付款但报名已结束", "Paid, but the registration had closed"),
    },
}

SITE = StaffPages(
    prefix="/finance",
    cookie="expo_finance",  # not the console's: cookies are shared by every port of a host
    templates=page_templates(Path(__file__).parent / "templates"),
    api_url=lambda settings: settings.payment_url,
    deciding_roles=frozenset({"finance", "administrator"}),  # as auth.FinanceStaff.decides
    labels=LABELS,
    layout="finance/layout.html",
    login_title=("财务人员登录", "Finance login"),
    login_hint=(
        "请使用审核系统的工作人员账号登录（财务人员、管理员或观察员）。",
        "Log in with your staff login of the review system (finance, administrator or observer).",
    ),
    home_id="back-to-transfers",
    home_text=("返回银行转账确认", "Back to the bank transfers"),
)
router = SITE.router()
page = SITE.page
Finance = Annotated[StaffPage, Depends(SITE.staff)]


def _page_number(request: Request) -> int:
    try:
        return max(int(request.query_params.get("page") or 1), 1)
    except ValueError:
        return 1


def _lang_pick(lang: Lang, zh: str, en: str) -> str:
    return zh if lang == "zh" else en


def _shown(refused: FormErrors, fields: tuple[str, ...], other: str) -> dict[str, ErrorBody]:
    """A refusal's messages by the input they concern: one of ``fields``, else ``other``."""
    return {name if name in fields else other: body for name, body in refused.errors.items()}


def _quoted(value: str) -> str:
    return quote(value, safe="")


async def _unit_names(staff: StaffPage, unit_ids: Iterable[str]) -> dict[str, str]:
    """The names of the units a page lists, by id, in one request. Without them (the registration
    service does not answer) the list still shows, with the units' ids: what finance decides on is
    the order."""
    wanted = list(dict.fromkeys(unit_ids))
    if not wanted:
        return {}
    try:
        units = await staff.api.call("GET", "/v1/finance/units", params={"unit_id": wanted})
    except httpx.HTTPError as exc:
        log.warning("units' names unavailable for a finance list: %s", exc)
        return {}
    return {unit["unit_id"]: unit["name"] for unit in units}


# ------------------------------------------------------------------------------------------ transfers


def _decision_errors(refused: FormErrors) -> dict[str, ErrorBody]:
    """A refused decision's message goes next to what it concerns: the bank's reference (a
    confirmation needs one: ``bank_reference_required``), the reason (a rejection needs one), or else
    the decision itself."""
    shown: dict[str, ErrorBody] = {}
    for name, body in refused.errors.items():
        if body.code == "bank_reference_required" or name == "bank_reference":
            shown["bank_reference"] = body
        elif body.code == "reason_required" or name == "reason":
            shown["reason"] = body
        else:
            shown["decision"] = body
    return shown


def _decided_notice(request: Request, lang: Lang) -> str | None:
    """After a decision (redirected here): what it did. Only an order number and a status the API has
    are repeated: the query string is the visitor's to write."""
    order_no = request.query_params.get("decided") or ""
    status = request.query_params.get("now") or ""
    if not order_no.isalnum() or status not in LABELS["order_status"]:
        return None
    shown = labeller(LABELS, lang)("order_status", status)
    return _lang_pick(
        lang, f"订单 {order_no} 已处理，当前状态：{shown}", f"Order {order_no} decided. Status now: {shown}"
    )


async def _transfers_page(
    staff: StaffPage,
    *,
    errors: dict[str, ErrorBody] | None = None,
    decided_order: str | None = None,
    values: Mapping[str, Any] | None = None,
    status: int = 200,
) -> HTMLResponse:
    request, lang = staff.request, staff.lang
    wanted = request.query_params.get("status") or OrderStatus.AWAITING_CONFIRMATION.value
    if wanted not in LABELS["order_status"]:
        wanted = OrderStatus.AWAITING_CONFIRMATION.value
    number = _page_number(request)
    params = {
        "status": wanted,
        "limit": PAGE_SIZE + 1,
        "offset": (number - 1) * PAGE_SIZE,
    }  # one more: a next?
    transfers: list[dict[str, Any]] = await staff.api.call("GET", "/v1/transfers", params=params)
    shown = transfers[:PAGE_SIZE]

    def url(**changes: Any) -> str:
        return "?" + urlencode({"status": wanted, **changes})

    return page(
        request,
        "finance/transfers.html",
        {
            "transfers": shown,
            "unit_names": await _unit_names(staff, (order["unit_id"] for order in shown)),
            "status": wanted,
            "status_options": options(LABELS, "order_status", lang),
            "page_number": number,
            "has_next": len(transfers) > PAGE_SIZE,
            "url": url,
            "decided_order": decided_order,
            "values": values or {},
            "notice": _decided_notice(request, lang),
            "errors": errors or {},
        },
        status=status,
    )


@router.get("")
async def transfers_page(staff: Finance) -> HTMLResponse:
    return await _transfers_page(staff)


@router.post("/transfers/{order_no}/decision")
async def decide_transfer(order_no: str, request: Request, staff: Finance) -> Response:
    """Confirm a transfer with the bank's reference, or reject its voucher with a reason; a refusal is
    shown in that transfer's form, next to the input it concerns, with what was typed kept."""
    form = await request.form()
    body = {
        "decision": form_text(form, "decision"),
        "bank_reference": form_text(form, "bank_reference") or None,
        "reason": form_text(form, "reason") or None,
    }
    try:
        check_csrf(request, form)
        answer = await staff.api.call("POST", f"/v1/orders/{_quoted(order_no)}/transfer-decision", json=body)
    except ApiError as expired:
        return await _transfers_page(
            staff,
            errors={"decision": expired.body},
            decided_order=order_no,
            values=body,
            status=expired.status,
        )
    except FormErrors as refused:
        if refused.status in (401, 404):  # the login ended, or the order is not this mission's
            raise
        return await _transfers_page(
            staff,
            errors=_decision_errors(refused),
            decided_order=order_no,
            values=body,
            status=refused.status,
        )
    return redirect("/finance?" + urlencode({"decided": order_no, "now": answer["status"]}))


@router.get("/transfers/{order_no}/voucher")
async def transfer_voucher(order_no: str, request: Request, staff: Finance) -> Response:
    """The voucher, from the API with the cookie's token, handed on as it comes (the browser cannot
    send the API the token). ``key``: an earlier voucher of the order."""
    key = request.query_params.get("key")
    return pass_on(
        await staff.api.stream(
            "GET", f"/v1/transfers/{_quoted(order_no)}/voucher", params={"key": key} if key else {}
        )
    )


# ------------------------------------------------------------------------------------------ orders


@router.get("/orders")
async def orders_page(request: Request, staff: Finance) -> HTMLResponse:
    lang = staff.lang
    view = request.query_params.get("view") or "overpaid"
    number = _page_number(request)
    params = {"view": view, "limit": PAGE_SIZE, "offset": (number - 1) * PAGE_SIZE}
    errors: dict[str, ErrorBody] = {}
    status = 200
    try:
        result: dict[str, Any] | None = await staff.api.call("GET", "/v1/finance/orders", params=params)
    except FormErrors as refused:
        if refused.status in (401, 403):
            raise
        result, status = None, refused.status
        errors = _shown(refused, ("view",), "view")  # the one filter there is
    total = int(result["total"]) if result else 0
    units = (order["unit_id"] for order in result["items"]) if result else ()
    return page(
        request,
        "finance/orders.html",
        {
            "view": view,
            "result": result,
            "unit_names": await _unit_names(staff, units),
            "view_options": options(LABELS, "view", lang),
            "page_number": number,
            "pages": max(math.ceil(total / PAGE_SIZE), 1),
            "url": lambda **changes: "?" + urlencode({"view": view, **changes}),
            "errors": errors,
        },
        status=status,
    )


def _reconciled_notice(request: Request, lang: Lang) -> str | None:
    """After reconciling (redirected here): what the gateway had that we did not."""
    found, known = request.query_params.get("reconciled"), request.query_params.get("gateway")
    if found is None or not found.isdigit():
        return None
    if known == "0":
        return _lang_pick(lang, "支付网关没有该订单的记录。", "The gateway has no record of this order.")
    if found == "0":
        return _lang_pick(
            lang,
            "已对账：支付网关的交易均已入账。",
            "Reconciled: every gateway transaction was already recorded.",
        )
    return _lang_pick(
        lang,
        f"已对账：补记了 {found} 笔未收到回调的交易。",
        f"Reconciled: {found} transaction(s) whose callback never came are now recorded.",
    )


async def _order_page(
    staff: StaffPage, order_no: str, *, errors: dict[str, ErrorBody] | None = None, status: int = 200
) -> HTMLResponse:
    """The order's page: who paid (its unit as registered, the people it pays for), the ledger and the
    invoices."""
    quoted = _quoted(order_no)
    order = await staff.api.call("GET", f"/v1/finance/orders/{quoted}")
    ledger = await staff.api.call("GET", f"/v1/orders/{quoted}/ledger")
    return page(
        staff.request,
        "finance/order.html",
        {
            "order": order,
            "ledger": ledger,
            "notice": _reconciled_notice(staff.request, staff.lang),
            "errors": errors or {},
        },
        status=status,
    )


@router.get("/orders/{order_no}")
async def order_page(order_no: str, staff: Finance) -> HTMLResponse:
    return await _order_page(staff, order_no)


@router.post("/orders/{order_no}/reconcile")
async def reconcile_order(order_no: str, request: Request, staff: Finance) -> Response:
    """Ask the gateway for the order's payments whose callback never came (safe to repeat)."""
    form = await request.form()
    try:
        check_csrf(request, form)
        answer = await staff.api.call("POST", f"/v1/orders/{_quoted(order_no)}/reconcile")
    except ApiError as expired:
        return await _order_page(staff, order_no, errors={"reconcile": expired.body}, status=expired.status)
    except FormErrors as refused:
        if refused.status in (401, 404):
            raise
        shown = _shown(refused, (), "reconcile")
        return await _order_page(staff, order_no, errors=shown, status=refused.status)
    query = {"reconciled": len(answer["found"]), "gateway": int(bool(answer["gateway_knows_order"]))}
    return redirect(f"/finance/orders/{_quoted(order_no)}?{urlencode(query)}")


@router.get("/invoices/{invoice_no}.pdf")
async def invoice_pdf(invoice_no: str, staff: Finance) -> Response:
    """An invoice's PDF, from the API with the cookie's token."""
    return pass_on(await staff.api.stream("GET", f"/v1/invoices/{_quoted(invoice_no)}.pdf"))


# ------------------------------------------------------------------------------------------ refunds

REFUND_FILTERS = ("status", "order_no")


@router.get("/refunds")
async def refunds_page(request: Request, staff: Finance) -> HTMLResponse:
    lang = staff.lang
    filters = {name: (request.query_params.get(name) or "").strip() for name in REFUND_FILTERS}
    shown = {name: value for name, value in filters.items() if value}
    number = _page_number(request)
    params = {**shown, "limit": PAGE_SIZE, "offset": (number - 1) * PAGE_SIZE}
    errors: dict[str, ErrorBody] = {}
    status = 200
    try:
        result: dict[str, Any] | None = await staff.api.call("GET", "/v1/finance/refunds", params=params)
    except FormErrors as refused:
        if refused.status in (401, 403):
            raise
        result, status = None, refused.status
        errors = _shown(refused, REFUND_FILTERS, "filters")
    total = int(result["total"]) if result else 0
    units = (refund["unit_id"] for refund in result["items"]) if result else ()
    return page(
        request,
        "finance/refunds.html",
        {
            "filters": filters,
            "result": result,
            "unit_names": await _unit_names(staff, units),
            "status_options": [
                ("", _lang_pick(lang, "全部", "Any")),
                *options(LABELS, "refund_status", lang),
            ],
            "page_number": number,
            "pages": max(math.ceil(total / PAGE_SIZE), 1),
            "url": lambda **changes: "?" + urlencode({**shown, **changes}),
            "errors": errors,
        },
        status=status,
    )
