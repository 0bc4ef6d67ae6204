"""Buyers and staff as the benchmarks drive them: every step a real HTTP call to the running stack's
APIs, as the website and the apps make them (the demo's steps, ``deploy/local/demo.py``, made async
so that thousands run at once).

A unit's account signs up, registers its unit and its people (each with a photo, mission collection
so that no courier paces the end), the mission approves the unit, the unit pays one QR order for
everyone (the gateway sandbox calls back, signed), the mission passes each person, and the card is
made and waits for collection: ``DISPATCHED``.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import httpx
from stdnum.cn import ric

from deploy.local.demo import demo_credit_code, demo_photo, expo_day
from shared.settings import Settings
from shared.types import RegistrationStatus

S = RegistrationStatus
DISPATCHED = {S.AWAITING_COLLECTION, S.SHIPPED, S.ONSITE_PICKUP, S.DELIVERED}
PHOTO = demo_photo("bench")
_serial = itertools.count(1)  # distinct ID numbers, mobiles and logins across one run


class Refused(RuntimeError):
    """An API answered with an error the benchmark did not expect."""


def _id_number() -> str:
    """A valid resident ID number no other person of this run has: the serial picks the birthday and
    the sequence number."""
    n = next(_serial)
    birth = date(1960, 1, 1) + timedelta(days=n // 1000)
    body = "310104" + birth.strftime("%Y%m%d") + f"{n % 1000:03d}"
    return body + ric.calc_check_digit(body + "0")


def _mobile() -> str:
    return f"139{next(_serial) % 100_000_000:08d}"


@dataclass
class Unit:
    """A unit's account (its Authorization header) and what it registered."""

    headers: dict[str, str]
    unit_id: str = ""
    registration_ids: list[str] = field(default_factory=list)
    order_no: str = ""


