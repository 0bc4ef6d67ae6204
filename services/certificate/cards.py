"""Making a card's badge: sign its admission code, render the PDF and store it.

One home for both ways a badge is made: the first card after the personnel review (the ``make``
activity) and a reissue for a lost card (``POST /v1/certificates/{no}/reissue``), which differ only in
the serial they sign.
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass

from services.certificate.admission_code import AdmissionClaims, AdmissionSigner, AdmissionVerifier
from services.certificate.badge import BadgeData, render_badge
from shared.catalogue import load_edition, load_missions
from shared.service import ServiceContext

CERTIFICATE_TYPE_ZH = "专业观众证"
CERTIFICATE_TYPE_EN = "Professional Visitor"


class UnknownMission(LookupError):
    """The holder's mission is not in the catalogue: no badge can name it."""


def signer_for(ctx: ServiceContext) -> AdmissionSigner:
    """The organiser's key, with which every admission code is signed (and checked at the gates)."""
    return _signer(ctx.settings.admission_signing_seed.get_secret_value())


def verifier_for(ctx: ServiceContext) -> AdmissionVerifier:
    """The organiser's public key, as the gates check codes with it."""
    return _verifier(ctx.settings.admission_signing_seed.get_secret_value())


# Keys are decoded once per seed, not on every scan at the gates.
@functools.cache
def _signer(seed: str) -> AdmissionSigner:
    return AdmissionSigner.from_base64(seed)


@functools.cache
def _verifier(seed: str) -> AdmissionVerifier:
    return _signer(seed).verifier()


def badge_key(edition: str, certificate_no: str, serial: int) -> str:
    """Where a badge is stored. A reissue gets a key of its own, so the lost card's badge stays on record
    (``CertificateReissue.previous_badge_key``)."""
    if serial == 1:
        return f"{edition}/{certificate_no}.pdf"
    return f"{edition}/{certificate_no}-{serial}.pdf"


@dataclass(frozen=True)
class CardFace:
    """What a badge prints besides its number and code."""

    holder_name: str
    unit_name: str
    mission_name_zh: str
    mission_name_en: str
    sub_mission_name_zh: str | None
    sub_mission_name_en: str | None
    photo: bytes | None


async def card_face(
    ctx: ServiceContext,
    *,
    holder_name: str,
    unit_name: str,
    mission: str,
    sub_mission: str | None,
    photo_key: str | None,
) -> CardFace:
    """The names the catalogue gives the mission codes, and the photo from the store. Raises
    ``UnknownMission`` before anything is fetched if the mission is not in the catalogue."""
    found = load_missions().get(mission)
    if found is None:
        raise UnknownMission(f"unknown mission {mission}")
    sub = found.sub_mission(sub_mission) if sub_mission else None
    photo = await ctx.store.get(ctx.settings.bucket_photos, photo_key) if photo_key else None
    return CardFace(
        holder_name=holder_name,
        unit_name=unit_name,
        mission_name_zh=found.name_zh,
        mission_name_en=found.name_en,
        sub_mission_name_zh=sub.name_zh if sub else None,
        sub_mission_name_en=sub.name_en if sub else None,
        photo=photo,
    )


async def store_badge(
    ctx: ServiceContext, signer: AdmissionSigner, claims: AdmissionClaims, face: CardFace
) -> str:
    """Sign ``claims``, render the badge with that code in its QR, store it; answers its key."""
    edition = load_edition(claims.edition)
    code = signer.sign(claims)
    # Rendering is CPU work: off the event loop, so the worker (or the API) keeps serving others.
    pdf = await asyncio.to_thread(
        render_badge,
        BadgeData(
            edition_name_zh=edition.name_zh,
            edition_name_en=edition.name_en,
            certificate_no=claims.certificate_no,
            certificate_type_zh=CERTIFICATE_TYPE_ZH,
            certificate_type_en=CERTIFICATE_TYPE_EN,
            holder_name=face.holder_name,
            unit_name=face.unit_name,
            mission_name_zh=face.mission_name_zh,
            mission_name_en=face.mission_name_en,
            sub_mission_name_zh=face.sub_mission_name_zh,
            sub_mission_name_en=face.sub_mission_name_en,
            admission_code=code,
            photo=face.photo,
        ),
    )
    key = badge_key(claims.edition, claims.certificate_no, claims.serial)
    await ctx.store.put(ctx.settings.bucket_certificates, key, pdf, "application/pdf")
    return key
