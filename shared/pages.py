"""The pages' machinery: the buyer portal (``/portal``) and the staff sites, the review console
(``/console``) and the finance pages (``/finance``), each a ``PageSite``: a path prefix, a login kept in
an HttpOnly cookie, its templates, and routes whose unhandled API refusals become pages.

A site's ``route_class()`` turns what a page handler did not handle itself into a page: no login, or an
API answering 401, sends to the login page (and back afterwards); a refused form token
(``form_expired``), a 403 or a 404 is an error page with the API's message; an API that failed or did
not answer is a 503 page. The staff sites (``StaffPages``) log in with a review-service staff login:
their ``router()`` has the login and logout routes, and each handler takes the ``StaffPage``
(``Depends(site.staff)``): the API as the logged-in staff member, and who that is (``GET /v1/staff/me``
of the review service). Their login and error pages are ``staff/login.html`` and ``staff/error.html``
in the site's layout. How pages are rendered, forms checked and APIs called is ``shared/web.py``'s;
what codes are called, ``shared/labels.py``'s.
"""

from __future__ import annotations

import contextlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import httpx
from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel
from starlette.datastructures import FormData

from shared.catalogue import load_missions
from shared.http import ApiError, ErrorBody
from shared.labels import Labels, labeller
from shared.security import STAFF_TOKEN_LIFETIME
from shared.service import ServiceContext, context
from shared.settings import Settings
from shared.web import Api, FormErrors, Lang, check_csrf, lang_of, redirect, render, set_login_cookie

log = logging.getLogger(__name__)
BEIJING = ZoneInfo("Asia/Shanghai")
Ctx = Annotated[ServiceContext, Depends(context)]

# ------------------------------------------------------------------------------------------ words


def mission_name(lang: Lang, code: str | None, sub_code: str | None = None) -> str:
    """A mission's (or its sub-mission's) name from the catalogue; a code it no longer has, as it is."""
    if not code:
        return ""
    mission = load_missions().get(code)
    if mission is None:
        return sub_code or code
    if sub_code:
        sub = mission.sub_mission(sub_code)
        return sub_code if sub is None else sub.name_zh if lang == "zh" else sub.name_en
    return mission.name_zh if lang == "zh" else mission.name_en


def beijing(value: str | datetime | None, with_time: bool = True) -> str:
    """An API instant as Beijing time (what staff and buyers read everywhere), for a table's cell."""
    if not value:
        return ""
    instant = datetime.fromisoformat(value) if isinstance(value, str) else value
    return instant.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M" if with_time else "%Y-%m-%d")


def local_error(code: str, en: str, zh: str) -> ErrorBody:
    """A refusal the page makes itself (before any API call), shown as the API's are."""
    return ErrorBody(code=code, message=en, message_zh=zh)


# ------------------------------------------------------------------------------------------ forms


def form_raw(form: FormData | Mapping[str, Any], name: str) -> str:
    """A text input as sent (a file where text belongs counts as nothing)."""
    value = form.get(name)
    return value if isinstance(value, str) else ""


def form_text(form: FormData | Mapping[str, Any], name: str) -> str:
    return form_raw(form, name).strip()


async def checked_form(request: Request) -> FormData:
    """The posted form, once its CSRF token is checked (a failed check is the form's own error)."""
    form = await request.form()
    try:
        check_csrf(request, form)
    except ApiError as expired:
        raise FormErrors({"": expired.body}, expired.status) from expired
    return form


# ------------------------------------------------------------------------------------------ the login


class StaffView(BaseModel):
    """The logged-in staff member (``GET /v1/staff/me``), for the navigation and the forms shown."""

    id: str
    login: str
    name: str
    role: str
    mission: str | None
    # Whether the site shows this role its decision forms (the API would refuse the others 403).
    decides: bool = False


