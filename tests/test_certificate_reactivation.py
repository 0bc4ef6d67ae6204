"""Re-validation (FAQ VII): last edition's card, re-activated once per registration, admits at this
edition's gates; an old card that was not re-activated does not. Against a real SQLite database.

The certificate API runs in process on the test's context; the registration service (which tells the
re-activation the registration's unit) and the review service (staff logins) are stand-ins mounted on
its HTTP client (tests/service_stand_ins.py). Only the gates need no login."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from temporalio.exceptions import ApplicationError

from services.certificate.activities import CertificateActivities
from services.certificate.admission_code import AdmissionClaims
from services.certificate.api import app
from services.certificate.cards import signer_for
from services.certificate.models import Certificate, CertificateActivation, CertificateSequence
from services.certificate.tracking import courier_for
from shared import auth as shared_auth
from shared import contracts as c
from shared.service import ServiceContext
from shared.settings import Settings
from tests.service_env import service_context
from tests.service_stand_ins import URLS, StandIns, person, staff, unit

EDITION = "ciie6"  # re-validates the cards of ciie5 (numbers B05-...)
CERTIFICATE = "http://certificate.test"
OFFICE = staff("certificate_office")  # sees every mission's cards, and those issued elsewhere

# The registrations that re-activate a card here, and their units, as the registration service knows them.
UNITS = {"RHOLDER": "UHOLDER", "ROTHER": "UOTHER", "R1": "U1", "RLOCAL": "ULOCAL"}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, edition=EDITION, edition_year_shift=0, **URLS)


@pytest.fixture
async def ctx(settings: Settings) -> AsyncIterator[ServiceContext]:
    stand_ins = StandIns.fresh(settings)
    stand_ins.people.update({rid: person(rid, unit_id) for rid, unit_id in UNITS.items()})
    http = httpx.AsyncClient(mounts=stand_ins.mounts())
    async with service_context("certificate", settings, http=http) as context:
        yield context
    shared_auth.clear_cache()


@pytest.fixture
def activities(ctx: ServiceContext) -> CertificateActivities:
    return CertificateActivities(ctx, courier_for(ctx))  # re-activation sends nothing: the courier is idle


@pytest.fixture
async def api(ctx: ServiceContext) -> AsyncIterator[httpx.AsyncClient]:
    app.state.ctx = ctx
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=CERTIFICATE) as client:
        yield client


def reactivation(registration_id: str, number: str) -> c.ReactivateCertificate:
    return c.ReactivateCertificate(
        registration_id=registration_id, edition=EDITION, previous_certificate_no=number
    )


async def issue_here(
    ctx: ServiceContext,
    edition: str,
    number: str,
    *,
    serial: int = 1,
    revoked: bool = False,
    unit_id: str | None = None,
) -> None:
    """A card this service issued in an earlier edition (that edition ran on this database)."""
    async with ctx.db.transaction() as session:
        if await session.get(CertificateSequence, edition) is None:
            session.add(CertificateSequence(edition=edition, last_number=int(number[-7:])))
        session.add(
            Certificate(
                certificate_no=number,
                edition=edition,
                registration_id=f"R{edition}{number[-4:]}",
                serial=serial,
                revoked=revoked,
                unit_id=unit_id,
                badge_key=f"{edition}/{number}.pdf",
                issued_at=datetime(2022, 10, 20, tzinfo=UTC),
            )
        )


def qr_code(ctx: ServiceContext, edition: str, number: str, serial: int = 1) -> str:
    """The signed code printed in the card's QR, as a gate scans it."""
    claims = AdmissionClaims(
        edition=edition, certificate_no=number, serial=serial, issued_at=datetime(2022, 10, 20, tzinfo=UTC)
    )
    return signer_for(ctx).sign(claims)


async def refusal(activities: CertificateActivities, request: c.ReactivateCertificate) -> ApplicationError:
    with pytest.raises(ApplicationError) as refused:
        await activities.reactivate(request)
    assert refused.value.non_retryable
    return refused.value


