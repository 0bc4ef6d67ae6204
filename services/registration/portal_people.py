"""The buyer portal's pages for the unit's people: registering a person with their photo, a photo on
its own, a person's progress page, and what may still be done there until the personnel review passes
(FAQ X): changing the person's data, putting another person in their place, withdrawing.

The pages register on the portal's ``router`` (``pages.py``, which imports this module) and use its
helpers: like every portal page they call the registration API with the buyer's token, and show what it
refuses beside the input the refusal names, in the page's language, with everything typed kept.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import httpx
from fastapi import Request
from fastapi.responses import HTMLResponse, Response

from services.registration import validation
from services.registration.pages import (
    Buyer,
    LoggedIn,
    edition_of,
    expo_days,
    file_of,
    invalid,
    optional,
    page,
    put_object,
    refused_page,
    router,
    texts,
)
from shared.pages import first_error
from shared.types import RegistrationStatus
from shared.web import FormErrors, check_csrf, lang_of, posted_form, redirect

log = logging.getLogger(__name__)

# Statuses in which the certificate service has a card for the registration (made, or re-activated).
CARD_STATUSES = {
    RegistrationStatus.CERTIFICATE_ISSUED,
    RegistrationStatus.SHIPPED,
    RegistrationStatus.AWAITING_COLLECTION,
    RegistrationStatus.ONSITE_PICKUP,
    RegistrationStatus.DELIVERED,
    RegistrationStatus.CERTIFICATE_REACTIVATED,
}

# Statuses that have ended: nothing is left to withdraw or change.
ENDED_STATUSES = {
    RegistrationStatus.EXPIRED,
    RegistrationStatus.REVIEW_FAILED,
    RegistrationStatus.REFUNDED,
    RegistrationStatus.WITHDRAWN,
}

ADDRESS_PARTS = ("recipient", "mobile", "province", "city", "district", "detail", "postal_code")
ADDRESS_FIELDS = {
    "delivery_address",
    *(f"delivery_address.{part}" for part in ADDRESS_PARTS),
    "delivery_address.valid_for_six_months",
}
# What a person may change after registering (``PersonChangeIn``): the identity changes by substitution.
CHANGE_FIELDS = {"name", "mobile", "email", "job_title", "personnel_label", "entrance_date", *ADDRESS_FIELDS}
PERSON_FIELDS = CHANGE_FIELDS | {
    "id_type",
    "id_number",
    "nationality",
    "delivery_method",
    "revalidate_certificate_no",
    "photo",
}


def personal_data_body(values: dict[str, str], delivery_method: str) -> dict[str, Any]:
    """The ``PersonChangeIn`` body from the form: the address only for express delivery (the other
    methods need none), its six-month confirmation from the checkbox."""
    body: dict[str, Any] = {
        name: values.get(name, "") for name in ("name", "mobile", "email", "job_title", "personnel_label")
    }
    body["entrance_date"] = values.get("entrance_date", "")
    if delivery_method == "express":
        address = {part: values.get(f"delivery_address.{part}", "") for part in ADDRESS_PARTS}
        body["delivery_address"] = address | {
            "valid_for_six_months": values.get("delivery_address.valid_for_six_months") == "yes"
        }
    return body


def person_body(values: dict[str, str]) -> dict[str, Any]:
    """The ``PersonIn`` body from the form: the personal data with the identity, the delivery method
    and a card to re-validate."""
    delivery_method = values.get("delivery_method", "")
    return personal_data_body(values, delivery_method) | {
        "id_type": values.get("id_type", ""),
        "id_number": values.get("id_number", ""),
        "nationality": (values.get("nationality") or "CN").upper(),
        "delivery_method": delivery_method,
        "revalidate_certificate_no": optional(values.get("revalidate_certificate_no")),
    }


def person_values(person: dict[str, Any]) -> dict[str, str]:
    """A registered person's data as the change form shows it. The express address was confirmed
    good for six months when it was given: the box stays ticked until the buyer unticks it."""
    values = {
        name: person[name] or ""
        for name in ("name", "mobile", "email", "job_title", "personnel_label", "delivery_method")
    }
    values["entrance_date"] = person["entrance_date"] or ""
    if address := person["delivery_address"]:
        values |= {f"delivery_address.{part}": address[part] for part in ADDRESS_PARTS}
        values["delivery_address.valid_for_six_months"] = "yes"
    return values


WEEKDAYS = {"zh": "一二三四五六日", "en": ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")}


async def _person_context(request: Request, me: Buyer, values: dict[str, str]) -> dict[str, Any]:
    """The form's choices: the expo days (with their weekdays) and the mainland regions."""
    lang = lang_of(request)
    days = []
    for day in expo_days(await edition_of(me.ctx)):
        weekday = WEEKDAYS[lang][datetime.fromisoformat(day).weekday()]
        days.append((day, f"{day}（星期{weekday}）" if lang == "zh" else f"{day} ({weekday})"))
    return {"values": values, "days": days, "provinces": list(validation.MAINLAND_PROVINCES.values())}


