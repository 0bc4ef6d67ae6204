"""The payment deadlines that apply now: the edition's, as the organiser extended them.

One function answers for the workflows (the ``registration.current_payment_deadlines`` activity), the
payment service (its internal route) and buyers (the public route), so they never disagree.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.registration.models import PaymentDeadlineExtension
from shared import contracts as c
from shared.catalogue import Edition
from shared.types import PaymentMethod


def edition_payment_deadlines(edition: Edition) -> c.PaymentDeadlines:
    """The deadlines of the edition file (with the rehearsal shift ``ctx.edition`` applies)."""
    return c.PaymentDeadlines(**{method.value: edition.payment_deadline(method) for method in PaymentMethod})


def extended(deadlines: c.PaymentDeadlines, extension: PaymentDeadlineExtension) -> c.PaymentDeadlines:
    """``deadlines`` with one extension applied: per method the later instant, so none ever shortens."""
    return deadlines.extended_by(
        c.PaymentDeadlines(
            qr=extension.qr or deadlines.qr,
            b2b=extension.b2b or deadlines.b2b,
            transfer=extension.transfer or deadlines.transfer,
        )
    )


async def current_payment_deadlines(session: AsyncSession, edition: Edition) -> c.PaymentDeadlines:
    deadlines = edition_payment_deadlines(edition)
    extensions = await session.scalars(
        select(PaymentDeadlineExtension).where(PaymentDeadlineExtension.edition == edition.code)
    )
    for extension in extensions:
        deadlines = extended(deadlines, extension)
    return deadlines
