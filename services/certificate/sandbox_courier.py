"""A sandbox express courier that behaves like the real ones (SF Express, EMS) at the edge of the world.

- ``POST /v1/waybills`` (signed by the customer): book a parcel to a Chinese mainland address. The
  same reference answers the same waybill; an address the courier does not serve (a mobile outside
  +86, a province outside the 31 mainland provincial regions) is refused with 422.
- The parcel then moves on its own, ``pace`` seconds between events: picked up, in transit (through
  one or two hubs), out for delivery, delivered. Every event is POSTed to the customer's
  ``notify_url`` as a signed callback, retried with back-off until it is acknowledged with a 2xx (so
  the customer sees duplicates).
- ``GET /v1/waybills/{tracking_no}?customer_id=...`` (signed: for a GET, over its path and query):
  the query API, every event so far, to heal callbacks that never came.

The sandbox misbehaves on request, as real couriers do on their own (``POST /v1/sandbox/behaviour``,
for every parcel or for one reference; the fields given change, the others stay):

- ``pace=S``: seconds between a parcel's events (0: it moves only when advanced);
- ``copies=N``: each callback is delivered N times (duplicates);
- ``lost=true``: callbacks are never delivered (the query API still shows the events);
- ``out_of_order=true``: a waybill's callbacks are held back and delivered, shuffled, once it reaches
  its last event (delivered or returned);
- ``booking_failures=K``: the next K bookings are answered 503 (nothing booked);
- ``delivery_failed=once|returned``: a failed delivery attempt before the parcel is delivered, or
  after which it goes back to the sender.

``POST /v1/sandbox/waybills/{tracking_no}/advance`` moves a parcel to its next event now (tests and
demos). Every callback sent is kept in ``STATE.sent`` (URL, body, headers, status), so a test can
replay an identical signed callback.

State is kept in memory: it is a sandbox, and restarting it is like switching couriers.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

import httpx
import phonenumbers
from fastapi import Depends, FastAPI, Query, Request
from pydantic import BaseModel, Field, ValidationError

from services.certificate.courier import SANDBOX_CARRIER, TrackingStatus
from shared import signing
from shared.db import utcnow
from shared.http import ApiError, add_health, install_error_handlers
from shared.records import DeliveryAddress
from shared.settings import Settings, get_settings

log = logging.getLogger(__name__)
CALLBACK_ATTEMPTS = 8
CARRIER = SANDBOX_CARRIER
S = TrackingStatus
FINAL = (S.DELIVERED, S.RETURNED)
# Where the certificate office sends from: the expo's city (the National Exhibition and Convention Center).
ORIGIN = "上海市青浦区"
ORIGIN_HUB = "上海转运中心"

# The 31 provincial-level regions of the Chinese mainland: where the courier delivers. Hong Kong, Macao
# and Taiwan are not among them (a courier's own list; the registration service keeps its own).
MAINLAND = frozenset(
    {
        "北京", "天津", "河北", "山西", "内蒙古", "辽宁", "吉林", "黑龙江", "上海", "江苏", "浙江", "安徽",
        "福建", "江西", "山东", "河南", "湖北", "湖南", "广东", "广西", "海南", "重庆", "四川", "贵州",
        "云南", "西藏", "陕西", "甘肃", "青海", "宁夏", "新疆",
    }
)  # fmt: skip
SUFFIXES = ("维吾尔自治区", "壮族自治区", "回族自治区", "自治区", "省", "市")

DeliveryFailure = Literal["none", "once", "returned"]


class Behaviour(BaseModel):
    """How the sandbox treats a parcel (defaults: a well-behaved courier at demo speed)."""

    # Five events after booking at 3 s: a demo's parcel is delivered some 15 s after dispatch.
    pace: float = Field(default=3.0, ge=0, le=86400, description="seconds between events; 0: on advance only")
    copies: int = Field(default=1, ge=1, le=20)
    lost: bool = False
    out_of_order: bool = False
    booking_failures: int = Field(default=0, ge=0)
    delivery_failed: DeliveryFailure = "none"


@dataclass
class SentCallback:
    url: str
    body: bytes
    headers: dict[str, str]
    status: int | None  # None: the customer could not be reached


@dataclass
class Waybill:
    customer_id: str
    reference: str
    tracking_no: str
    address: DeliveryAddress
    notify_url: str
    key: str  # what its callbacks are signed with (the customer's key when it booked)
    events: list[dict[str, Any]] = field(default_factory=list)
    held: list[dict[str, Any]] = field(default_factory=list)  # callbacks held back (out of order)
    poke: asyncio.Event = field(default_factory=asyncio.Event)  # advanced by hand, or its pace changed
    mover: asyncio.Task[None] | None = None

    @property
    def finished(self) -> bool:
        return bool(self.events) and self.events[-1]["status"] in FINAL


@dataclass
class SandboxState:
    waybills: dict[str, Waybill] = field(default_factory=dict)  # by tracking_no
    references: dict[str, str] = field(default_factory=dict)  # (customer, reference) key -> tracking_no
    default: Behaviour = field(default_factory=Behaviour)
    behaviours: dict[str, Behaviour] = field(default_factory=dict)  # by reference
    booking_attempts: dict[str, int] = field(default_factory=dict)  # by reference, "*": under the default
    deliveries: set[asyncio.Task[None]] = field(default_factory=set)
    sent: list[SentCallback] = field(default_factory=list)
    # The client callbacks are delivered with (tests mount the customer's app in process); None: a new one.
    callback_client: httpx.AsyncClient | None = None
    retry_seconds: float = 1.0  # the first back-off between unacknowledged deliveries (doubling)

    def behaviour(self, reference: str) -> Behaviour:
        return self.behaviours.get(reference) or self.default

    def reset(self) -> None:
        for waybill in self.waybills.values():
            if waybill.mover is not None:
                waybill.mover.cancel()
        for delivery in list(self.deliveries):
            delivery.cancel()
        self.waybills.clear()
        self.references.clear()
        self.default = Behaviour()
        self.behaviours.clear()
        self.booking_attempts.clear()
        self.sent.clear()
        self.callback_client = None
        self.retry_seconds = 1.0

    async def delivered(self) -> None:
        """Until every callback under way has been delivered (or given up)."""
        while self.deliveries:
            await asyncio.gather(*list(self.deliveries), return_exceptions=True)


app = FastAPI(title="Courier sandbox", description=__doc__)
install_error_handlers(app)
add_health(app, "courier-sandbox")
STATE = SandboxState()


def _verify(settings: Settings, request: Request, signed: bytes) -> None:
    try:
        signing.verify(settings.courier_key.get_secret_value(), dict(request.headers), signed, utcnow())
    except signing.SignatureError as exc:
        raise ApiError(401, exc.code, str(exc)) from exc


def _customer(settings: Settings, customer_id: object) -> None:
    if customer_id != settings.courier_customer_id:
        raise ApiError(403, "unknown_customer", "unknown customer account", "未知的客户账号")


# ------------------------------------------------------------------------------------------ booking


class BookingIn(BaseModel):
    customer_id: str
    reference: str = Field(min_length=1, max_length=64)
    address: DeliveryAddress
    notify_url: str


class WaybillOut(BaseModel):
    carrier: str
    tracking_no: str
    reference: str
    events: list[dict[str, Any]]


def _province(name: str) -> str:
    short = name.strip()
    for suffix in SUFFIXES:
        short = short.removesuffix(suffix)
    return short


def _refusal(address: DeliveryAddress) -> ApiError | None:
    """Why the courier does not serve ``address``, if it does not: mainland mobiles and provinces only."""
    try:
        number = phonenumbers.parse(address.mobile, "CN")
    except phonenumbers.NumberParseException:
        number = None
    if (
        number is None
        or not phonenumbers.is_valid_number(number)
        or phonenumbers.region_code_for_number(number) != "CN"
    ):
        return ApiError(
            422,
            "address_not_served",
            "we deliver to the Chinese mainland only: the recipient needs a mainland (+86) mobile",
            "仅限中国大陆地区收寄：收件人须使用中国大陆（+86）手机号码",
            field="address.mobile",
        )
    if _province(address.province) not in MAINLAND:
        return ApiError(
            422,
            "address_not_served",
            "we deliver to the Chinese mainland only: the province is not one of its provincial regions",
            "仅限中国大陆地区收寄：收件省份不在服务范围内",
            field="address.province",
        )
    return None


@app.post("/v1/waybills")
async def book(request: Request, settings: Annotated[Settings, Depends(get_settings)]) -> WaybillOut:
    """Book a pickup for the parcel ``reference``: the same reference answers the same waybill."""
    body = await request.body()
    _verify(settings, request, body)
    try:
        booking = BookingIn.model_validate_json(body)
    except ValidationError as exc:
        raise ApiError(422, "invalid_input", "the booking is not understood", "下单信息有误") from exc
    _customer(settings, booking.customer_id)
    scope = booking.reference if booking.reference in STATE.behaviours else "*"
    STATE.booking_attempts[scope] = STATE.booking_attempts.get(scope, 0) + 1
    if STATE.booking_attempts[scope] <= STATE.behaviour(booking.reference).booking_failures:
        raise ApiError(
            503, "system_busy", "the booking system is busy: try again later", "系统繁忙，请稍后重试"
        )
    known = STATE.references.get(f"{booking.customer_id}/{booking.reference}")
    if known is not None:
        return _out(STATE.waybills[known], first_only=True)
    refusal = _refusal(booking.address)
    if refusal is not None:
        raise refusal
    tracking_no = f"SX{secrets.randbelow(10**13):013d}"
    while tracking_no in STATE.waybills:
        tracking_no = f"SX{secrets.randbelow(10**13):013d}"
    waybill = Waybill(
        customer_id=booking.customer_id,
        reference=booking.reference,
        tracking_no=tracking_no,
        address=booking.address,
        notify_url=booking.notify_url,
        key=settings.courier_key.get_secret_value(),
    )
    STATE.waybills[tracking_no] = waybill
    STATE.references[f"{booking.customer_id}/{booking.reference}"] = tracking_no
    _record(
        waybill,
        S.BOOKED,
        "上海市",
        "寄件方已下单，等待快递员上门揽收",
        "Booked by the sender; awaiting pickup",
    )
    waybill.mover = asyncio.create_task(_move(waybill))
    return _out(waybill, first_only=True)


def _out(waybill: Waybill, *, first_only: bool = False) -> WaybillOut:
    return WaybillOut(
        carrier=CARRIER,
        tracking_no=waybill.tracking_no,
        reference=waybill.reference,
        events=waybill.events[:1] if first_only else list(waybill.events),
    )


# ------------------------------------------------------------------------------------------ the parcel moves


async def _move(waybill: Waybill) -> None:
    """The parcel's journey: its next event every ``pace`` seconds (read afresh each step, so a change
    of behaviour applies to parcels under way), until it is delivered or returned."""
    while not waybill.finished:
        pace = STATE.behaviour(waybill.reference).pace
        waybill.poke.clear()
        try:
            await asyncio.wait_for(waybill.poke.wait(), timeout=pace or None)
        except TimeoutError:
            _advance(waybill)
        # Poked: advanced by hand, or the pace changed: wait a whole pace again from now.


def _advance(waybill: Waybill) -> dict[str, Any]:
    """The parcel's next event, recorded and announced to the customer."""
    address = waybill.address
    city = address.city.strip() or address.province.strip()
    there = f"{city}{address.district.strip()}"
    local = _province(address.province) == "上海"
    statuses = [event["status"] for event in waybill.events]
    last, failed_before = statuses[-1], S.DELIVERY_FAILED in statuses
    outcome = STATE.behaviour(waybill.reference).delivery_failed
    if last == S.BOOKED:
        return _record(waybill, S.PICKED_UP, ORIGIN, "快递员已揽收", "Picked up by the courier")
    if last == S.PICKED_UP and local:
        return _record(
            waybill, S.IN_TRANSIT, ORIGIN_HUB, "快件已到达【上海转运中心】，准备派送",
            "Arrived at the Shanghai hub; to be delivered in the city",
        )  # fmt: skip
    if last == S.PICKED_UP:
        return _record(
            waybill, S.IN_TRANSIT, ORIGIN_HUB, f"快件已到达【上海转运中心】，正发往【{city}】",
            f"Arrived at the Shanghai hub; leaving for {city}",
        )  # fmt: skip
    if last == S.IN_TRANSIT and not local and statuses.count(S.IN_TRANSIT) == 1:
        return _record(
            waybill,
            S.IN_TRANSIT,
            f"{city}转运中心",
            f"快件已到达【{city}转运中心】",
            f"Arrived at the {city} hub",
        )
    if last == S.IN_TRANSIT or (last == S.DELIVERY_FAILED and outcome != "returned"):
        return _record(
            waybill, S.OUT_FOR_DELIVERY, there, "快递员正在派送，请保持电话畅通",
            "Out for delivery: please keep your phone on",
        )  # fmt: skip
    if last == S.DELIVERY_FAILED:
        return _record(
            waybill,
            S.RETURNED,
            there,
            "快件无法派送，已退回寄件人",
            "Could not be delivered; returned to the sender",
        )
    if last == S.OUT_FOR_DELIVERY and outcome != "none" and not failed_before:
        again = outcome == "once"
        return _record(
            waybill, S.DELIVERY_FAILED, there,
            "派送不成功：收件人不在或联系不上" + ("，快递员将再次派送" if again else ""),
            "Delivery attempt failed: the recipient was absent or could not be reached"
            + ("; the courier will try again" if again else ""),
        )  # fmt: skip
    if last == S.OUT_FOR_DELIVERY:
        return _record(
            waybill, S.DELIVERED, there, "快件已签收，签收人：本人", "Delivered; signed for by the recipient"
        )
    raise ApiError(409, "waybill_finished", "the parcel has reached its last event", "该快件已妥投或已退回")


