"""Tracking of certificates sent by express: the courier's events, stored once, read by the buyer.

Events come two ways: the courier's signed callbacks (``courier_api``), which may come twice, late,
out of order or never; and its query API, which ``tracking_events`` pulls before answering while the
card is on its way, so that a callback that never came is healed by the next read. A ``delivered``
event of a card's waybill marks the card delivered and tells its registration (``record_delivery``).
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from services.certificate.courier import (
    Courier,
    CourierEvent,
    CourierUnavailable,
    HttpCourier,
    TrackingStatus,
)
from services.certificate.delivery import RegistrationUnreachable, record_delivery
from services.certificate.models import Certificate, TrackingEvent
from shared.service import ServiceContext

log = logging.getLogger(__name__)
FINAL = (TrackingStatus.DELIVERED.value, TrackingStatus.RETURNED.value)


def courier_for(ctx: ServiceContext) -> Courier:
    """The courier the certificate office ships with (the sandbox in development)."""
    settings = ctx.settings
    return HttpCourier(
        ctx.http,
        settings.courier_url,
        settings.courier_customer_id,
        settings.courier_key.get_secret_value(),
        notify_url=f"{settings.certificate_url}/v1/courier/events",
    )


async def ingest(ctx: ServiceContext, carrier: str, events: list[CourierEvent]) -> int:
    """Store each event once (by the courier's event id); a ``delivered`` event of a card's waybill
    marks the card delivered. Events of a waybill on no card (yet: a courier faster than our own
    bookkeeping) are stored anyway; ``dispatch`` looks for them. Answers how many events were new."""
    stored = 0
    for event in events:
        try:
            async with ctx.db.transaction() as session:
                known = await session.scalar(
                    select(TrackingEvent.id).where(
                        TrackingEvent.carrier == carrier, TrackingEvent.event_id == event.event_id
                    )
                )
                if known is not None:
                    continue
                session.add(
                    TrackingEvent(
                        carrier=carrier,
                        event_id=event.event_id,
                        tracking_no=event.tracking_no,
                        status=event.status.value,
                        description_zh=event.description_zh,
                        description_en=event.description_en,
                        location=event.location,
                        occurred_at=event.occurred_at,
                    )
                )
            stored += 1
        except IntegrityError:  # the same event, stored meanwhile by a concurrent delivery
            continue
    # A duplicate delivered event is passed on too: if telling the registration failed the first time,
    # the courier's retry (or the next read) tells it now. Telling it twice is harmless.
    delivered: dict[str, CourierEvent] = {}
    for event in events:
        if event.status is TrackingStatus.DELIVERED:
            delivered.setdefault(event.tracking_no, event)
        elif event.status is TrackingStatus.RETURNED:
            log.warning("waybill %s (%s) returned to the sender", event.tracking_no, carrier)
    for tracking_no, event in delivered.items():
        async with ctx.db.sessions() as session:
            certificate_no = await session.scalar(
                select(Certificate.certificate_no).where(
                    Certificate.carrier == carrier, Certificate.tracking_no == tracking_no
                )
            )
        if certificate_no is not None:
            await record_delivery(ctx, certificate_no, event.occurred_at)
    return stored


async def deliver_if_reported(
    ctx: ServiceContext, certificate_no: str, carrier: str, tracking_no: str
) -> datetime | None:
    """The card's waybill was reported delivered before the waybill was stored on the card (the
    callback won the race with ``dispatch``): record the delivery now. Answers when, or None."""
    async with ctx.db.sessions() as session:
        at = await session.scalar(
            select(TrackingEvent.occurred_at)
            .where(
                TrackingEvent.carrier == carrier,
                TrackingEvent.tracking_no == tracking_no,
                TrackingEvent.status == TrackingStatus.DELIVERED.value,
            )
            .order_by(TrackingEvent.occurred_at)
            .limit(1)
        )
    if at is None:
        return None
    return await record_delivery(ctx, certificate_no, at)


async def tracking_events(ctx: ServiceContext, certificate: Certificate) -> list[TrackingEvent]:
    """The card's tracking events, oldest first, as the buyer reads them.

    While the card is on its way (a waybill, not delivered, not returned), the courier's query API is
    asked first and what it shows is stored: this heals callbacks that never came. A courier that does
    not answer is logged, and the events stored so far are the answer. ``certificate`` is as the caller
    read it: a delivery recorded here is in the database, not on that object."""
    carrier, tracking_no = certificate.carrier, certificate.tracking_no
    if carrier is None or tracking_no is None:
        return []
    stored = await _stored(ctx, carrier, tracking_no)
    if certificate.delivered_at is not None:
        return stored
    courier = courier_for(ctx)
    under_way = not any(e.status in FINAL for e in stored)
    try:
        if under_way and courier.carrier == carrier:  # a card shipped with an earlier courier is not asked
            try:
                if await ingest(ctx, carrier, await courier.track(tracking_no)):
                    stored = await _stored(ctx, carrier, tracking_no)
            except CourierUnavailable as exc:
                log.warning("courier query for %s failed; answering the stored events: %s", tracking_no, exc)
        # A delivery stored earlier whose registration was not told then (Temporal was down) is told now.
        await deliver_if_reported(ctx, certificate.certificate_no, carrier, tracking_no)
    except RegistrationUnreachable as exc:  # the buyer still reads the events stored
        log.error("delivery of %s not passed on to its registration: %s", tracking_no, exc)
        stored = await _stored(ctx, carrier, tracking_no)
    return stored


async def _stored(ctx: ServiceContext, carrier: str, tracking_no: str) -> list[TrackingEvent]:
    """The waybill's stored events, in the order they happened."""
    async with ctx.db.sessions() as session:
        return list(
            await session.scalars(
                select(TrackingEvent)
                .where(TrackingEvent.carrier == carrier, TrackingEvent.tracking_no == tracking_no)
                .order_by(TrackingEvent.occurred_at, TrackingEvent.id)
            )
        )