async def activations(ctx: ServiceContext) -> int:
    async with ctx.db.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(CertificateActivation)) or 0)


# ---------------------------------------------------------------- the activity


async def test_a_card_is_reactivated_once_per_registration_and_a_retry_answers_the_same(
    ctx: ServiceContext, activities: CertificateActivities
) -> None:
    # ciie5 ran elsewhere: its card is unknown here, and a number of its format is accepted and recorded.
    first = await activities.reactivate(reactivation("RHOLDER", "B05-0000042"))
    again = await activities.reactivate(reactivation("RHOLDER", "B05-0000042"))
    assert first == again == c.CertificateMade(certificate_no="B05-0000042")
    assert await activations(ctx) == 1
    async with ctx.db.sessions() as session:
        recorded = await session.get(CertificateActivation, "RHOLDER")
    assert recorded is not None
    assert (recorded.edition, recorded.certificate_no, recorded.certificate_edition, recorded.unit_id) == (
        EDITION,
        "B05-0000042",
        "ciie5",
        "UHOLDER",  # the registration's unit, as the registration service tells it
    )
    assert not recorded.issued_here and recorded.activated_at.tzinfo is not None

    # The card is its holder's: another registration cannot re-activate it for the same edition, and the
    # registration that did cannot re-activate a second card.
    other = await refusal(activities, reactivation("ROTHER", "B05-0000042"))
    assert other.type == "not_revalidatable"
    second = await refusal(activities, reactivation("RHOLDER", "B05-0000043"))
    assert second.type == "not_revalidatable"
    assert await activations(ctx) == 1


async def test_unknown_revoked_or_other_editions_cards_are_not_revalidated(
    ctx: ServiceContext, activities: CertificateActivities
) -> None:
    await issue_here(ctx, "ciie4", "B04-0000001")
    await issue_here(ctx, EDITION, "B06-0000001")
    for number in ("B04-0000001", "B06-0000001", "B04-0000099", "B06-0000099", "B05-0000000", "B05-42", "X"):
        assert (await refusal(activities, reactivation("R1", number))).type == "not_revalidatable", number

    # Once ciie5 ran here, every one of its cards is here: a revoked one or an unknown number is refused.
    await issue_here(ctx, "ciie5", "B05-0000007", revoked=True)
    await issue_here(ctx, "ciie5", "B05-0000008")
    assert (await refusal(activities, reactivation("R1", "B05-0000007"))).type == "not_revalidatable"
    assert (await refusal(activities, reactivation("R1", "B05-0000042"))).type == "not_revalidatable"
    assert await activations(ctx) == 0

    made = await activities.reactivate(reactivation("R1", "B05-0000008"))
    assert made.certificate_no == "B05-0000008"
    async with ctx.db.sessions() as session:
        recorded = await session.get(CertificateActivation, "R1")
    assert recorded is not None and recorded.issued_here


# ---------------------------------------------------------------- the gates and the certificate pages


