"""The interface a courier adapter implements.

A real adapter (SF Express, EMS) books a pickup through the carrier's API and returns its waybill
number; tracking events come back as the carrier's signed callbacks (``POST /v1/courier/events``) and
from its query API (``track``), which heals callbacks that never came. The embedded stack talks to
the sandbox courier (``services/certificate/sandbox_courier.py``) through ``HttpCourier``.
"""

from __future__ import annotations

import json
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol
from urllib.parse import quote, urlencode

import httpx
from pydantic import BaseModel

from shared import signing
from shared.db import utcnow
from shared.records import DeliveryAddress

SANDBOX_CARRIER = "SANDBOX-EXPRESS"


class TrackingStatus(StrEnum):
    BOOKED = "booked"
    PICKED_UP = "picked_up"
    IN_TRANSIT = "in_transit"
    OUT_FOR_DELIVERY = "out_for_delivery"
    DELIVERED = "delivered"
    DELIVERY_FAILED = "delivery_failed"  # nobody there: the courier tries again
    RETURNED = "returned"  # given up: the parcel goes back to the sender


class Shipment(BaseModel):
    carrier: str
    tracking_no: str


class CourierEvent(BaseModel):
    """One tracking event of a waybill, as a courier reports it (its id is unique at that courier)."""

    event_id: str
    tracking_no: str
    status: TrackingStatus
    description_zh: str
    description_en: str
    location: str | None = None
    occurred_at: datetime


class CourierUnavailable(Exception):
    """The courier did not answer, or answered with a server error: try again later."""


class AddressRefused(Exception):
    """The courier does not deliver to this address (outside the Chinese mainland, say): booking it
    again will not help."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class Courier(Protocol):
    carrier: str

    async def book(self, *, reference: str, address: DeliveryAddress) -> Shipment:
        """Book a pickup for the parcel ``reference`` (our certificate number): the same reference
        books nothing twice and answers the same waybill."""
        ...

    async def track(self, tracking_no: str) -> list[CourierEvent]:
        """Every tracking event of a waybill so far, oldest first (the query API)."""
        ...


class HttpCourier:
    """Talks over signed HTTP to the sandbox courier (services/certificate/sandbox_courier.py), or to any
    courier speaking the same API.

    Every request is signed with the key we share with the courier (``shared.signing``); for a query
    (GET), the signed message is the request's path and query string, so a signature is good for that
    one waybill only. Its tracking callbacks come to ``notify_url``, signed with the same key.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: str,
        customer_id: str,
        key: str,
        notify_url: str,
        *,
        carrier: str = SANDBOX_CARRIER,
    ) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.customer_id = customer_id
        self.key = key
        self.notify_url = notify_url
        self.carrier = carrier

    async def _send(self, method: str, url: httpx.URL, body: bytes) -> httpx.Response:
        # A GET carries no body: its path and query are what is signed instead.
        signed = body if method != "GET" else url.raw_path
        headers = {"Content-Type": "application/json", **signing.sign(self.key, signed, utcnow())}
        try:
            response = await self.http.request(method, url, content=body or None, headers=headers)
        except httpx.HTTPError as exc:  # refused, reset, timed out: the courier may be back soon
            raise CourierUnavailable(f"courier at {self.base_url} unreachable: {exc!r}") from exc
        if response.status_code >= 500:
            raise CourierUnavailable(f"courier at {self.base_url} answered {response.status_code}")
        return response

    async def book(self, *, reference: str, address: DeliveryAddress) -> Shipment:
        payload = {
            "customer_id": self.customer_id,
            "reference": reference,
            "address": address.model_dump(),
            "notify_url": self.notify_url,
        }
        url = httpx.URL(f"{self.base_url}/v1/waybills")
        response = await self._send("POST", url, json.dumps(payload).encode())
        if response.status_code == 422:
            error: dict[str, Any] = response.json()
            raise AddressRefused(str(error.get("code", "refused")), str(error.get("message", response.text)))
        response.raise_for_status()  # 401/403: our key or account is wrong; retrying waits for a fix
        result: dict[str, Any] = response.json()
        return Shipment(carrier=str(result["carrier"]), tracking_no=str(result["tracking_no"]))

    async def track(self, tracking_no: str) -> list[CourierEvent]:
        query = urlencode({"customer_id": self.customer_id})
        url = httpx.URL(f"{self.base_url}/v1/waybills/{quote(tracking_no, safe='')}?{query}")
        response = await self._send("GET", url, b"")
        if response.status_code == 404:  # not (yet) known to the courier: nothing to show
            return []
        response.raise_for_status()
        events = [CourierEvent.model_validate(event) for event in response.json()["events"]]
        return sorted(events, key=lambda event: event.occurred_at)