@dataclass
class StaffPage:
    """One page request: the site's API as the logged-in staff member, and who that is."""

    request: Request
    ctx: ServiceContext
    api: Api
    me: StaffView

    @property
    def lang(self) -> Lang:
        return lang_of(self.request)


class LoginRequired(Exception):
    """No login in the cookie, or the API no longer accepts it."""


@dataclass(frozen=True, eq=False, kw_only=True)
class PageSite(ABC):
    """A site of pages under ``prefix`` whose login's token is kept in the HttpOnly cookie ``cookie``:
    the staff sites (``StaffPages``) and the buyer portal. Its ``route_class()`` turns what a page
    handler did not handle into a page (see the module's docstring)."""

    prefix: str  # "/console"
    cookie: str  # one per site: cookies are shared by every port of a host
    templates: Jinja2Templates
    # Where a form post that finds the login lost comes back after the login: its form, or the home page.
    posts_return_to_form: bool = False

    @property
    def login_url(self) -> str:
        return f"{self.prefix}/login"

    @abstractmethod
    def page(
        self, request: Request, name: str, values: Mapping[str, Any] | None = None, *, status: int = 200
    ) -> HTMLResponse:
        """A page of the site, with its templates' helpers."""

    @abstractmethod
    def error_page(self, request: Request, status: int, problem: ErrorBody) -> HTMLResponse:
        """The page explaining a refusal (an expired form, not found, not allowed) or a failure."""

    def to_login(self, request: Request) -> Response:
        """To the login page, coming back here afterwards (a form post comes back to its form or to the
        home page, as the site says)."""
        if request.method == "GET":
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        else:
            target = request.url.path if self.posts_return_to_form else self.prefix
        response = redirect(f"{self.login_url}?{urlencode({'next': target})}")
        response.delete_cookie(self.cookie, path="/")  # expired or revoked: no use keeping it
        return response

    def safe_next(self, value: object) -> str:
        """Only a page of this site: never another site (``//evil``) after the login."""
        if (
            isinstance(value, str)
            and value.startswith(self.prefix)
            and value.isprintable()  # no line breaks into the Location header
            and not any(part in value for part in ("\\", "//", " "))
        ):
            return value
        return self.prefix

    def route_class(self) -> type[APIRoute]:
        """Routes whose unhandled refusals become pages (see the module's docstring)."""
        site = self

        class SiteRoute(APIRoute):
            def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
                handler = super().get_route_handler()

                async def guarded(request: Request) -> Response:
                    try:
                        return await handler(request)
                    except LoginRequired:
                        return site.to_login(request)
                    except FormErrors as refused:
                        if refused.status == 401:
                            return site.to_login(request)
                        return site.error_page(request, refused.status, first_error(refused))
                    except ApiError as refused:  # the form token's check (``form_expired``)
                        return site.error_page(request, refused.status, refused.body)
                    except httpx.HTTPError as exc:  # the API failed (5xx) or did not answer
                        log.warning("%s %s: the API failed: %r", request.method, request.url.path, exc)
                        return site.error_page(request, 503, UNAVAILABLE)

                return guarded

        return SiteRoute


UNAVAILABLE = local_error(
    "unavailable",
    "the service did not answer as expected: please try again in a moment",
    "服务暂时无法正常响应，请稍后再试",
)


def first_error(refused: FormErrors) -> ErrorBody:
    """A refusal's message for a page of its own: the one naming no input, else the first."""
    return refused.errors.get("") or next(iter(refused.errors.values()))