async def test_the_gate_admits_a_reactivated_old_card_and_refuses_one_not_reactivated(
    ctx: ServiceContext, activities: CertificateActivities, api: httpx.AsyncClient
) -> None:
    async def gate(code: str) -> dict[str, Any]:
        answer = await api.post("/v1/verify", json={"code": code})
        assert answer.status_code == 200
        body: dict[str, Any] = answer.json()
        return body

    issued_elsewhere = qr_code(ctx, "ciie5", "B05-0000042")
    # Before re-validation last edition's card is just that: the wrong edition.
    assert (await gate(issued_elsewhere))["verdict"] == "wrong_edition"

    await activities.reactivate(reactivation("RHOLDER", "B05-0000042"))
    assert await gate(issued_elsewhere) == {
        "verdict": "valid",
        "certificate_no": "B05-0000042",
        "reactivated": True,
    }

    # Another holder's card of the same edition, never re-activated, stays out.
    assert (await gate(qr_code(ctx, "ciie5", "B05-0000043")))["verdict"] == "wrong_edition"
    # The same number claimed for another edition is not the card that was re-activated.
    assert (await gate(qr_code(ctx, "ciie4", "B05-0000042")))["verdict"] == "wrong_edition"

    # A ciie5 card issued here: re-activated, it admits with its current serial only.
    await issue_here(ctx, "ciie5", "B05-0000007", serial=2)
    assert (await gate(qr_code(ctx, "ciie5", "B05-0000007", serial=2)))["verdict"] == "wrong_edition"
    await activities.reactivate(reactivation("RLOCAL", "B05-0000007"))
    assert (await gate(qr_code(ctx, "ciie5", "B05-0000007", serial=2)))["verdict"] == "valid"
    assert (await gate(qr_code(ctx, "ciie5", "B05-0000007", serial=1)))["verdict"] == "revoked"
    async with ctx.db.transaction() as session:
        stored = await session.get(Certificate, "B05-0000007")
        assert stored is not None
        stored.revoked = True
    assert (await gate(qr_code(ctx, "ciie5", "B05-0000007", serial=2)))["verdict"] == "revoked"

    # This edition's own cards are checked as before; forged codes are forged.
    await issue_here(ctx, EDITION, "B06-0000001")
    assert await gate(qr_code(ctx, EDITION, "B06-0000001")) == {
        "verdict": "valid",
        "certificate_no": "B06-0000001",
        "reactivated": False,
    }
    assert (await gate(issued_elsewhere[:-4] + "AAAA"))["verdict"] == "forged"


async def test_the_certificate_pages_show_the_reactivation(
    ctx: ServiceContext, activities: CertificateActivities, api: httpx.AsyncClient
) -> None:
    assert (await api.get("/v1/registrations/RHOLDER/certificate", headers=OFFICE)).status_code == 404
    await activities.reactivate(reactivation("RHOLDER", "B05-0000042"))

    by_registration = (await api.get("/v1/registrations/RHOLDER/certificate", headers=OFFICE)).json()
    by_number = (await api.get("/v1/certificates/B05-0000042", headers=OFFICE)).json()
    assert by_registration == by_number
    assert by_number["certificate_no"] == "B05-0000042" and by_number["edition"] == "ciie5"
    assert by_number["registration_id"] is None  # issued by an edition that ran elsewhere
    assert by_number["valid_for"] == ["ciie5", EDITION]
    assert [(a["edition"], a["registration_id"]) for a in by_number["activations"]] == [(EDITION, "RHOLDER")]
    # No badge is made for a re-activated card: the holder keeps the old one.
    assert (await api.get("/v1/certificates/B05-0000042/badge.pdf", headers=OFFICE)).status_code == 404

    await issue_here(ctx, "ciie5", "B05-0000007", unit_id="UOLD")  # last edition's, of another unit
    assert (await api.get("/v1/certificates/B05-0000007", headers=OFFICE)).json()["activations"] == []
    await activities.reactivate(reactivation("RLOCAL", "B05-0000007"))
    local = (await api.get("/v1/registrations/RLOCAL/certificate", headers=OFFICE)).json()
    assert local["registration_id"] == "Rciie50007" and local["serial"] == 1
    assert local["valid_for"] == ["ciie5", EDITION]
    assert [a["registration_id"] for a in local["activations"]] == ["RLOCAL"]
    # The re-activating registration's unit sees the old card as its own; another unit's buyer, even of
    # the unit the old card was made for, finds nothing there.
    assert (await api.get("/v1/registrations/RLOCAL/certificate", headers=unit("ULOCAL"))).json() == local
    other = await api.get("/v1/registrations/RLOCAL/certificate", headers=unit("UOLD"))
    assert (other.status_code, other.json()["code"]) == (404, "not_found"), other.text
