"""The interface a courier adapter implements, and the embedded sandbox courier.

A real adapter (SF Express, EMS) books a pickup through the carrier's API and returns its waybill
number; the sandbox makes a well-formed one, keyed by our reference so a retry books nothing twice.
"""

from __future__ import annotations

import hashlib
from typing import Protocol

from pydantic import BaseModel

from shared.records import DeliveryAddress


class Shipment(BaseModel):
    carrier: str
    tracking_no: str


class Courier(Protocol):
    async def book(self, *, reference: str, address: DeliveryAddress) -> Shipment: ...


class SandboxCourier:
    carrier = "SANDBOX-EXPRESS"

    async def book(self, *, reference: str, address: DeliveryAddress) -> Shipment:
        digits = int(hashlib.sha256(reference.encode()).hexdigest(), 16) % 10**12
        return Shipment(carrier=self.carrier, tracking_no=f"SX{digits:012d}")