# ------------------------------------------------------------------------------------------ a new person


@router.get("/people/new")
async def person_form(request: Request, me: LoggedIn) -> Response:
    account = await me.account()
    if not account["unit_id"]:
        return redirect("/portal/unit?notice=unit_first")
    context = await _person_context(
        request, me, {"nationality": "CN", "delivery_method": "mission_collection"}
    )
    # A returning buyer's card to re-validate (``/portal/previous``).
    if certificate_no := request.query_params.get("revalidate_certificate_no", "").strip():
        context["values"]["revalidate_certificate_no"] = certificate_no
    if context["days"]:  # the opening day, unless the buyer picks another
        context["values"]["entrance_date"] = context["days"][0][0]
    return page(request, "portal/person_new.html", context)


@router.post("/people/new")
async def person_post(request: Request, me: LoggedIn) -> Response:
    """Register the person (``POST /v1/units/{id}/people``), then send the photo chosen in the same form
    to the presigned URL the answer carries and have it checked (``.../photo-confirm``). A refused
    photo leaves the person registered: the photo page then asks for another."""
    async with request.form() as form:
        check_csrf(request, form)
        values = texts(form)
        photo = await file_of(form, "photo")
    account = await me.account()
    if not account["unit_id"]:
        return redirect("/portal/unit?notice=unit_first")
    if isinstance(photo, FormErrors):  # said before the person is registered
        context = await _person_context(request, me, values)
        return refused_page(request, "portal/person_new.html", photo, context, PERSON_FIELDS)
    try:
        person = await me.registration.call(
            "POST", f"/v1/units/{account['unit_id']}/people", json=person_body(values)
        )
    except FormErrors as refused:
        context = await _person_context(request, me, values)
        return refused_page(request, "portal/person_new.html", refused, context, PERSON_FIELDS)
    registration_id = person["registration_id"]
    if photo is None:
        return redirect(f"/portal/registrations/{registration_id}/photo")
    refused_photo = await send_photo(me, registration_id, person["photo_upload"], photo.data)
    if refused_photo is not None:
        return photo_page(request, person, refused_photo, registered=True)
    return redirect(f"/portal/registrations/{registration_id}?notice=person_registered")


# ------------------------------------------------------------------------------------------ photo


async def send_photo(
    me: Buyer, registration_id: str, upload: dict[str, Any] | None, data: bytes
) -> FormErrors | None:
    """Upload the photo and have the API check it; the refusal (beside the photo input) if any."""
    try:
        if upload is None:
            upload = await me.registration.call("POST", f"/v1/registrations/{registration_id}/photo-upload")
        await put_object(me.ctx, upload, data)
        await me.registration.call("POST", f"/v1/registrations/{registration_id}/photo-confirm")
    except FormErrors as refused:
        if refused.status == 401:
            raise
        return FormErrors({"photo": first_error(refused)}, refused.status)
    except httpx.HTTPError as exc:
        log.warning("photo of %s not uploaded: %s %s", registration_id, type(exc).__name__, exc)
        return invalid(
            "photo",
            "photo_upload_failed",
            "照片上传失败，请重试",
            "the photo could not be uploaded: please try again",
        )
    return None


def photo_page(
    request: Request, person: dict[str, Any], refused: FormErrors | None = None, *, registered: bool = False
) -> HTMLResponse:
    context: dict[str, Any] = {"person": person, "registered": registered}
    if refused is not None:
        context["errors"] = refused.errors
    return page(request, "portal/photo.html", context, status_code=refused.status if refused else 200)


