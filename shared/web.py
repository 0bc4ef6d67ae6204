"""What the services' web pages share: server-rendered templates in Chinese and English, a login kept
in a cookie, forms protected against cross-site requests, and the services' APIs as their only back end.

The pages are thin clients of the public APIs, exactly as the website, the mini-program and the app
are: each page handler calls the APIs over HTTP with the caller's bearer token (kept in an HttpOnly
cookie) and renders what they answer. A refusal comes back as the API's ``ErrorBody``; its ``field``
puts the message next to the input that caused it. Nothing needs JavaScript; ``site.js`` only adds
checks as one types and small conveniences.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, select_autoescape
from starlette.background import BackgroundTask
from starlette.datastructures import FormData

from shared.http import ApiError, ErrorBody

Lang = Literal["zh", "en"]
LANGS: tuple[Lang, ...] = ("zh", "en")
SHARED_TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"
CSRF_COOKIE = "expo_csrf"
CSRF_FIELD = "csrf"
BEIJING = ZoneInfo("Asia/Shanghai")


def lang_of(request: Request) -> Lang:
    """The page's language: ``?lang=``, else the ``lang`` cookie, else the browser's preference (Chinese
    unless it prefers English)."""
    for candidate in (request.query_params.get("lang"), request.cookies.get("lang")):
        if candidate in LANGS:
            return candidate
    accepted = request.headers.get("accept-language", "").lower()
    return "en" if accepted.startswith("en") else "zh"


def page_templates(*directories: Path) -> Jinja2Templates:
    """Templates of a service's pages (its own directories first, then the shared layout)."""
    environment = Environment(
        loader=ChoiceLoader([FileSystemLoader([*directories, SHARED_TEMPLATES])]),
        autoescape=select_autoescape(default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return Jinja2Templates(env=environment)


def mount_static(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=STATIC), name="static")


# ------------------------------------------------------------------------------------------ cookies


def secure_cookies(request: Request) -> bool:
    """Cookies are marked Secure behind HTTPS (the ingress); the embedded stack serves plain HTTP."""
    return request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"


def set_login_cookie(response: Response, request: Request, name: str, token: str, max_age: int) -> None:
    response.set_cookie(
        name, token, max_age=max_age, httponly=True, samesite="lax", secure=secure_cookies(request), path="/"
    )


def csrf_token(request: Request) -> str:
    """The form token of this browser (double-submit: the same value in a cookie and in each form)."""
    token: str | None = request.cookies.get(CSRF_COOKIE)
    if not token:
        token = request.state.__dict__.setdefault("new_csrf", secrets.token_urlsafe(24))
    return token


def keep_csrf_cookie(request: Request, response: Response) -> None:
    """Send the form token's cookie if this request made one."""
    new = request.state.__dict__.get("new_csrf")
    if new:
        response.set_cookie(
            CSRF_COOKIE, new, httponly=True, samesite="strict", secure=secure_cookies(request), path="/"
        )


async def posted_form(request: Request) -> FormData:
    """A form post's fields, once its form token is checked (``check_csrf``)."""
    form = await request.form()
    check_csrf(request, form)
    return form


def check_csrf(request: Request, form: Mapping[str, Any]) -> None:
    """A form post must carry the browser's form token: a page of another site cannot read it."""
    cookie = request.cookies.get(CSRF_COOKIE)
    sent = form.get(CSRF_FIELD)
    if not cookie or not isinstance(sent, str) or not secrets.compare_digest(cookie, sent):
        raise ApiError(
            403,
            "form_expired",
            "this form has expired or came from another site: please reload the page and send it again",
            "表单已过期或来源不明，请刷新页面后重新提交",
        )


# ------------------------------------------------------------------------------------------ API calls


@dataclass
class FormErrors(Exception):
    """An API refused what a form sent: the messages by field (``""``: the form as a whole)."""

    errors: dict[str, ErrorBody] = field(default_factory=dict)
    status: int = 422


@dataclass
class Api:
    """One service's public API, called as the logged-in user (or anonymously)."""

    http: httpx.AsyncClient
    base_url: str
    token: str | None = None

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}) or {})
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return await self.http.request(method, f"{self.base_url}{path}", headers=headers, **kwargs)

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """The JSON answer; a 4xx becomes ``FormErrors`` (by field), anything else an httpx error."""
        response = await self.request(method, path, **kwargs)
        if 400 <= response.status_code < 500:
            raise refusal(response)
        response.raise_for_status()
        return response.json() if response.content else None

    async def call_response(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """As ``call``, but the whole answer, for its headers too (``X-Total-Count`` of a paged list)."""
        response = await self.request(method, path, **kwargs)
        if 400 <= response.status_code < 500:
            raise refusal(response)
        response.raise_for_status()
        return response

    async def stream(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The answer with its body not yet read, to hand a download on (``pass_on``) without holding it
        in memory; a 4xx becomes ``FormErrors``, a 5xx an httpx error (both closed here)."""
        headers = dict(kwargs.pop("headers", {}) or {})
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = self.http.build_request(method, f"{self.base_url}{path}", headers=headers, **kwargs)
        response = await self.http.send(request, stream=True)
        if response.status_code >= 400:
            try:
                await response.aread()
            finally:
                await response.aclose()
            if response.status_code < 500:
                raise refusal(response)
            response.raise_for_status()
        return response


# What a handed-on download keeps of the API's answer (its name, type and caching, never its cookies).
PASSED_ON_HEADERS = (
    "content-type",
    "content-disposition",
    "content-length",
    "cache-control",
    "last-modified",
)


def pass_on(response: httpx.Response) -> StreamingResponse:
    """An API's download (from ``Api.stream``) handed to the browser as it arrives; closed when sent.
    The browser cannot call the API itself: its token is in an HttpOnly cookie of this site."""
    headers = {name: response.headers[name] for name in PASSED_ON_HEADERS if name in response.headers}
    if "content-encoding" in response.headers:  # aiter_bytes decodes: the length would be wrong
        headers.pop("content-length", None)
    headers.setdefault("x-content-type-options", "nosniff")
    return StreamingResponse(
        response.aiter_bytes(),
        status_code=response.status_code,
        headers=headers,
        background=BackgroundTask(response.aclose),
    )


def refusal(response: httpx.Response) -> FormErrors:
    try:
        body = ErrorBody.model_validate(response.json())
    except ValueError:
        body = ErrorBody(code="refused", message=response.text[:200], message_zh=response.text[:200])
    errors = {_field_name(body.field): body}
    if body.code == "invalid_input" and body.details:
        errors = _by_detail(body)
    return FormErrors(errors, response.status_code)


# What the request validation's error types mean, for a person (English, Chinese); others keep the
# validator's English message and a general Chinese one.
_DETAIL_MESSAGES: dict[str, tuple[str, str]] = {
    "missing": ("this field is required", "此项为必填项"),
    "string_too_short": ("this field must not be empty", "此项不能为空"),
    "string_too_long": ("this is too long", "内容过长"),
    "string_pattern_mismatch": ("this is not in the expected format", "格式有误"),
    "enum": ("choose one of the options", "请从选项中选择"),
    "literal_error": ("choose one of the options", "请从选项中选择"),
    "date_from_datetime_parsing": ("not a date (YYYY-MM-DD)", "日期格式有误"),
    "date_parsing": ("not a date (YYYY-MM-DD)", "日期格式有误"),
    "bool_parsing": ("choose yes or no", "请选择是或否"),
    "extra_forbidden": ("this field is not accepted", "不接受此项"),
}


def _by_detail(body: ErrorBody) -> dict[str, ErrorBody]:
    """A request validation refusal names every field it refused in ``details``: each gets its own
    message beside its input, and the form as a whole the API's summary."""
    errors = {"": body.model_copy(update={"field": None})}
    for detail in body.details or []:
        name = detail.get("field")
        if not isinstance(name, str) or not name or _field_name(name) in errors:
            continue
        kind = str(detail.get("type") or "")
        english, chinese = _DETAIL_MESSAGES.get(kind, (str(detail.get("message") or body.message), ""))
        errors[_field_name(name)] = ErrorBody(
            code=kind or body.code, message=english, message_zh=chinese or "此项填写有误，请核对", field=name
        )
    return errors


def _field_name(api_field: str | None) -> str:
    """The form input an API field path names (``body.contact.mobile`` → ``contact.mobile``)."""
    if not api_field:
        return ""
    return api_field.removeprefix("body.")


def message(body: ErrorBody, lang: Lang) -> str:
    return body.message_zh if lang == "zh" else body.message


# ------------------------------------------------------------------------------------------ formatting


def beijing_time(value: datetime | str | None, lang: Lang) -> str:
    """An instant as Beijing wall-clock time, saying so (buyers and staff are told every time in it).
    The APIs answer ISO 8601 with an offset; one without is UTC, as the databases keep it."""
    if not value:
        return ""
    instant = datetime.fromisoformat(value) if isinstance(value, str) else value
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=UTC)
    local = instant.astimezone(BEIJING)
    return f"{local:%Y-%m-%d %H:%M}（北京时间）" if lang == "zh" else f"{local:%Y-%m-%d %H:%M} Beijing time"


def yuan(fen: int, lang: Lang) -> str:
    """An amount the APIs give in fen, as people read it."""
    amount = f"{fen // 100:,}.{fen % 100:02d}"
    return f"{amount} 元" if lang == "zh" else f"CNY {amount}"


# ------------------------------------------------------------------------------------------ rendering


def render(
    templates: Jinja2Templates,
    request: Request,
    name: str,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
) -> HTMLResponse:
    """A page in the request's language, with the helpers every template uses: ``t(zh, en)``, ``lang``,
    ``csrf`` (the form token), ``errors`` (by field) and ``error(field)`` (the message to show)."""
    lang = lang_of(request)
    values = dict(context or {})
    errors: dict[str, ErrorBody] = values.pop("errors", {}) or {}

    def t(zh: str, en: str) -> str:
        return zh if lang == "zh" else en

    def error(name: str) -> str | None:
        body = errors.get(name)
        return message(body, lang) if body else None

    response = templates.TemplateResponse(
        request,
        name,
        {
            "t": t,
            "lang": lang,
            "other_lang": "en" if lang == "zh" else "zh",
            "lang_url": lang_url(request, "en" if lang == "zh" else "zh"),
            "csrf": csrf_token(request),
            "errors": errors,
            "error": error,
            "form_error": error(""),
            "when": lambda value: beijing_time(value, lang),
            "money": lambda fen: yuan(fen, lang),
            **values,
        },
        status_code=status_code,
    )
    if request.query_params.get("lang") in LANGS:
        response.set_cookie("lang", lang, max_age=365 * 86400, samesite="lax", path="/")
    keep_csrf_cookie(request, response)
    return response


def lang_url(request: Request, lang: Lang) -> str:
    """This page in ``lang``: the same query (a queue's filters, a page number) with ``lang`` replaced."""
    query = [(key, value) for key, value in request.query_params.multi_items() if key != "lang"]
    return "?" + urlencode([*query, ("lang", lang)])


def redirect(url: str) -> RedirectResponse:
    """After a form post: see the result page (303, so a reload does not post again)."""
    return RedirectResponse(url, status_code=303)