@dataclass(frozen=True, eq=False, kw_only=True)
class StaffPages(PageSite):
    """A staff site, calling the API at ``api_url(settings)`` with the review service's staff login;
    ``deciding_roles`` see the decision forms. Its login and error pages are the shared
    ``staff/login.html`` and ``staff/error.html`` in its ``layout``, with its words."""

    api_url: Callable[[Settings], str]
    deciding_roles: frozenset[str]
    labels: Labels
    layout: str  # "console/layout.html"
    login_title: tuple[str, str]  # (Chinese, English)
    home_id: str  # the error page's link back to the home page: its id and words
    home_text: tuple[str, str]
    login_hint: tuple[str, str] | None = None
    login_template: str = "staff/login.html"
    error_template: str = "staff/error.html"

    # -------------------------------------------------------------------------------------- pages

    async def staff(self, request: Request, ctx: Ctx) -> StaffPage:
        """The dependency of every page but the login's: who is logged in (a 401 sends to the login)."""
        token = request.cookies.get(self.cookie)
        if not token:
            raise LoginRequired
        who = await Api(ctx.http, ctx.settings.review_url, token).call("GET", "/v1/staff/me")
        me = StaffView.model_validate(who)
        me.decides = me.role in self.deciding_roles
        found = StaffPage(request, ctx, Api(ctx.http, self.api_url(ctx.settings), token), me)
        request.state.staff_page = found  # for the error pages' navigation
        return found

    def page(
        self, request: Request, name: str, values: Mapping[str, Any] | None = None, *, status: int = 200
    ) -> HTMLResponse:
        """A page: the shared layout's helpers, and the staff sites' (who is logged in, labels)."""
        lang = lang_of(request)
        found: StaffPage | None = getattr(request.state, "staff_page", None)
        return render(
            self.templates,
            request,
            name,
            {
                "site": self,
                "me": found.me if found else None,
                "label": labeller(self.labels, lang),
                "mission_name": lambda code, sub=None: mission_name(lang, code, sub),
                "beijing": beijing,
                **(values or {}),
            },
            status_code=status,
        )

    def error_page(self, request: Request, status: int, problem: ErrorBody) -> HTMLResponse:
        return self.page(request, self.error_template, {"status": status, "problem": problem}, status=status)

    # -------------------------------------------------------------------------------------- routes

    def router(self) -> APIRouter:
        """The site's router (not in the API's schema), with its login and logout routes."""
        router = APIRouter(prefix=self.prefix, include_in_schema=False, route_class=self.route_class())
        router.add_api_route("/login", self._login_page, methods=["GET"])
        router.add_api_route("/login", self._log_in, methods=["POST"])
        router.add_api_route("/logout", self._log_out, methods=["POST"])
        return router

    async def _login_page(self, request: Request) -> HTMLResponse:
        return self.page(
            request, self.login_template, {"next": self.safe_next(request.query_params.get("next"))}
        )

    async def _log_in(self, request: Request, ctx: Ctx) -> Response:
        """The review service's staff login; its token goes into this site's cookie."""
        form = await request.form()
        values = {"login": form_text(form, "login"), "next": self.safe_next(form.get("next"))}
        try:
            check_csrf(request, form)
            session = await Api(ctx.http, ctx.settings.review_url).call(
                "POST",
                "/v1/staff/sessions",
                json={"login": values["login"], "password": form_raw(form, "password")},
            )
        except ApiError as expired:
            errors = {"errors": {"": expired.body}}
            return self.page(request, self.login_template, values | errors, status=expired.status)
        except FormErrors as refused:
            errors = {"errors": refused.errors}
            return self.page(request, self.login_template, values | errors, status=refused.status)
        response = redirect(values["next"])
        lifetime = int(STAFF_TOKEN_LIFETIME.total_seconds())
        set_login_cookie(response, request, self.cookie, session["token"], lifetime)
        return response

    async def _log_out(self, request: Request, ctx: Ctx) -> Response:
        await checked_form(request)
        token = request.cookies.get(self.cookie)
        if token:
            with contextlib.suppress(FormErrors):  # expired already: logged out either way
                await Api(ctx.http, ctx.settings.review_url, token).call(
                    "DELETE", "/v1/staff/sessions/current"
                )
        response = redirect(self.login_url)
        response.delete_cookie(self.cookie, path="/")
        return response
