"""Activities the workflows call on the certificate service: making, re-activating and dispatching certificates."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from services.certificate.admission_code import AdmissionClaims
from services.certificate.cards import UnknownMission, card_face, signer_for, store_badge
from services.certificate.courier import AddressRefused, Courier
from services.certificate.models import Certificate, CertificateActivation, CertificateSequence
from services.certificate.tracking import courier_for, deliver_if_reported
from shared import contracts as c
from shared.catalogue import Edition, load_edition
from shared.db import utcnow
from shared.metrics import CERTIFICATES
from shared.records import fetch_person
from shared.service import ServiceContext
from shared.types import DeliveryMethod, RegistrationStatus


def certificate_number(edition_number: int, serial: int) -> str:
    return f"B{edition_number:02d}-{serial:07d}"


def previous_edition_number(edition: Edition) -> int:
    """The number of the edition whose cards ``edition`` re-validates.

    Its data file may be absent (an edition that ran elsewhere, before this deployment): editions are
    annual and numbered in sequence, so it is then the number before this edition's."""
    assert edition.previous_edition is not None
    try:
        return load_edition(edition.previous_edition).number
    except LookupError:
        return edition.number - 1


def not_revalidatable(message: str) -> ApplicationError:
    return ApplicationError(message, type="not_revalidatable", non_retryable=True)