def _record(waybill: Waybill, status: S, location: str, zh: str, en: str) -> dict[str, Any]:
    now = utcnow()
    if waybill.events:  # strictly later than the one before, however fast a test advances
        now = max(now, datetime.fromisoformat(waybill.events[-1]["occurred_at"]) + timedelta(microseconds=1))
    event = {
        "event_id": f"{waybill.tracking_no}-{len(waybill.events) + 1:02d}",
        "tracking_no": waybill.tracking_no,
        "status": status.value,
        "description_zh": zh,
        "description_en": en,
        "location": location,
        "occurred_at": now.isoformat(),
    }
    waybill.events.append(event)
    _announce(waybill, event)
    return event


def _announce(waybill: Waybill, event: dict[str, Any]) -> None:
    """Send the event's callback as the behaviour says: now, N times, never, or held back and shuffled."""
    behaviour = STATE.behaviour(waybill.reference)
    if behaviour.lost:
        log.info("callback for %s lost on purpose", event["event_id"])
        return
    if not behaviour.out_of_order:
        _schedule(waybill, [event], behaviour.copies)
        return
    waybill.held.append(event)
    if event["status"] in FINAL:
        held, waybill.held = waybill.held, []
        shuffled = random.sample(held, len(held))
        if shuffled == held:  # shuffled, yet in order: reverse it, so that it is out of order
            shuffled.reverse()
        _schedule(waybill, shuffled, behaviour.copies)


