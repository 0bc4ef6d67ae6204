"""The buyer portal (``/portal``): server-rendered pages in Chinese and English for signing up, logging in,
registering the unit and its people with their photos, following each person's progress, and paying.

The pages are a client of the public APIs like the app and the mini-program: every handler calls the
registration, payment and certificate services over HTTP (``ctx.settings``' URLs) with the buyer's
bearer token, which the browser keeps in an HttpOnly cookie and never sees. What the APIs refuse comes
back beside the input named by the refusal's ``field``, in the page's language, with everything typed
kept. Form input names are the API's field paths (``contact.mobile``, ``delivery_address.province``)
so that a refusal finds its input without a table. Nothing needs JavaScript.

This module is the portal's base (routing, helpers, accounts, the unit, the home page) and its payment,
invoice and returning-buyer pages; the pages of the unit's people (a new person with the photo, the
progress page, changing a person's data, substitution, withdrawal) are in ``portal_people.py``.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

import httpx
import segno
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from markupsafe import Markup
from starlette.datastructures import FormData, UploadFile

from services.registration import validation
from services.registration.progress import NEXT_ACTION
from shared.catalogue import Mission, SubMission, load_missions
from shared.http import ApiError, ErrorBody
from shared.labels import LABELS, labeller, options
from shared.pages import LoginRequired, PageSite, first_error
from shared.security import BUYER_TOKEN_LIFETIME
from shared.service import ServiceContext, context
from shared.types import MissionKind, RegistrationStatus
from shared.web import (
    CSRF_COOKIE,
    Api,
    FormErrors,
    Lang,
    check_csrf,
    lang_of,
    message,
    page_templates,
    pass_on,
    posted_form,
    redirect,
    render,
    set_login_cookie,
)

log = logging.getLogger(__name__)

BUYER_COOKIE = "expo_buyer"
LOGIN_SECONDS = int(BUYER_TOKEN_LIFETIME.total_seconds())  # the cookie lasts as long as the token
TEMPLATES = page_templates(Path(__file__).parent / "templates")

# Messages a redirect asks the next page to show (``?notice=``): keys only, so no text can be injected.
NOTICES: dict[str, tuple[str, str]] = {
    "welcome": (
        "账户已创建并登录。请先登记单位信息。",
        "Your account is open and you are logged in. First register your unit.",
    ),
    "logged_in": ("已登录。", "You are logged in."),
    "logged_out": ("已退出登录。", "You have logged out."),
    "unit_registered": (
        "单位信息已提交，等待交易团审核。现在可以添加参会人员。",
        "Your unit has been submitted for the trade mission's review. You can now add people.",
    ),
    "unit_changed": ("单位信息已修改并重新提交审核。", "Your unit's data has been changed and resubmitted."),
    "unit_first": ("请先登记单位信息，再添加人员。", "Register your unit first, then add people."),
    "person_registered": ("人员已登记，照片已上传。", "The person is registered and the photo uploaded."),
    "photo_uploaded": ("照片已上传并通过检查。", "The photo has been uploaded and checked."),
    "person_changed": ("个人信息已修改。", "The person's data has been changed."),
    "person_substituted": (
        "已换人：新人员的信息和照片已提交，缴费保留，将进行人员审核。",
        "Substituted: the new person's data and photo are in, the payment stays, and they will be reviewed.",
    ),
    "voucher_uploaded": (
        "汇款凭证已提交，等待财务确认。",
        "The remittance voucher has been submitted for finance's confirmation.",
    ),
    "code_sent": (
        "如该账户存在，验证码已发送，10分钟内有效。请填写验证码并设置新密码。",
        "If the account exists, a code valid for 10 minutes has been sent. Enter it and choose a new password.",
    ),
    "password_reset": (
        "密码已重置，请用新密码登录。",
        "Your password has been reset: log in with the new one.",
    ),
    "withdrawn": ("报名已撤回。", "The registration has been withdrawn."),
    "invoice_issued": (
        "发票已开具，可在下方下载PDF。",
        "The invoice has been issued: download its PDF below.",
    ),
}

Ctx = Annotated[ServiceContext, Depends(context)]


# ------------------------------------------------------------------------------------------ routing


class Portal(PageSite):
    """The portal's routes turn what a page handler did not handle into a page (``shared/pages.py``'s
    ``PageSite``): a login that is needed into the login page (a form post comes back to its form), a
    refused form token or an unknown id into an explained error page, a service that does not answer
    into a "try again" page (never a stack trace or the APIs' JSON)."""

    def page(
        self, request: Request, name: str, values: Mapping[str, Any] | None = None, *, status: int = 200
    ) -> HTMLResponse:
        return page(request, name, dict(values or {}), status_code=status)

    def error_page(self, request: Request, status: int, problem: ErrorBody) -> HTMLResponse:
        """A page that explains a refusal (expired form, not found, unavailable) and offers a way on."""
        heading = PROBLEM_HEADINGS.get(problem.code, ("无法完成操作", "This could not be done"))
        context = {"status": status, "problem": problem, "heading": heading}
        return page(request, "portal/problem.html", context, status_code=status)


SITE = Portal(prefix="/portal", cookie=BUYER_COOKIE, templates=TEMPLATES, posts_return_to_form=True)
router = APIRouter(prefix=SITE.prefix, route_class=SITE.route_class(), include_in_schema=False)

PROBLEM_HEADINGS: dict[str, tuple[str, str]] = {
    "form_expired": ("表单已过期", "This form has expired"),
    "not_found": ("未找到", "Not found"),
    "unavailable": ("服务暂时无法访问", "Service unavailable"),
}


# ------------------------------------------------------------------------------------------ helpers


def page(
    request: Request, name: str, context: dict[str, Any] | None = None, *, status_code: int = 200
) -> HTMLResponse:
    """A portal page: the shared helpers (``t``, ``error``, ``csrf``, ``when``, ``money``) and the
    portal's (``label``, ``next_action``, ``mission_name``, the logged-in state, a notice)."""
    lang = lang_of(request)

    label = labeller(LABELS, lang)

    def next_action(status: str) -> str:
        action = NEXT_ACTION.get(RegistrationStatus(status))
        return (action[0] if lang == "zh" else action[1]) if action else ""

    def mission_name(code: str | None, sub_code: str | None = None) -> str:
        mission = load_missions().get(code or "")
        if mission is None:
            return code or ""
        name = mission.name_zh if lang == "zh" else mission.name_en
        sub = mission.sub_mission(sub_code) if sub_code else None
        if sub is not None:
            name += f" · {sub.name_zh if lang == 'zh' else sub.name_en}"
        return name

    def choices(group: str, *leave_out: str) -> list[tuple[str, str]]:
        """A choice's options (code, label) in the page's language."""
        return [(code, shown) for code, shown in options(LABELS, group, lang) if code not in leave_out]

    values: dict[str, Any] = {
        "label": label,
        "options": choices,
        "next_action": next_action,
        "mission_name": mission_name,
        "logged_in": BUYER_COOKIE in request.cookies,
        "path": request.url.path,
        "values": {},
    }
    notice = NOTICES.get(request.query_params.get("notice", ""))
    if notice:
        values["notice"] = notice[0] if lang == "zh" else notice[1]
    return render(TEMPLATES, request, name, values | (context or {}), status_code=status_code)


def refused_page(
    request: Request, name: str, refused: FormErrors, context: dict[str, Any], fields: set[str]
) -> HTMLResponse:
    """The form again with the API's refusal beside the inputs it names; a refusal naming no input of
    this form is shown above it. A lost login still goes to the login page."""
    if refused.status == 401:
        raise refused
    errors: dict[str, ErrorBody] = {}
    for field, body in refused.errors.items():
        errors.setdefault(field if field in fields else "", body)
    status = 400 if refused.status in (403, 404) else refused.status
    return page(request, name, context | {"errors": errors}, status_code=status)


def invalid(field: str, code: str, zh: str, en: str) -> FormErrors:
    """A refusal the page makes itself (before asking an API), shaped as the APIs' are."""
    return FormErrors({field: ErrorBody(code=code, message=en, message_zh=zh, field=field)}, 422)


SECRET_INPUTS = {
    "csrf",
    "password",
    "password_confirm",
    "new_password",
    "new_password_confirm",
}  # never shown again


def texts(form: FormData) -> dict[str, str]:
    """What was typed, to send on and to show again: text inputs only, trimmed; no passwords."""
    return {
        key: value.strip()
        for key, value in form.multi_items()
        if isinstance(value, str) and key not in SECRET_INPUTS
    }


def optional(value: str | None) -> str | None:
    return value or None


@dataclass
class Buyer:
    """The logged-in buyer's calls to the services, for one request."""

    ctx: ServiceContext
    token: str

    @property
    def registration(self) -> Api:
        return Api(self.ctx.http, self.ctx.settings.registration_url, self.token)

    @property
    def payment(self) -> Api:
        return Api(self.ctx.http, self.ctx.settings.payment_url, self.token)

    @property
    def certificate(self) -> Api:
        return Api(self.ctx.http, self.ctx.settings.certificate_url, self.token)

    async def account(self) -> dict[str, Any]:
        me: dict[str, Any] = await self.registration.call("GET", "/v1/accounts/me")
        return me

    async def unit_and_people(self) -> tuple[dict[str, Any], dict[str, Any] | None, list[dict[str, Any]]]:
        """The account, its unit (None until registered) and the unit's people."""
        me = await self.account()
        if not me["unit_id"]:
            return me, None, []
        unit: dict[str, Any] = await self.registration.call("GET", f"/v1/units/{me['unit_id']}")
        people: list[dict[str, Any]] = await self.registration.call(
            "GET", f"/v1/units/{me['unit_id']}/people"
        )
        return me, unit, people


async def buyer(request: Request, ctx: Ctx) -> Buyer:
    token = request.cookies.get(BUYER_COOKIE)
    if not token:
        raise LoginRequired
    return Buyer(ctx, token)


LoggedIn = Annotated[Buyer, Depends(buyer)]


def anonymous(ctx: ServiceContext) -> Api:
    return Api(ctx.http, ctx.settings.registration_url)


async def edition_of(ctx: ServiceContext) -> dict[str, Any]:
    """The edition's calendar and fees, as the public API gives them."""
    edition: dict[str, Any] = await anonymous(ctx).call("GET", f"/v1/editions/{ctx.settings.edition}")
    return edition


def expo_days(edition: dict[str, Any]) -> list[str]:
    """The expo's days (Beijing dates): the days of entrance a person may choose."""
    first = datetime.fromisoformat(edition["expo_opens"]["beijing"]).date()
    last = datetime.fromisoformat(edition["expo_closes"]["beijing"]).date()
    return [(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]


async def put_object(ctx: ServiceContext, upload: dict[str, Any], data: bytes) -> None:
    """Upload to the presigned URL an API gave, with exactly the headers it was signed with."""
    response = await ctx.http.put(upload["url"], content=data, headers=upload["headers"])
    response.raise_for_status()


# Files larger than this are refused before they are read: far above what the APIs accept (a photo 2
# MiB, a voucher 10 MiB), whose own refusals then explain their limits.
MAX_UPLOAD_BYTES = 20 * 1024 * 1024


@dataclass(frozen=True)
class Chosen:
    """A file chosen in a form."""

    data: bytes
    content_type: str
    suffix: str  # of its name, in lower case (".pdf")


async def file_of(form: FormData, name: str) -> Chosen | FormErrors | None:
    """The file chosen in ``name``; None if none was; the refusal (beside it) if it is far too large."""
    upload = form.get(name)
    if not isinstance(upload, UploadFile) or not upload.filename:
        return None
    if (upload.size or 0) > MAX_UPLOAD_BYTES:
        return invalid(
            name,
            "file_too_large",
            "文件过大，请选择较小的文件",
            "the file is too large: choose a smaller one",
        )
    suffix = Path(upload.filename).suffix.lower()
    return Chosen(await upload.read(), upload.content_type or "", suffix)


# ------------------------------------------------------------------------------------------ accounts


@router.get("/signup")
async def signup_form(request: Request) -> HTMLResponse:
    return page(request, "portal/signup.html", {"values": {"kind": "unit"}})


@router.post("/signup")
async def signup(request: Request, ctx: Ctx) -> Response:
    """Open the account (``POST /v1/accounts``) and log in with it at once (``POST /v1/sessions``)."""
    form = await posted_form(request)
    values = texts(form)
    password = str(form.get("password") or "")
    context = {"values": values}
    if password != str(form.get("password_confirm") or ""):
        mismatch = invalid(
            "password_confirm", "passwords_differ", "两次输入的密码不一致", "the two passwords differ"
        )
        return refused_page(request, "portal/signup.html", mismatch, context, {"password_confirm"})
    api = anonymous(ctx)
    body = {
        "kind": values.get("kind", ""),
        "email": values.get("email", ""),
        "mobile": values.get("mobile", ""),
    }
    try:
        await api.call("POST", "/v1/accounts", json=body | {"password": password})
        session = await api.call("POST", "/v1/sessions", json={"login": body["email"], "password": password})
    except FormErrors as refused:
        return refused_page(
            request, "portal/signup.html", refused, context, {"kind", "email", "mobile", "password"}
        )
    return logged_in(request, session["token"], "/portal?notice=welcome")


def logged_in(request: Request, token: str, to: str) -> Response:
    response = redirect(to)
    set_login_cookie(response, request, BUYER_COOKIE, token, LOGIN_SECONDS)
    return response


@router.get("/login")
async def login_form(request: Request) -> HTMLResponse:
    return page(request, "portal/login.html", {"next": SITE.safe_next(request.query_params.get("next"))})


@router.post("/login")
async def login(request: Request, ctx: Ctx) -> Response:
    """Log in (``POST /v1/sessions``): the token goes into an HttpOnly cookie for as long as it lasts."""
    form = await posted_form(request)
    values = texts(form)
    to = SITE.safe_next(values.get("next") or request.query_params.get("next"))
    try:
        session = await anonymous(ctx).call(
            "POST",
            "/v1/sessions",
            json={"login": values.get("login", ""), "password": str(form.get("password") or "")},
        )
    except FormErrors as refused:
        # A wrong password answers 401 here: it is the form's refusal, not a lost login.
        refused = FormErrors(refused.errors, 400 if refused.status == 401 else refused.status)
        return refused_page(request, "portal/login.html", refused, {"values": values, "next": to}, {"login"})
    return logged_in(request, session["token"], to)


RESET_FIELDS = {"login", "channel"}
RESET_CONFIRM_FIELDS = {"login", "code", "new_password", "new_password_confirm"}


@router.get("/password-reset")
async def password_reset_form(request: Request) -> HTMLResponse:
    """Forgot the password: a 6-digit code by SMS to the account's mobile or to its email."""
    return page(request, "portal/password_reset.html", {"values": {"channel": "sms"}})


@router.post("/password-reset")
async def password_reset(request: Request, ctx: Ctx) -> Response:
    """``POST /v1/password-resets``: the same answer whether the account exists; then the code's form."""
    form = await posted_form(request)
    values = texts(form)
    body = {"login": values.get("login", ""), "channel": values.get("channel") or "sms"}
    try:
        await anonymous(ctx).call("POST", "/v1/password-resets", json=body)
    except FormErrors as refused:
        return refused_page(request, "portal/password_reset.html", refused, {"values": values}, RESET_FIELDS)
    return redirect(
        "/portal/password-reset/confirm?" + urlencode({"login": body["login"], "notice": "code_sent"})
    )


@router.get("/password-reset/confirm")
async def password_reset_confirm_form(request: Request) -> HTMLResponse:
    login = request.query_params.get("login", "").strip()
    return page(request, "portal/password_reset_confirm.html", {"values": {"login": login}})


@router.post("/password-reset/confirm")
async def password_reset_confirm(request: Request, ctx: Ctx) -> Response:
    """``POST /v1/password-resets/confirm`` with the code and the new password (typed twice); then the
    login page. A wrong or expired code, too many tries or a weak password come back beside their input."""
    form = await posted_form(request)
    values = texts(form)
    password = str(form.get("new_password") or "")
    context = {"values": values}
    if password != str(form.get("new_password_confirm") or ""):
        mismatch = invalid(
            "new_password_confirm", "passwords_differ", "两次输入的密码不一致", "the two passwords differ"
        )
        return refused_page(
            request, "portal/password_reset_confirm.html", mismatch, context, RESET_CONFIRM_FIELDS
        )
    body = {"login": values.get("login", ""), "code": values.get("code", ""), "new_password": password}
    try:
        await anonymous(ctx).call("POST", "/v1/password-resets/confirm", json=body)
    except FormErrors as refused:
        return refused_page(
            request, "portal/password_reset_confirm.html", refused, context, RESET_CONFIRM_FIELDS
        )
    return redirect("/portal/login?notice=password_reset")


@router.post("/logout")
async def logout(request: Request, ctx: Ctx) -> Response:
    """End the session at the API (``DELETE /v1/sessions/current``) and forget the cookie."""
    await posted_form(request)  # the form token only
    token = request.cookies.get(BUYER_COOKIE)
    if token:
        with contextlib.suppress(FormErrors):  # already expired or revoked: logged out all the same
            await Api(ctx.http, ctx.settings.registration_url, token).call("DELETE", "/v1/sessions/current")
    response = redirect("/portal/login?notice=logged_out")
    response.delete_cookie(BUYER_COOKIE, path="/")
    return response


# ------------------------------------------------------------------------------------------ home


@router.get("")
async def home(request: Request, me: LoggedIn) -> HTMLResponse:
    """The account's unit (or the way to register it) and its people, each with where they stand."""
    account, unit, people = await me.unit_and_people()
    return page(
        request,
        "portal/home.html",
        {
            "account": account,
            "unit": unit,
            "people": people,
            "unpaid": [p for p in people if p["status"]["code"] == RegistrationStatus.UNPAID],
            "may_add": unit is not None and not (unit["kind"] == "individual" and people),
        },
    )


# ------------------------------------------------------------------------------------------ unit

UNIT_FIELDS = {
    "kind",
    "name",
    "credit_code",
    "country",
    "registration_no",
    "address",
    "industry",
    "contact.name",
    "contact.mobile",
    "contact.email",
    "mission.affiliation",
    "mission.mission",
    "mission.sub_mission",
    "mission.referral_code",
}


def mission_choices(lang: Lang) -> dict[str, Any]:
    """What a unit may name (code, name): for overseas units any mission but the industrial ones
    (those are joined by referral code); for central enterprises their group and for NHC institutions
    their sub-mission, both as ``mission.sub_mission``."""
    catalogue = load_missions()

    def name(item: Mission | SubMission) -> str:
        return item.name_zh if lang == "zh" else item.name_en

    def subs(kind: MissionKind) -> list[tuple[str, str]]:
        return [(sub.code, name(sub)) for mission in catalogue.of_kind(kind) for sub in mission.sub_missions]

    central = "中央企业集团" if lang == "zh" else "Central enterprise groups"
    nhc = "国家卫生健康委交易分团" if lang == "zh" else "National Health Commission sub-missions"
    return {
        "missions": [(m.code, name(m)) for m in catalogue.missions if m.kind is not MissionKind.INDUSTRIAL],
        "groups": [(central, subs(MissionKind.CENTRAL_ENTERPRISE)), (nhc, subs(MissionKind.NHC))],
    }


def unit_values(unit: dict[str, Any]) -> dict[str, str]:
    """A registered unit as its form shows it (to change it)."""
    overseas = unit["affiliation"] == "overseas"
    return {
        "kind": unit["kind"],
        "name": unit["name"],
        "credit_code": unit["credit_code"] or "",
        "country": unit["country"] if overseas else "",
        "registration_no": unit["foreign_registration_no"] or "",
        "address": unit["address"],
        "industry": unit["industry"],
        "contact.name": unit["contact_name"],
        "contact.mobile": unit["contact_mobile"],
        "contact.email": unit["contact_email"],
        "mission.affiliation": unit["affiliation"],
        # The mission chosen is the home one: an industrial mission is joined by its referral code.
        "mission.mission": unit["statistics_mission"] if overseas else "",
        "mission.sub_mission": unit["statistics_sub_mission"] or "",
        "mission.referral_code": unit["referral_code"] or "",
    }


def unit_body(values: dict[str, str], individual: bool) -> dict[str, Any]:
    """The ``UnitIn`` body from the form: a domestic unit sends its credit code, an overseas one its
    country, registration number and chosen mission; a sub-mission goes with the affiliations that
    have them (central enterprise group, NHC, overseas)."""
    affiliation = values.get("mission.affiliation") or "residence"
    overseas = affiliation == "overseas"
    body: dict[str, Any] = {
        "kind": "individual" if individual else values.get("kind", ""),
        "name": values.get("name", ""),
        "address": values.get("address", ""),
        "industry": values.get("industry", ""),
        "contact": {
            "name": values.get("contact.name", ""),
            "mobile": values.get("contact.mobile", ""),
            "email": values.get("contact.email", ""),
        },
        "mission": {
            "affiliation": affiliation,
            "mission": optional(values.get("mission.mission")) if overseas else None,
            "sub_mission": optional(values.get("mission.sub_mission"))
            if affiliation != "residence"
            else None,
            "referral_code": optional(values.get("mission.referral_code")),
        },
    }
    if overseas:
        body["country"] = values.get("country", "").upper()  # the API wants the code as ISO writes it
        body["registration_no"] = optional(values.get("registration_no"))
    else:
        body["credit_code"] = optional(values.get("credit_code"))
    return body


@router.get("/unit")
async def unit_form(request: Request, me: LoggedIn) -> HTMLResponse:
    """Register the unit; once registered, the same form changes it (and resubmits a rejected one)."""
    account, unit, _ = await me.unit_and_people()
    values = unit_values(unit) if unit else {"kind": "enterprise", "mission.affiliation": "residence"}
    if unit is None:  # a returning buyer's unit as it was (``/portal/previous``), to check and submit
        values |= {k: v.strip() for k, v in request.query_params.items() if k in UNIT_FIELDS and v.strip()}
    return page(request, "portal/unit.html", _unit_context(request, account, unit, values))


def _unit_context(
    request: Request, account: dict[str, Any], unit: dict[str, Any] | None, values: dict[str, str]
) -> dict[str, Any]:
    choices = mission_choices(lang_of(request))
    return {"account": account, "unit": unit, "values": values, "choices": choices}


@router.post("/unit")
async def unit_post(request: Request, me: LoggedIn) -> Response:
    """``POST /v1/units`` (or ``PUT /v1/units/{id}`` once registered) with the form's data."""
    form = await posted_form(request)
    values = texts(form)
    account = await me.account()
    body = unit_body(values, individual=account["kind"] == "individual")
    unit = None
    try:
        if account["unit_id"]:
            unit = await me.registration.call("GET", f"/v1/units/{account['unit_id']}")
            await me.registration.call("PUT", f"/v1/units/{account['unit_id']}", json=body)
            return redirect("/portal?notice=unit_changed")
        await me.registration.call("POST", "/v1/units", json=body)
    except FormErrors as refused:
        context = _unit_context(request, account, unit, values)
        return refused_page(request, "portal/unit.html", refused, context, UNIT_FIELDS)
    return redirect("/portal?notice=unit_registered")


@router.get("/check/credit-code")
async def check_credit_code(request: Request) -> JSONResponse:
    """As one types (``site.js``): is this a valid Unified Social Credit Code? The message is the
    API's own (``validation.credit_code``), in the page's language."""
    value = request.query_params.get("value", "").strip()
    lang = lang_of(request)
    if not value:
        return JSONResponse(
            {"ok": False, "message": "请填写统一社会信用代码" if lang == "zh" else "enter the credit code"}
        )
    try:
        validation.credit_code(value)
    except ApiError as refused:
        return JSONResponse({"ok": False, "message": message(refused.body, lang)})
    return JSONResponse({"ok": True, "message": ""})


# ------------------------------------------------------------------------------------------ payment


async def _pay_context(me: Buyer, values: dict[str, Any]) -> dict[str, Any]:
    account, unit, people = await me.unit_and_people()
    edition = await edition_of(me.ctx)
    return {
        "account": account,
        "unit": unit,
        "unpaid": [p for p in people if p["status"]["code"] == RegistrationStatus.UNPAID],
        "fees": edition["fees_fen"],
        "deadlines": edition["payment"],
        "values": values,
    }


@router.get("/pay")
async def pay_form(request: Request, me: LoggedIn) -> HTMLResponse:
    context = await _pay_context(me, {"method": "qr", "qr_channel": "unionpay"})
    context["values"]["registration_ids"] = [p["registration_id"] for p in context["unpaid"]]
    # One attempt of this form: posting it twice (a double click, a reload) makes one order.
    context["values"]["attempt"] = secrets.token_urlsafe(12)
    return page(request, "portal/pay.html", context)


def idempotency_key(request: Request, values: dict[str, Any]) -> str:
    """The same form post gives the same key (the API then answers the order it made for it)."""
    parts = [
        request.cookies.get(CSRF_COOKIE, ""),
        str(values.get("attempt", "")),
        str(values.get("method", "")),
        str(values.get("qr_channel", "")),
        ",".join(sorted(values.get("registration_ids", []))),
    ]
    return "portal-" + hashlib.sha256("\n".join(parts).encode()).hexdigest()


@router.post("/pay")
async def pay(request: Request, me: LoggedIn) -> Response:
    """``POST {payment}/v1/orders`` for the people chosen, by the method chosen: a QR code or a
    transfer's details on the order's page; B2B to the gateway from there."""
    form = await posted_form(request)
    values: dict[str, Any] = texts(form)
    values["registration_ids"] = [str(v) for v in form.getlist("registration_ids") if isinstance(v, str)]
    fields = {"registration_ids", "method", "qr_channel"}
    if not values["registration_ids"]:
        none_chosen = invalid(
            "registration_ids", "nobody_chosen", "请选择要缴费的人员", "choose who to pay for"
        )
        return refused_page(request, "portal/pay.html", none_chosen, await _pay_context(me, values), fields)
    account = await me.account()
    method = values.get("method") or "qr"
    body = {
        "unit_id": account["unit_id"] or "",
        "registration_ids": values["registration_ids"],
        "method": method,
        "qr_channel": optional(values.get("qr_channel")) if method == "qr" else None,
    }
    try:
        order = await me.payment.call(
            "POST", "/v1/orders", json=body, headers={"Idempotency-Key": idempotency_key(request, values)}
        )
    except FormErrors as refused:
        return refused_page(request, "portal/pay.html", refused, await _pay_context(me, values), fields)
    return redirect(f"/portal/orders/{order['order_no']}")


def qr_svg(payload: str, title: str) -> Markup:
    """The QR code a phone scans to pay, as inline SVG (no image request, no JavaScript)."""
    svg = segno.make(payload, error="m").svg_inline(scale=5, border=2, title=title, svgclass="qr-code")
    return Markup(svg)  # noqa: S704 - segno writes the SVG and escapes the title


async def _order_context(me: Buyer, order_no: str, values: dict[str, str] | None = None) -> dict[str, Any]:
    """The order, its people's names and, once paid, its invoices with the application form (filled
    with the unit's name and credit code, or with what was typed)."""
    order = await me.payment.call("GET", f"/v1/orders/{order_no}")
    _, unit, people = await me.unit_and_people()
    names = {p["registration_id"]: p["name"] for p in people}
    waiting = order["status"] == "awaiting_payment"
    context: dict[str, Any] = {"order": order, "names": names}
    if waiting and order["method"] == "qr" and order["qr_payload"]:
        context["qr"] = qr_svg(order["qr_payload"], f"{order['order_no']}")
    if order["status"] == "paid":
        invoices: list[dict[str, Any]] = await me.payment.call(
            "GET", f"/v1/orders/{_quoted(order_no)}/invoices"
        )
        context["invoices"] = invoices
        context["may_apply"] = not any(invoice["standing"] for invoice in invoices)
        context["values"] = values or {
            "kind": "regular",
            "title": unit["name"] if unit else "",
            "taxpayer_id": (unit or {}).get("credit_code") or "",
        }
    return context


@router.get("/orders/{order_no}")
async def order_page(request: Request, order_no: str, me: LoggedIn) -> HTMLResponse:
    """The order's status (reload to follow it), with the QR code, the B2B gateway's button or the
    transfer's voucher upload while it waits for payment."""
    return page(request, "portal/order.html", await _order_context(me, order_no))


VOUCHER_TYPES = {"application/pdf": "application/pdf", "image/jpeg": "image/jpeg", "image/jpg": "image/jpeg"}
VOUCHER_SUFFIXES = {".pdf": "application/pdf", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}


@router.post("/orders/{order_no}/voucher")
async def voucher_post(request: Request, order_no: str, me: LoggedIn) -> Response:
    """The transfer's remittance voucher (PDF or JPEG), handed to finance."""
    async with request.form() as form:
        check_csrf(request, form)
        voucher = await file_of(form, "voucher")
    refused: FormErrors | None
    if voucher is None:
        refused = invalid("voucher", "voucher_required", "请选择汇款凭证文件", "choose the voucher file")
    elif isinstance(voucher, FormErrors):
        refused = voucher
    elif (
        content_type := VOUCHER_TYPES.get(voucher.content_type) or VOUCHER_SUFFIXES.get(voucher.suffix)
    ) is None:
        refused = invalid(
            "voucher", "voucher_format", "汇款凭证须为PDF或JPEG文件", "the voucher must be a PDF or JPEG file"
        )
    else:
        refused = await send_voucher(me, order_no, voucher.data, content_type)
    if refused is not None:
        context = await _order_context(me, order_no) | {"errors": refused.errors}
        return page(request, "portal/order.html", context, status_code=refused.status)
    return redirect(f"/portal/orders/{order_no}?notice=voucher_uploaded")


async def send_voucher(me: Buyer, order_no: str, data: bytes, content_type: str) -> FormErrors | None:
    """An upload URL (``.../voucher-upload``), the upload, then ``.../voucher``; the refusal (beside
    the file input) if any."""
    try:
        target = await me.payment.call(
            "POST", f"/v1/orders/{order_no}/voucher-upload", json={"content_type": content_type}
        )
        await put_object(me.ctx, target, data)
        await me.payment.call(
            "POST", f"/v1/orders/{order_no}/voucher", json={"voucher_key": target["voucher_key"]}
        )
    except FormErrors as refused:
        if refused.status in (401, 404):
            raise
        return FormErrors({"voucher": first_error(refused)}, refused.status)
    except httpx.HTTPStatusError as exc:  # the object store refused the upload
        log.warning("voucher of %s not uploaded: %s", order_no, exc)
        return invalid(
            "voucher",
            "voucher_upload_failed",
            "汇款凭证上传失败，请重试",
            "the voucher could not be uploaded: try again",
        )
    return None


# ------------------------------------------------------------------------------------------ invoices

INVOICE_FIELDS = {"kind", "title", "taxpayer_id", "address", "phone", "bank_name", "bank_account"}
SPECIAL_INVOICE_FIELDS = ("address", "phone", "bank_name", "bank_account")


def _quoted(value: str) -> str:
    return quote(value, safe="")


def invoice_body(values: dict[str, str]) -> dict[str, Any]:
    """The ``InvoiceApplicationIn`` body: a special invoice also sends the unit's address, phone, bank
    and account (a regular one needs none of them)."""
    kind = values.get("kind") or "regular"
    body: dict[str, Any] = {
        "kind": kind,
        "title": values.get("title", ""),
        "taxpayer_id": values.get("taxpayer_id", ""),
    }
    if kind == "special":
        body |= {name: values.get(name, "") for name in SPECIAL_INVOICE_FIELDS}
    return body


@router.post("/orders/{order_no}/invoice")
async def invoice_post(request: Request, order_no: str, me: LoggedIn) -> Response:
    """Apply for the paid order's electronic VAT invoice (``POST {payment}/v1/orders/{no}/invoice``)."""
    form = await posted_form(request)
    values = texts(form)
    try:
        await me.payment.call("POST", f"/v1/orders/{_quoted(order_no)}/invoice", json=invoice_body(values))
    except FormErrors as refused:
        if refused.status == 404:
            raise
        context = await _order_context(me, order_no, values)
        return refused_page(request, "portal/order.html", refused, context, INVOICE_FIELDS)
    return redirect(f"/portal/orders/{_quoted(order_no)}?notice=invoice_issued#invoices")


@router.get("/invoices/{invoice_no}.pdf")
async def invoice_pdf(invoice_no: str, me: LoggedIn) -> Response:
    """An invoice's PDF, from the payment API with the buyer's token, handed on as it arrives."""
    return pass_on(await me.payment.stream("GET", f"/v1/invoices/{_quoted(invoice_no)}.pdf"))


# ------------------------------------------------------------------------------------------ returning buyers

PREVIOUS_FIELDS = {"certificate_no", "id_type", "id_number"}


def _previous_context(account: dict[str, Any], values: dict[str, str]) -> dict[str, Any]:
    return {"account": account, "values": values}


@router.get("/previous")
async def previous_form(request: Request, me: LoggedIn) -> HTMLResponse:
    """A buyer of the previous CIIE (FAQ VII): last edition's certificate number and ID number."""
    account = await me.account()
    return page(request, "portal/previous.html", _previous_context(account, {"id_type": "resident_id"}))


def previous_unit_link(unit: dict[str, Any]) -> str:
    """The unit form, filled with the unit as it was registered last time."""
    mission = unit.get("mission") or {}
    overseas = mission.get("affiliation") == "overseas"
    filled = {
        "kind": unit.get("kind"),
        "name": unit.get("name"),
        "credit_code": None if overseas else unit.get("credit_code"),
        "country": unit.get("country") if overseas else None,
        "registration_no": unit.get("registration_no") if overseas else None,
        "address": unit.get("address"),
        "industry": unit.get("industry"),
        "mission.affiliation": mission.get("affiliation"),
        "mission.mission": mission.get("mission") if overseas else None,
        "mission.sub_mission": mission.get("sub_mission"),
        "mission.referral_code": mission.get("referral_code"),
    }
    return "/portal/unit?" + urlencode({k: v for k, v in filled.items() if v})


@router.post("/previous")
async def previous_lookup(request: Request, me: LoggedIn) -> Response:
    """Look up the holder's last card (``GET /v1/previous-buyers/lookup``, by ID document) and check
    that the certificate number given is that card's; then show the unit as it was, whether the card
    can be re-validated, and the way on (the person form to re-validate it, or the unit form first)."""
    form = await posted_form(request)
    values = texts(form)
    account = await me.account()
    context = _previous_context(account, values)
    certificate_no = values.get("certificate_no", "").upper().replace(" ", "")
    if not certificate_no:
        missing = invalid(
            "certificate_no",
            "certificate_no_required",
            "请填写上届证件编号",
            "enter last edition's certificate number",
        )
        return refused_page(request, "portal/previous.html", missing, context, PREVIOUS_FIELDS)
    try:
        found: dict[str, Any] = await me.registration.call(
            "GET",
            "/v1/previous-buyers/lookup",
            params={"id_type": values.get("id_type", ""), "id_number": values.get("id_number", "")},
        )
    except FormErrors as refused:
        if refused.status == 404:  # no card for this document: said beside the certificate number
            refused = FormErrors({"certificate_no": first_error(refused)}, 422)
        return refused_page(request, "portal/previous.html", refused, context, PREVIOUS_FIELDS)
    if found["certificate_no"].upper() != certificate_no:
        mismatch = invalid(
            "certificate_no",
            "certificate_mismatch",
            "该证件编号与证件持有人的上届证件不符，请核对",
            "this certificate number is not the holder's last card: check it",
        )
        return refused_page(request, "portal/previous.html", mismatch, context, PREVIOUS_FIELDS)
    revalidate = "/portal/people/new?" + urlencode({"revalidate_certificate_no": found["certificate_no"]})
    links = {
        "unit": None if account["unit_id"] else previous_unit_link(found["unit"]),
        "person": revalidate if account["unit_id"] and found["revalidatable"] else None,
    }
    return page(request, "portal/previous.html", context | {"found": found, "links": links})


# The person pages (``portal_people.py``) register on ``router`` as they are imported: importing them
# here, once everything they use is defined, puts them in every app that includes this router.
from services.registration import portal_people  # noqa: E402, F401