class CertificateActivities:
    def __init__(self, ctx: ServiceContext, courier: Courier) -> None:
        self.ctx = ctx
        self.courier = courier
        self.signer = signer_for(ctx)

    async def _next_number(self, edition_code: str) -> str:
        edition = load_edition(edition_code)
        async with self.ctx.db.transaction() as session:
            if await session.get(CertificateSequence, edition_code) is None:
                session.add(CertificateSequence(edition=edition_code, last_number=0))
                await session.flush()
            number = await session.scalar(
                update(CertificateSequence)
                .where(CertificateSequence.edition == edition_code)
                .values(last_number=CertificateSequence.last_number + 1)
                .returning(CertificateSequence.last_number)
            )
        assert number is not None
        return certificate_number(edition.number, number)

    @activity.defn(name=c.MAKE_CERTIFICATE.name)
    async def make(self, request: c.MakeCertificate) -> c.CertificateMade:
        """Number the certificate, render the badge with its signed QR code and store it. Once per person."""
        async with self.ctx.db.sessions() as session:
            existing = await session.scalar(
                select(Certificate).where(Certificate.registration_id == request.registration_id)
            )
        if existing is not None:
            return c.CertificateMade(certificate_no=existing.certificate_no)
        person = await fetch_person(self.ctx, request.registration_id)
        # The mission is checked (and the photo fetched) before a number is taken: no number is spent on
        # a card that cannot be made.
        try:
            face = await card_face(
                self.ctx,
                holder_name=person.name,
                unit_name=person.unit_name,
                mission=person.mission,
                sub_mission=person.sub_mission,
                photo_key=person.photo_key,
            )
        except UnknownMission as exc:
            raise ApplicationError(str(exc), non_retryable=True) from None
        certificate_no = await self._next_number(request.edition)
        issued_at = utcnow().replace(microsecond=0)
        claims = AdmissionClaims(
            edition=request.edition, certificate_no=certificate_no, serial=1, issued_at=issued_at
        )
        badge_key = await store_badge(self.ctx, self.signer, claims, face)
        async with self.ctx.db.transaction() as session:
            # A concurrent retry may have won: keep its certificate, drop this number unused.
            winner = await session.scalar(
                select(Certificate).where(Certificate.registration_id == request.registration_id)
            )
            if winner is not None:
                return c.CertificateMade(certificate_no=winner.certificate_no)
            session.add(
                Certificate(
                    certificate_no=certificate_no,
                    edition=request.edition,
                    registration_id=request.registration_id,
                    badge_key=badge_key,
                    issued_at=issued_at,
                    # What is printed, and whose it is: the lists and scopes of the API read these.
                    unit_id=person.unit_id,
                    mission=person.mission,
                    sub_mission=person.sub_mission,
                    holder_name=person.name,
                    unit_name=person.unit_name,
                )
            )
        CERTIFICATES.labels("issued").inc()  # committed, and new: a retry returned above
        return c.CertificateMade(certificate_no=certificate_no)

    @activity.defn(name=c.REACTIVATE_CERTIFICATE.name)
    async def reactivate(self, request: c.ReactivateCertificate) -> c.CertificateMade:
        """Re-validation (FAQ VII): last edition's card becomes valid for this edition; no new card is made
        or sent. Recorded once per registration: a retry answers the same."""
        recorded = await self._activation_of(request.registration_id)
        if recorded is not None:
            return self._answer(recorded, request)
        try:
            edition = load_edition(request.edition)
        except LookupError as exc:
            raise ApplicationError(str(exc), type="unknown_edition", non_retryable=True) from None
        number = request.previous_certificate_no
        previous = edition.previous_edition
        if previous is None:
            raise not_revalidatable(f"{edition.code} re-validates no earlier edition's certificates")
        async with self.ctx.db.sessions() as session:
            old = await session.get(Certificate, number)
            previous_ran_here = await session.get(CertificateSequence, previous) is not None
            taken = await session.scalar(
                select(CertificateActivation.registration_id).where(
                    CertificateActivation.edition == request.edition,
                    CertificateActivation.certificate_no == number,
                )
            )
        if old is not None:
            if old.edition != previous:
                raise not_revalidatable(
                    f"certificate {number} is of {old.edition}: only {previous}'s may be re-validated"
                )
            if old.revoked:
                raise not_revalidatable(f"certificate {number} was revoked")
        else:
            # Not in this database. If the previous edition ran here, its every card is here: the number
            # is unknown. If it ran elsewhere (before this deployment), this service cannot look its
            # cards up: it accepts a number of that edition's format (the registration service checked
            # the holder's data), records it, and the gates then admit the signed old card for this
            # edition (see POST /v1/verify). A revoked card of that edition cannot be told apart here.
            serial = _serial_of(number, previous_edition_number(edition))
            if previous_ran_here or serial is None:
                raise not_revalidatable(f"certificate {number} is not a known certificate of {previous}")
        if taken is not None:
            raise not_revalidatable(
                f"certificate {number} is already re-activated for {request.edition} (registration {taken})"
            )
        # The registration's unit, so that its buyers (and only they) see the re-activated card.
        person = await fetch_person(self.ctx, request.registration_id)
        try:
            async with self.ctx.db.transaction() as session:
                session.add(
                    CertificateActivation(
                        registration_id=request.registration_id,
                        edition=request.edition,
                        certificate_no=number,
                        certificate_edition=previous,
                        issued_here=old is not None,
                        unit_id=person.unit_id,
                        activated_at=utcnow(),
                    )
                )
        except IntegrityError:
            # A concurrent attempt won: for this registration (answer as it did), or for the same card
            # under another registration (refused below).
            recorded = await self._activation_of(request.registration_id)
            if recorded is None:
                raise not_revalidatable(
                    f"certificate {number} is already re-activated for {request.edition}"
                ) from None
            return self._answer(recorded, request)
        CERTIFICATES.labels("reactivated").inc()
        return c.CertificateMade(certificate_no=number)

    async def _activation_of(self, registration_id: str) -> CertificateActivation | None:
        async with self.ctx.db.sessions() as session:
            return await session.get(CertificateActivation, registration_id)

    @staticmethod
    def _answer(recorded: CertificateActivation, request: c.ReactivateCertificate) -> c.CertificateMade:
        if recorded.certificate_no != request.previous_certificate_no:
            raise not_revalidatable(
                f"registration {request.registration_id} already re-activated {recorded.certificate_no}"
            )
        return c.CertificateMade(certificate_no=recorded.certificate_no)

    @activity.defn(name=c.DISPATCH_CERTIFICATE.name)
    async def dispatch(self, request: c.DispatchCertificate) -> c.Dispatched:
        """Send the card by express, or hand it to the mission, or keep it for on-site pickup.

        The parcel is booked under the certificate number, so a retry books nothing twice. A courier
        that is down raises ``CourierUnavailable`` (retried); an address it refuses is not retried."""
        async with self.ctx.db.sessions() as session:
            certificate = await session.get(Certificate, request.certificate_no)
        if certificate is None:
            raise ApplicationError(f"unknown certificate {request.certificate_no}", non_retryable=True)
        shipment = None
        if request.delivery_method is DeliveryMethod.EXPRESS:
            person = await fetch_person(self.ctx, request.registration_id)
            if person.delivery_address is None:
                raise ApplicationError("express delivery without an address", non_retryable=True)
            address = person.delivery_address
            try:
                shipment = await self.courier.book(reference=request.certificate_no, address=address)
            except AddressRefused as exc:  # outside the courier's (mainland) service area: final
                raise ApplicationError(
                    str(exc), exc.code, type="address_refused", non_retryable=True
                ) from exc
        async with self.ctx.db.transaction() as session:
            stored = await session.get(Certificate, request.certificate_no)
            assert stored is not None
            stored.delivery_method = request.delivery_method
            stored.carrier = shipment.carrier if shipment else None
            stored.tracking_no = shipment.tracking_no if shipment else None
            stored.dispatched_at = stored.dispatched_at or utcnow()
        if shipment is not None:  # a courier fast enough to report delivery before we stored its waybill
            await deliver_if_reported(
                self.ctx, request.certificate_no, shipment.carrier, shipment.tracking_no
            )
        status = {
            DeliveryMethod.EXPRESS: RegistrationStatus.SHIPPED,
            DeliveryMethod.MISSION_COLLECTION: RegistrationStatus.AWAITING_COLLECTION,
            DeliveryMethod.ONSITE_PICKUP: RegistrationStatus.ONSITE_PICKUP,
        }[request.delivery_method]
        return c.Dispatched(
            status=status,
            carrier=shipment.carrier if shipment else None,
            tracking_no=shipment.tracking_no if shipment else None,
        )


def activities(ctx: ServiceContext) -> Sequence[Callable[..., Any]]:
    acts = CertificateActivities(ctx, courier_for(ctx))
    return [acts.make, acts.reactivate, acts.dispatch]


def _serial_of(number: str, edition_number: int) -> int | None:
    """The serial of a certificate number of the given edition's format, or None if it is not one."""
    match = re.fullmatch(rf"B{edition_number:02d}-(\d{{7}})", number)
    serial = int(match.group(1)) if match else 0
    return serial if serial > 0 else None