@router.get("/registrations/{registration_id}/photo")
async def photo_form(request: Request, registration_id: str, me: LoggedIn) -> HTMLResponse:
    person = await me.registration.call("GET", f"/v1/registrations/{registration_id}")
    return photo_page(request, person)


@router.post("/registrations/{registration_id}/photo")
async def photo_post(request: Request, registration_id: str, me: LoggedIn) -> Response:
    """A photo on its own: a fresh upload URL (``.../photo-upload``), the upload, the check."""
    async with request.form() as form:
        check_csrf(request, form)
        photo = await file_of(form, "photo")
    person = await me.registration.call("GET", f"/v1/registrations/{registration_id}")
    if photo is None:
        photo = invalid("photo", "photo_required", "请选择照片文件", "choose the photo file")
    if isinstance(photo, FormErrors):
        return photo_page(request, person, photo)
    refused = await send_photo(me, registration_id, None, photo.data)
    if refused is not None:
        return photo_page(request, person, refused)
    return redirect(f"/portal/registrations/{registration_id}?notice=photo_uploaded")


# ------------------------------------------------------------------------------------------ progress


async def _registration_context(me: Buyer, registration_id: str) -> dict[str, Any]:
    """A person's timeline (``.../timeline``) and, once a card exists, its delivery and tracking from
    the certificate service (which may be down: the rest of the page still shows)."""
    person = await me.registration.call("GET", f"/v1/registrations/{registration_id}")
    timeline = await me.registration.call("GET", f"/v1/registrations/{registration_id}/timeline")
    card: dict[str, Any] | None = None
    tracking: dict[str, Any] | None = None
    card_unavailable = False
    status = RegistrationStatus(timeline["status"]["code"])
    if status in CARD_STATUSES:
        base = f"/v1/registrations/{registration_id}/certificate"
        try:
            card = await me.certificate.call("GET", base)
            if card and card.get("tracking_no"):
                tracking = await me.certificate.call("GET", f"{base}/tracking")
        except FormErrors as refused:
            if refused.status == 401:
                raise
        except httpx.HTTPError as exc:
            log.warning("certificate of %s unavailable: %s", registration_id, type(exc).__name__)
            card_unavailable = True
    # FAQ X: withdrawing, changing the person's data and substituting are offered until the card
    # exists; the API says when it is too late (the personnel review passed, the card in production).
    still_open = status not in ENDED_STATUSES and status not in CARD_STATUSES
    return {
        "person": person,
        "timeline": timeline,
        "card": card,
        "tracking": tracking,
        "card_unavailable": card_unavailable,
        "may_withdraw": still_open,
        "may_change": still_open,
        # A re-validated card belongs to its holder: nobody else can take it over (FAQ VII).
        "may_substitute": still_open and not person["revalidate_certificate_no"],
    }


@router.get("/registrations/{registration_id}")
async def registration_page(request: Request, registration_id: str, me: LoggedIn) -> HTMLResponse:
    return page(request, "portal/registration.html", await _registration_context(me, registration_id))


# ------------------------------------------------------------------------------------------ change


async def _change_context(
    request: Request, me: Buyer, person: dict[str, Any], values: dict[str, str]
) -> dict[str, Any]:
    return await _person_context(request, me, values) | {"person": person}


@router.get("/registrations/{registration_id}/edit")
async def change_form(request: Request, registration_id: str, me: LoggedIn) -> HTMLResponse:
    """The person's data as registered, to change (the identity and the delivery method shown, fixed)."""
    person = await me.registration.call("GET", f"/v1/registrations/{registration_id}")
    context = await _change_context(request, me, person, person_values(person))
    return page(request, "portal/person_edit.html", context)


