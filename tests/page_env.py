"""What the page tests and the review service's permission tests share: reading an element's text
out of a page, a browser on an app (its form token, its login cookie), and staff accounts logged in on
the review service's database."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from html.parser import HTMLParser
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from services.review.models import StaffAccount, StaffRole, StaffSession
from shared.db import utcnow
from shared.ids import new_id
from shared.security import hash_password

CSRF = "test-form-token"

# ------------------------------------------------------------------------------------------ HTML


VOID_ELEMENTS = frozenset({"input", "img", "br", "meta", "link", "hr", "source", "wbr"})


class _Element(HTMLParser):
    """The text inside the element with a given id (and whether it was found)."""

    def __init__(self, element_id: str) -> None:
        super().__init__()
        self.element_id, self.depth, self.found = element_id, 0, False
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.depth:
            self.depth += tag not in VOID_ELEMENTS
        elif dict(attrs).get("id") == self.element_id:
            self.found, self.depth = True, 1

    def handle_endtag(self, tag: str) -> None:
        if self.depth:
            self.depth -= 1

    def handle_data(self, data: str) -> None:
        if self.depth:
            self.parts.append(data)


def text_of(html: str, element_id: str) -> str | None:
    """The whitespace-collapsed text of the element ``id=element_id``; None if there is none."""
    parser = _Element(element_id)
    parser.feed(html)
    return " ".join(" ".join(parser.parts).split()) if parser.found else None


# ------------------------------------------------------------------------------------------ browsers


def page_browser(app: Any, base_url: str, cookie: str, token: str | None = None) -> httpx.AsyncClient:
    """A browser on ``app``: a form token, and the site's login ``cookie`` if logged in."""
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url)
    client.cookies.set("expo_csrf", CSRF)
    if token:
        client.cookies.set(cookie, token)
    return client


async def add_staff(
    session: AsyncSession, role: StaffRole, mission: str | None, password: str | None = None
) -> tuple[str, str]:
    """A staff account of the review service (with ``password``, else one nobody logs in with), logged
    in for an hour: (login, token)."""
    login = f"{role.value}-{new_id('L').lower()}@organiser.example.com"
    token = secrets.token_urlsafe(24)
    account = StaffAccount(
        id=new_id("S"), login=login, name=f"{role.value} {mission or ''}", role=role, mission=mission,
        password_hash=hash_password(password) if password else "unused",
    )  # fmt: skip
    session.add(account)
    await session.flush()
    session.add(
        StaffSession(
            token_sha256=hashlib.sha256(token.encode()).hexdigest(),
            staff_id=account.id,
            expires_at=utcnow() + timedelta(hours=1),
        )
    )
    return login, token
