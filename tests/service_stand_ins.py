"""Stand-ins for the internal routes one service calls on the others, for tests that run a service in
process: small FastAPI apps to mount on the service context's httpx client (``StandIns.mounts``), at
the base URLs the settings are given (``Settings(..., **URLS)``).

- the registration service: ``GET /internal/sessions/current`` (the buyer's ``Bearer <token>`` in
  X-Buyer-Authorization) and ``GET /internal/registrations/{id}`` (``StandIns.people``; ``person``
  makes a record);
- the review service: ``GET /internal/staff/sessions/current`` (the token in X-Staff-Authorization);
- the notification service: ``POST /internal/messages`` (kept in ``StandIns.messages``).

Tokens: a buyer's is ``unit:<unit id>`` (``unit:`` an account that has not registered its unit yet);
a staff member's ``staff:<role>[:<mission>]``, whose login is ``<role>.<mission, or all>`` at
organiser.example.com. ``unit``, ``staff`` and ``bearer`` make their Authorization headers. Every
route wants the service token (else 401 ``unauthorised``), as the real ones do.

Not a test module."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypedDict

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from shared import auth as shared_auth
from shared.db import utcnow
from shared.records import BuyerSession, PersonRecord, StaffSessionRecord
from shared.settings import Settings
from shared.types import DeliveryMethod, FeeKind, RegistrationStatus

REGISTRATION = "http://registration.test"
REVIEW = "http://review.test"
NOTIFICATION = "http://notification.test"


class ServiceUrls(TypedDict):
    """Where the settings send a service to the others: ``Settings(..., **URLS)``."""

    registration_url: str
    review_url: str
    notification_url: str


URLS = ServiceUrls(registration_url=REGISTRATION, review_url=REVIEW, notification_url=NOTIFICATION)


def bearer(token: str) -> dict[str, str]:
    """The Authorization header carrying ``token``."""
    return {"Authorization": f"Bearer {token}"}


def unit(unit_id: str) -> dict[str, str]:
    """A buyer of ``unit_id`` (``""``: an account without a unit), logged in."""
    return bearer(f"unit:{unit_id}")


def staff(role: str, mission: str | None = None) -> dict[str, str]:
    """A staff member in ``role`` (of ``mission``; None: of every mission), logged in."""
    return bearer(f"staff:{role}:{mission or ''}")


def person(
    registration_id: str,
    unit_id: str,
    mission: str = "shanghai",
    sub_mission: str | None = None,
    method: DeliveryMethod = DeliveryMethod.MISSION_COLLECTION,
    *,
    edition: str = "ciie6",
) -> PersonRecord:
    """A buyer of ``unit_id`` (named ``<unit id> 贸易有限公司``) as the registration service knows them
    once their card is in production: holder ``持证人<registration id>``, email ``<registration id in
    lower case>@buyers.example.com``, photo ``<edition>/<registration id>.png``."""
    return PersonRecord(
        registration_id=registration_id,
        edition=edition,
        unit_id=unit_id,
        unit_name=f"{unit_id} 贸易有限公司",
        name=f"持证人{registration_id}",
        nationality="CN",
        mobile="+8613900000000",
        email=f"{registration_id.lower()}@buyers.example.com",
        mission=mission,
        sub_mission=sub_mission,
        fee_kind=FeeKind.STANDARD,
        status=RegistrationStatus.CERTIFICATE_IN_PRODUCTION,
        delivery_method=method,
        delivery_address=None,
        photo_key=f"{edition}/{registration_id}.png",
    )


def _answer(record: BuyerSession | StaffSessionRecord | PersonRecord) -> JSONResponse:
    return JSONResponse(record.model_dump(mode="json"))


def _unauthenticated() -> JSONResponse:
    return JSONResponse({"code": "unauthenticated"}, status_code=401)


def _presented(request: Request, header: str) -> tuple[str, str, str]:
    """The token a caller presented in ``header`` as ``Bearer <kind>:<rest>``: the whole token, its kind
    (``unit``, ``staff``; "" for another scheme) and the rest."""
    scheme, _, token = request.headers.get(header, "").partition(" ")
    kind, _, rest = token.partition(":")
    return token, kind if scheme == "Bearer" else "", rest


@dataclass
class StandIns:
    """What the registration, review and notification services answer on their internal routes.

    ``down`` makes every route answer 503; ``mail_down`` makes the notification service answer 502
    (its mail channel is unavailable). A buyer token in ``refused_buyers`` is refused (logged out).
    ``buyer_lookups`` keeps the buyer tokens asked about and ``person_lookups`` the registration ids,
    in order; ``messages`` the bodies of the messages sent."""

    token: str
    people: dict[str, PersonRecord] = field(default_factory=dict)
    messages: list[dict[str, Any]] = field(default_factory=list)
    down: bool = False
    mail_down: bool = False
    refused_buyers: set[str] = field(default_factory=set)
    buyer_lookups: list[str] = field(default_factory=list)
    person_lookups: list[str] = field(default_factory=list)

    @classmethod
    def fresh(cls, settings: Settings) -> StandIns:
        """Stand-ins that want ``settings``' service token. The services' cache of buyer sessions is
        emptied, so that none answered by an earlier test's stand-ins is used."""
        shared_auth.clear_cache()
        return cls(token=settings.internal_token.get_secret_value())

    def mounts(self) -> dict[str, httpx.AsyncBaseTransport]:
        """The transports for an httpx client's ``mounts``: the three services at their base URLs (a
        service under test never calls itself: its own stand-in stays idle)."""
        apps = {REGISTRATION: self.registration, REVIEW: self.review, NOTIFICATION: self.notification}
        return {url: httpx.ASGITransport(app=app()) for url, app in apps.items()}

    def _app(self) -> FastAPI:
        """An app whose every route wants the service token, and answers 503 while ``down``."""
        app = FastAPI()

        @app.middleware("http")
        async def internal(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
            if self.down:
                return JSONResponse({"code": "unavailable"}, status_code=503)
            if request.headers.get("authorization") != f"Bearer {self.token}":
                return JSONResponse({"code": "unauthorised"}, status_code=401)
            return await call_next(request)

        return app

    def registration(self) -> FastAPI:
        """The registration service: buyer sessions and person records."""
        app = self._app()

        @app.get("/internal/sessions/current")
        async def session(request: Request) -> JSONResponse:
            token, kind, unit_id = _presented(request, "x-buyer-authorization")
            self.buyer_lookups.append(token)
            if kind != "unit" or token in self.refused_buyers:
                return _unauthenticated()
            return _answer(
                BuyerSession(
                    account_id=f"A{unit_id}",
                    kind="unit",
                    unit_id=unit_id or None,
                    expires_at=utcnow() + timedelta(hours=1),
                )
            )

        @app.get("/internal/registrations/{registration_id}")
        async def person_record(registration_id: str) -> JSONResponse:
            self.person_lookups.append(registration_id)
            record = self.people.get(registration_id)
            if record is None:
                return JSONResponse({"code": "not_found"}, status_code=404)
            return _answer(record)

        return app

    def review(self) -> FastAPI:
        """The review service: staff sessions."""
        app = self._app()

        @app.get("/internal/staff/sessions/current")
        async def session(request: Request) -> JSONResponse:
            _, kind, rest = _presented(request, "x-staff-authorization")
            role, _, mission = rest.partition(":")
            if kind != "staff" or not role:
                return _unauthenticated()
            return _answer(
                StaffSessionRecord(
                    staff_id=f"S{role}{mission}",
                    login=f"{role}.{mission or 'all'}@organiser.example.com",
                    role=role,
                    mission=mission or None,
                    expires_at=utcnow() + timedelta(hours=1),
                )
            )

        return app

    def notification(self) -> FastAPI:
        """The notification service: messages, kept as sent."""
        app = self._app()

        @app.post("/internal/messages")
        async def message(request: Request) -> JSONResponse:
            if self.mail_down:
                return JSONResponse({"code": "channel_unavailable"}, status_code=502)
            body: dict[str, Any] = await request.json()
            self.messages.append(body)
            return JSONResponse({"key": body["key"], "channel": body["channel"]}, status_code=202)

        return app