@router.post("/registrations/{registration_id}/edit")
async def change_post(request: Request, registration_id: str, me: LoggedIn) -> Response:
    """``PUT /v1/registrations/{id}`` with the form's data (under review, it is reviewed anew). A
    re-validated card's fixed data, a change after the personnel review passed, an ended registration
    are the API's refusals, shown beside the input they name (or above the form)."""
    form = await posted_form(request)
    values = texts(form)
    person = await me.registration.call("GET", f"/v1/registrations/{registration_id}")
    body = personal_data_body(values, person["delivery_method"])
    try:
        await me.registration.call("PUT", f"/v1/registrations/{registration_id}", json=body)
    except FormErrors as refused:
        context = await _change_context(request, me, person, values)
        return refused_page(request, "portal/person_edit.html", refused, context, CHANGE_FIELDS)
    return redirect(f"/portal/registrations/{registration_id}?notice=person_changed")


# ------------------------------------------------------------------------------------------ substitution

# What a substitute's form starts with from the registration: the new person confirms the address's six
# months for themselves, and gives their own identity.
SUBSTITUTE_KEEPS = {
    "entrance_date",
    "delivery_method",
    *(f"delivery_address.{part}" for part in ADDRESS_PARTS),
}


@router.get("/registrations/{registration_id}/substitute")
async def substitute_form(request: Request, registration_id: str, me: LoggedIn) -> HTMLResponse:
    """Another person in this place (FAQ X): their identity and data, with the registration's day of
    entrance, delivery method and address offered (the delivery method cannot change)."""
    person = await me.registration.call("GET", f"/v1/registrations/{registration_id}")
    values = {name: value for name, value in person_values(person).items() if name in SUBSTITUTE_KEEPS}
    return page(request, "portal/substitute.html", await _change_context(request, me, person, values))


@router.post("/registrations/{registration_id}/substitute")
async def substitute_post(request: Request, registration_id: str, me: LoggedIn) -> Response:
    """``POST /v1/registrations/{id}/substitute`` with the new person's data, then their photo chosen in
    the same form to the presigned URL the answer carries, checked as at registration. A refused photo
    leaves the substitution made: the photo page then asks for another."""
    async with request.form() as form:
        check_csrf(request, form)
        values = texts(form)
        photo = await file_of(form, "photo")
    person = await me.registration.call("GET", f"/v1/registrations/{registration_id}")
    if isinstance(photo, FormErrors):  # said before anyone takes the place
        context = await _change_context(request, me, person, values)
        return refused_page(request, "portal/substitute.html", photo, context, PERSON_FIELDS)
    try:
        substitute = await me.registration.call(
            "POST", f"/v1/registrations/{registration_id}/substitute", json=person_body(values)
        )
    except FormErrors as refused:
        context = await _change_context(request, me, person, values)
        return refused_page(request, "portal/substitute.html", refused, context, PERSON_FIELDS)
    if photo is None:
        return redirect(f"/portal/registrations/{registration_id}/photo")
    refused_photo = await send_photo(me, registration_id, substitute["photo_upload"], photo.data)
    if refused_photo is not None:
        return photo_page(request, substitute, refused_photo, registered=True)
    return redirect(f"/portal/registrations/{registration_id}?notice=person_substituted")


# ------------------------------------------------------------------------------------------ withdrawal

WITHDRAW_CONFIRM = "confirm_withdrawal"


@router.post("/registrations/{registration_id}/withdraw")
async def withdraw_post(request: Request, registration_id: str, me: LoggedIn) -> Response:
    """Withdraw the person (``POST /v1/registrations/{id}/withdraw``, FAQ X), once the required box
    confirms it (``data-confirm`` asks again where JavaScript runs). The API's refusal (the card is in
    production, a transfer is being confirmed) is shown beside the box."""
    form = await posted_form(request)
    refused: FormErrors | None = None
    if form.get(WITHDRAW_CONFIRM) != "yes":
        refused = invalid(
            WITHDRAW_CONFIRM,
            "withdrawal_not_confirmed",
            "请勾选确认撤回报名",
            "tick the box to confirm the withdrawal",
        )
    else:
        try:
            await me.registration.call("POST", f"/v1/registrations/{registration_id}/withdraw")
        except FormErrors as failed:
            if failed.status in (401, 404):
                raise
            refused = FormErrors({WITHDRAW_CONFIRM: first_error(failed)}, failed.status)
    if refused is not None:
        context = await _registration_context(me, registration_id) | {"errors": refused.errors}
        return page(request, "portal/registration.html", context, status_code=refused.status)
    return redirect(f"/portal/registrations/{registration_id}?notice=withdrawn")
