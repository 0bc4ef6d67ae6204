"""A card reached its holder: the courier's delivery scan, or a hand-out by the mission or on site.

One home for what follows, whoever noticed: the certificate's ``delivered_at`` is set once, and the
registration's workflow is told (``certificate_delivered``), which moves the buyer's status to
delivered. Telling it again is harmless: the workflow takes the first and ignores the rest.
"""

from __future__ import annotations

import logging
from datetime import datetime

from temporalio.service import RPCError, RPCStatusCode

from services.certificate.models import Certificate
from shared import contracts as c
from shared.metrics import CERTIFICATES
from shared.service import ServiceContext
from shared.temporal import registration_workflow_id

log = logging.getLogger(__name__)


class RegistrationUnreachable(Exception):
    """Temporal did not take the news (it is down, or was never reached): nothing was recorded, so
    whoever noticed tells it again later."""


async def record_delivery(ctx: ServiceContext, certificate_no: str, at: datetime) -> datetime | None:
    """Tell the card's registration it was delivered at ``at`` (or at the time first recorded), then
    record it. Answers when it was delivered, or None for an unknown card.

    The workflow is told first: if that fails, nothing is recorded, so whoever noticed (a courier's
    callback retried, a tracking read, a hand-out sent again) tells it again."""
    async with ctx.db.sessions() as session:
        certificate = await session.get(Certificate, certificate_no)
    if certificate is None:
        return None
    delivered_at = certificate.delivered_at or at
    workflow_id = registration_workflow_id(certificate.edition, certificate.registration_id)
    try:
        await ctx.temporal.get_workflow_handle(workflow_id).signal(
            c.SIGNAL_CERTIFICATE_DELIVERED, c.CertificateDelivered(at=delivered_at)
        )
    except RPCError as exc:
        if exc.status is not RPCStatusCode.NOT_FOUND:
            raise RegistrationUnreachable(f"certificate {certificate_no}: {exc.status!r}") from exc
        # The registration's workflow has closed (the expo is over): the card's record is all there is.
        log.info("certificate %s delivered after its registration closed", certificate_no)
    except RuntimeError as exc:  # a lazily connected client whose first connection failed
        raise RegistrationUnreachable(f"certificate {certificate_no}: Temporal unreachable") from exc
    async with ctx.db.transaction() as session:
        stored = await session.get(Certificate, certificate_no, with_for_update=True)
        assert stored is not None
        first = stored.delivered_at is None
        if first:
            stored.delivered_at = delivered_at
        recorded = stored.delivered_at
    if first:  # committed: a callback or hand-out told again is not counted again
        CERTIFICATES.labels("delivered").inc()
    return recorded