class Driver:
    """One HTTP client for the whole run (``limits``: the connections it may open at once)."""

    def __init__(self, settings: Settings, *, connections: int = 64, timeout: float = 120) -> None:
        self.s = settings
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        self.http = httpx.AsyncClient(limits=limits, timeout=timeout)
        self.staff: dict[str, str] = {}
        self.expo_day = expo_day(settings)

    async def close(self) -> None:
        await self.http.aclose()

    async def call(self, method: str, url: str, headers: dict[str, str], **kwargs: Any) -> Any:
        response = await self.http.request(method, url, headers=headers, **kwargs)
        if response.is_error:
            raise Refused(f"{method} {url} -> {response.status_code}: {response.text[:300]}")
        return response.json() if response.content else None

    # ------------------------------------------------------------------ staff

    async def staff_login(self) -> dict[str, str]:
        """The organiser's administrator at the review service (every mission's reviewer)."""
        login = await self.call(
            "POST",
            f"{self.s.review_url}/v1/staff/sessions",
            {},
            json={"login": self.s.admin_login, "password": self.s.admin_password.get_secret_value()},
        )
        self.staff = {"Authorization": f"Bearer {login['token']}"}
        return self.staff

    async def decide(self, kind: str, subject_id: str, decision: str = "approve") -> float:
        """The mission's decision on a unit (``kind="units"``) or a person (``"registrations"``): the
        seconds from sending it to its answer (HTTP to the workflow's update and back)."""
        start = time.perf_counter()
        await self.call(
            "POST",
            f"{self.s.review_url}/v1/{kind}/{subject_id}/decision",
            self.staff,
            json={"decision": decision},
        )
        return time.perf_counter() - start

    async def queued(self, kind: str) -> set[str]:
        """The subjects waiting in the review queue (``unit`` or ``person``), every page of it."""
        found: set[str] = set()
        for offset in itertools.count(0, 500):
            page = await self.call(
                "GET",
                f"{self.s.review_url}/v1/queue",
                self.staff,
                params={"kind": kind, "limit": 500, "offset": offset},
            )
            found |= {task["subject_id"] for task in page}
            if len(page) < 500:
                return found
        return found

    # ------------------------------------------------------------------ buyers

    async def sign_up(self) -> Unit:
        n = next(_serial)
        email = f"bench-{n}-{secrets.token_hex(3)}@buyers.example.com"
        password = f"Bench-{secrets.token_urlsafe(9)}-2023"
        reg = self.s.registration_url
        await self.call(
            "POST",
            f"{reg}/v1/accounts",
            {},
            json={"kind": "unit", "email": email, "mobile": _mobile(), "password": password},
        )
        login = await self.call("POST", f"{reg}/v1/sessions", {}, json={"login": email, "password": password})
        return Unit(headers={"Authorization": f"Bearer {login['token']}"})

    async def register_unit(self, unit: Unit) -> str:
        answer = await self.call(
            "POST",
            f"{self.s.registration_url}/v1/units",
            unit.headers,
            json={
                "kind": "enterprise",
                "name": f"上海采购测试有限公司{next(_serial)}",
                "credit_code": demo_credit_code(),
                "address": "上海市浦东新区世纪大道100号",
                "industry": "批发和零售业 Wholesale and retail",
                "contact": {"name": "王芳", "mobile": _mobile(), "email": "contact@buyers.example.com"},
                "mission": {"affiliation": "residence"},
            },
        )
        unit.unit_id = answer["id"]
        return unit.unit_id

    async def register_person(self, unit: Unit, *, photo: bool = True) -> str:
        """A person of the unit, collected by the mission; with the photo uploaded and checked."""
        mobile = _mobile()
        person = await self.call(
            "POST",
            f"{self.s.registration_url}/v1/units/{unit.unit_id}/people",
            unit.headers,
            json={
                "name": "张伟",
                "id_type": "resident_id",
                "id_number": _id_number(),
                "mobile": mobile,
                "email": f"p{mobile}@buyers.example.com",
                "job_title": "采购经理 Purchasing manager",
                "personnel_label": "purchaser",
                "delivery_method": "mission_collection",
                "entrance_date": self.expo_day,
            },
        )
        rid: str = person["registration_id"]
        if photo:
            upload = person["photo_upload"]
            put = await self.http.put(upload["url"], content=PHOTO, headers=upload["headers"])
            put.raise_for_status()
            await self.call(
                "POST", f"{self.s.registration_url}/v1/registrations/{rid}/photo-confirm", unit.headers
            )
        unit.registration_ids.append(rid)
        return rid

    async def pay_by_qr(self, unit: Unit, registration_ids: list[str] | None = None) -> str:
        """One QR order for the people, paid as the buyer's phone does (the sandbox calls back)."""
        ids = registration_ids or unit.registration_ids
        order = await self.call(
            "POST",
            f"{self.s.payment_url}/v1/orders",
            unit.headers | {"Idempotency-Key": f"bench-{unit.unit_id}-{len(ids)}"},
            json={"unit_id": unit.unit_id, "registration_ids": ids, "qr_channel": "wechat"},
        )
        await self.call("POST", order["qr_payload"], {})
        unit.order_no = order["order_no"]
        return unit.order_no

    async def statuses(self, unit: Unit) -> dict[str, S]:
        """Each of the unit's people's status, in one call (as the buyer's home page reads them)."""
        people = await self.call(
            "GET", f"{self.s.registration_url}/v1/units/{unit.unit_id}/people", unit.headers
        )
        return {p["registration_id"]: S(p["status"]["code"]) for p in people}

    async def wait_all(
        self, units: Iterable[Unit], wanted: set[S], *, timeout: float, every: float = 1.0
    ) -> float:
        """Until every person of ``units`` is in one of ``wanted``: the seconds it took. Polls each unit
        once per ``every`` seconds (few calls: the waiting must not be the load)."""
        start = time.perf_counter()
        pending = list(units)
        while pending:
            answers = await asyncio.gather(*(self.statuses(unit) for unit in pending))
            pending = [
                unit
                for unit, found in zip(pending, answers, strict=True)
                if len(found) < len(unit.registration_ids) or not set(found.values()) <= wanted
            ]
            if not pending:
                break
            if time.perf_counter() - start > timeout:
                sample = pending[0]
                raise TimeoutError(
                    f"{len(pending)} units not yet {sorted(s.value for s in wanted)} after {timeout:.0f}s; "
                    f"e.g. {sample.unit_id}: {await self.statuses(sample)}"
                )
            await asyncio.sleep(every)
        return time.perf_counter() - start


async def bounded(limit: int, jobs: Iterable[Any]) -> list[Any]:
    """Run coroutines with at most ``limit`` at once; their results in order."""
    gate = asyncio.Semaphore(limit)

    async def one(job: Any) -> Any:
        async with gate:
            return await job

    return await asyncio.gather(*(one(job) for job in jobs))