def _schedule(waybill: Waybill, events: list[dict[str, Any]], copies: int) -> None:
    task = asyncio.create_task(_deliver_all(waybill, events, copies))
    STATE.deliveries.add(task)
    task.add_done_callback(STATE.deliveries.discard)


async def _deliver_all(waybill: Waybill, events: list[dict[str, Any]], copies: int) -> None:
    for event in events:
        body = json.dumps({"customer_id": waybill.customer_id, "carrier": CARRIER, "events": [event]})
        for _ in range(copies):
            await _deliver(waybill.notify_url, body.encode(), waybill.key, event["event_id"])


async def _deliver(url: str, body: bytes, key: str, what: str) -> None:
    """POST the signed callback until the customer acknowledges it, backing off between tries."""
    client = STATE.callback_client or httpx.AsyncClient(timeout=10)
    try:
        for attempt in range(CALLBACK_ATTEMPTS):
            headers = {"Content-Type": "application/json", **signing.sign(key, body, utcnow())}
            sent = SentCallback(url=url, body=body, headers=headers, status=None)
            STATE.sent.append(sent)
            try:
                response = await client.post(url, content=body, headers=headers)
                sent.status = response.status_code
                if response.is_success:
                    return
                log.warning("callback for %s answered %s", what, response.status_code)
            except httpx.HTTPError as exc:
                log.warning("callback for %s failed: %s", what, exc)
            await asyncio.sleep(min(STATE.retry_seconds * 2**attempt, 60))
        log.error("callback for %s given up after %d attempts", what, CALLBACK_ATTEMPTS)
    finally:
        if client is not STATE.callback_client:
            await client.aclose()


# ------------------------------------------------------------------------------------------ query


@app.get("/v1/waybills/{tracking_no}")
async def query_waybill(
    tracking_no: str,
    customer_id: Annotated[str, Query()],
    request: Request,
    settings: Annotated[Settings, Depends(get_settings)],
) -> WaybillOut:
    """Every event of the waybill so far, oldest first, whether its callback was delivered or not."""
    query = request.scope.get("query_string", b"")
    _verify(settings, request, request.scope.get("raw_path", request.url.path.encode()) + b"?" + query)
    _customer(settings, customer_id)
    waybill = STATE.waybills.get(tracking_no)
    if waybill is None or waybill.customer_id != customer_id:
        raise ApiError(404, "unknown_waybill", "unknown waybill", "运单号不存在")
    return _out(waybill)


# ------------------------------------------------------------------------------------------ sandbox control


class BehaviourIn(Behaviour):
    reference: str | None = Field(default=None, description="one parcel's reference; none: every parcel")


@app.post("/v1/sandbox/behaviour")
async def set_behaviour(body: BehaviourIn) -> dict[str, Any]:
    """How the sandbox is to treat parcels from now on (tests, demos): the fields given change, for one
    reference (starting from the default) or for every parcel without a behaviour of its own."""
    given = body.model_dump(exclude_unset=True, exclude={"reference"})
    if body.reference is None:
        STATE.default = STATE.default.model_copy(update=given)
        STATE.booking_attempts.pop("*", None)
        behaviour = STATE.default
    else:
        base = STATE.behaviours.get(body.reference) or STATE.default
        behaviour = STATE.behaviours[body.reference] = base.model_copy(update=given)
        STATE.booking_attempts.pop(body.reference, None)
    for waybill in STATE.waybills.values():  # a new pace applies to parcels under way
        if body.reference in (None, waybill.reference):
            waybill.poke.set()
    return {"reference": body.reference, **behaviour.model_dump()}


@app.post("/v1/sandbox/waybills/{tracking_no}/advance")
async def advance(tracking_no: str) -> dict[str, Any]:
    """Move the parcel to its next event now (its callback follows as the behaviour says)."""
    waybill = STATE.waybills.get(tracking_no)
    if waybill is None:
        raise ApiError(404, "unknown_waybill", "unknown waybill", "运单号不存在")
    event = _advance(waybill)
    waybill.poke.set()
    return event
