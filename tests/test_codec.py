"""Personal data kept from those who do not need it: workflow payloads encrypted in Temporal (with key
rotation), the Temporal UI's codec endpoint for administrators only, and numbers masked in staff lists.

The workflows run on the time-skipping server with the project's converter and a payload key, as every
process of a deployment does; the codec endpoint is the review app in process on its own SQLite
database; the collection list is the certificate app with the other services' stand-ins.
"""

from __future__ import annotations

import base64
import csv
import io
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.protobuf.json_format import MessageToDict, ParseDict
from pydantic import SecretStr, ValidationError
from temporalio.api.common.v1 import Payload
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from services.certificate import api as certificate_api
from services.certificate.models import Certificate
from services.review import api as review_api
from services.review.models import StaffRole
from shared import temporal
from shared.codec import (
    PayloadDecryptionError,
    PayloadEncryptionCodec,
    PayloadKeyError,
    codec_for,
    new_key_entry,
    parse_keys,
)
from shared.db import utcnow
from shared.masking import mask_id_number, mask_numbers_in_text, mask_phone
from shared.settings import Settings
from shared.types import Decision, DeliveryMethod
from tests.page_env import add_staff
from tests.service_env import service_context
from tests.service_stand_ins import URLS, StandIns, staff
from tests.test_workflows import run_happy_path
from tests.workflow_env import (
    WORKFLOWS,
    FakeServices,
    find_test_server,
    history_payloads,
    quiet_runtime,
    register_search_attributes,
    running_workers,
)
from tests.workflow_world import S, Step, World, eventually, recorded_histories, refusal

OLD, NEW = new_key_entry("2025-01"), new_key_entry("2026-01")
UI = "http://127.0.0.1:8233"
ENCRYPTED = b"binary/encrypted"
PERSON_ID = "310101199001011234"
PHONE = "+8613812345678"


def codec(keys: str) -> PayloadEncryptionCodec:
    made = codec_for(keys)
    assert made is not None
    return made


def json_payload(value: Any) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(value).encode())


# ------------------------------------------------------------------------------------------ the codec


async def test_payloads_round_trip_as_ciphertext_naming_only_their_key() -> None:
    plain = json_payload({"registration_id": "R123", "id_number": PERSON_ID})
    (sealed,) = await codec(OLD).encode([plain])
    assert dict(sealed.metadata) == {"encoding": ENCRYPTED, "encryption-key-id": b"2025-01"}
    assert PERSON_ID.encode() not in sealed.data and b"json/plain" not in sealed.data
    (again,) = await codec(OLD).encode([plain])
    assert again.data != sealed.data  # a fresh nonce each time
    assert await codec(OLD).decode([sealed, again]) == [plain, plain]


async def test_rotation_reads_the_old_key_and_writes_with_the_new() -> None:
    plain = json_payload({"status": "unpaid"})
    (under_old,) = await codec(OLD).encode([plain])
    rotated = codec(f"{NEW},{OLD}")  # the new key first, the old one kept
    assert await rotated.decode([under_old]) == [plain]
    (under_new,) = await rotated.encode([plain])
    assert under_new.metadata["encryption-key-id"] == b"2026-01"
    # Once the old key is dropped, what it wrote can no longer be read, and the error says which key.
    with pytest.raises(PayloadDecryptionError, match="2025-01") as unknown:
        await codec(NEW).decode([under_old])
    assert OLD.split(":")[1] not in str(unknown.value) and NEW.split(":")[1] not in str(unknown.value)
    assert await codec(NEW).decode([under_new]) == [plain]


async def test_altered_ciphertext_or_key_id_is_refused() -> None:
    (sealed,) = await codec(f"{NEW},{OLD}").encode([json_payload({"amount_fen": 60000})])
    flipped = Payload()
    flipped.CopyFrom(sealed)
    flipped.data = sealed.data[:-1] + bytes([sealed.data[-1] ^ 1])
    with pytest.raises(PayloadDecryptionError, match="failed authentication"):
        await codec(f"{NEW},{OLD}").decode([flipped])
    # The key id is bound to the ciphertext: relabelled as written under another configured key, refused.
    relabelled = Payload()
    relabelled.CopyFrom(sealed)
    relabelled.metadata["encryption-key-id"] = b"2025-01"
    with pytest.raises(PayloadDecryptionError):
        await codec(f"{NEW},{OLD}").decode([relabelled])


async def test_unencrypted_payloads_pass_through() -> None:
    plain = json_payload({"written": "before encryption was switched on"})
    assert await codec(NEW).decode([plain]) == [plain]


def test_malformed_keys_stop_the_start_without_showing_them() -> None:
    secret = base64.b64encode(b"sixteen byte key").decode()  # AES-128: not accepted
    for keys, problem in [
        (f"k1:{secret}", "'k1' is not the base64 of 32 bytes"),
        ("k1", "entry 1 is not key-id:base64"),
        (f"{NEW},{NEW}", "lists key '2026-01' twice"),
        (f"{NEW},bad id:{secret}", "entry 2 is not key-id:base64"),
    ]:
        with pytest.raises(PayloadKeyError, match=problem):
            parse_keys(keys)
        with pytest.raises(ValidationError) as refused:
            Settings(payload_keys=SecretStr(keys))
        assert secret not in str(refused.value) and NEW.split(":")[1] not in str(refused.value)
    assert Settings(payload_keys=SecretStr(" ")).payload_keys is None  # blank: not set
    assert parse_keys(f"{NEW}, {OLD}").current == "2026-01"


# ------------------------------------------------------------------------------------------ workflows


@pytest.fixture
async def encrypted_world() -> AsyncIterator[World]:
    """The workflows and the fake services on a time-skipping server, every client and worker with
    the converter ``connect`` gives a process whose EXPO_PAYLOAD_KEYS is set."""
    converter = temporal.data_converter(Settings(payload_keys=SecretStr(f"{NEW},{OLD}")))
    async with await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=find_test_server(), data_converter=converter, runtime=quiet_runtime()
    ) as env:
        await register_search_attributes(env.client)
        services = FakeServices()
        async with running_workers(env.client, services):
            yield World(env, services)


async def test_a_lifecycle_runs_on_encrypted_payloads(encrypted_world: World) -> None:
    path = await run_happy_path(encrypted_world)
    assert path.result.status is S.SHIPPED and path.result.certificate_no  # the result decodes

    history = await path.registration.handle.fetch_history()
    raw = history_payloads(json.loads(history.to_json()))
    assert len(raw) > 10  # start input, activities' inputs and results, signals, updates, result
    encodings = {base64.b64decode(p["metadata"]["encoding"]) for p in raw}
    assert encodings == {ENCRYPTED}
    assert not any(path.registration.id.encode() in base64.b64decode(p["data"]) for p in raw)
    # What the codec endpoint would show an administrator: the registration's id is there.
    keys = codec(f"{NEW},{OLD}")
    opened = [base64.b64decode(MessageToDict(p).get("data", "")) for p in await keys.decode(_parsed(raw))]
    assert any(path.registration.id.encode() in data for data in opened)

    # Encrypted histories replay with the key; recorded plain ones too (their payloads pass through).
    converter = temporal.data_converter(Settings(payload_keys=SecretStr(f"{NEW},{OLD}")))
    replayer = Replayer(workflows=list(WORKFLOWS), data_converter=converter)
    await replayer.replay_workflow(history)
    for recorded in recorded_histories():
        await replayer.replay_workflow(recorded)


def _parsed(payloads: list[dict[str, Any]]) -> list[Payload]:
    return [ParseDict(p, Payload()) for p in payloads]


async def test_failures_are_encrypted_too_and_read_back_by_the_client(encrypted_world: World) -> None:
    world = encrypted_world
    # A validator's refusal reaches the caller with its code and readable message.
    unit = await world.start_unit()
    assert await refusal(unit.decide(Decision.REJECT)) == "reason_required"

    # An activity failing: in Temporal its message is ciphertext ("Encoded failure").
    world.services.fail_notify(Step.REGISTERED)
    registration = await world.register(unit)

    async def last_failure() -> Any:
        description = await registration.handle.describe()
        pending = description.raw_description.pending_activities
        return pending[0].last_failure if pending and pending[0].HasField("last_failure") else None

    failure = await eventually(last_failure, lambda f: f is not None, "a failed notification attempt")
    assert failure.message == "Encoded failure"
    assert failure.encoded_attributes.metadata["encoding"] == ENCRYPTED
    (attributes,) = await codec(f"{NEW},{OLD}").decode([failure.encoded_attributes])
    assert "SMS gateway unavailable (registered)" in attributes.data.decode()
    world.services.stop_failing(Step.REGISTERED)


# ------------------------------------------------------------------------------------------ codec endpoint


@pytest.fixture
async def review(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, str]]]:
    """The review app in process with a payload key, and a token per role."""
    settings = Settings(data_dir=tmp_path, payload_keys=SecretStr(f"{NEW},{OLD}"), codec_cors_origins=UI)
    async with service_context("review", settings) as ctx:
        async with ctx.db.transaction() as session:
            tokens = {
                role.value: (
                    await add_staff(session, role, "shanghai" if role.value == "mission_staff" else None)
                )[1]
                for role in StaffRole
            }
        review_api.app.state.ctx = ctx
        transport = httpx.ASGITransport(app=review_api.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8002") as client:
            yield client, tokens


def wire(payload: Payload) -> dict[str, Any]:
    return MessageToDict(payload)


async def test_codec_endpoint_decodes_for_administrators_only(
    review: tuple[httpx.AsyncClient, dict[str, str]],
) -> None:
    client, tokens = review
    plain = json_payload({"registration_id": "R123"})
    (sealed,) = await codec(OLD).encode([plain])  # written before the rotation
    body = {"payloads": [wire(sealed)]}
    headers = {"X-Namespace": "default", "Origin": UI}

    # The console's cookie, sent by the UI with credentials: plaintext, readable by the UI's page.
    client.cookies.set("expo_staff", tokens["administrator"])
    decoded = await client.post("/codec/decode", json=body, headers=headers)
    client.cookies.clear()
    assert decoded.status_code == 200, decoded.text
    assert decoded.json() == {"payloads": [wire(plain)]}
    assert decoded.headers["access-control-allow-origin"] == UI
    assert decoded.headers["access-control-allow-credentials"] == "true"
    # A bearer token works as well; encoding (what an operator sends from the UI) uses the new key.
    admin = {"Authorization": f"Bearer {tokens['administrator']}"}
    encoded = await client.post("/codec/encode", json={"payloads": [wire(plain)]}, headers=headers | admin)
    assert encoded.status_code == 200, encoded.text
    (again,) = encoded.json()["payloads"]
    assert base64.b64decode(again["metadata"]["encryption-key-id"]) == b"2026-01"

    # No login, and every other role: refused, and nothing decrypted in the answer.
    nobody = await client.post("/codec/decode", json=body, headers=headers)
    assert nobody.status_code == 401 and nobody.json()["code"] == "unauthenticated"
    assert nobody.headers["access-control-allow-origin"] == UI  # the UI can show why
    for role, token in tokens.items():
        if role == "administrator":
            continue
        refused = await client.post(
            "/codec/decode", json=body, headers=headers | {"Authorization": f"Bearer {token}"}
        )
        assert refused.status_code == 403, (role, refused.text)
        assert refused.json()["code"] == "administrators_only" and "R123" not in refused.text
    mission_staff = {"Authorization": f"Bearer {tokens['mission_staff']}"}
    assert (await client.post("/codec/encode", json=body, headers=headers | mission_staff)).status_code == 403


async def test_codec_endpoint_answers_the_ui_origin_only(
    review: tuple[httpx.AsyncClient, dict[str, str]],
) -> None:
    client, tokens = review
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,x-namespace",
    }
    allowed = await client.options("/codec/decode", headers=preflight | {"Origin": UI})
    assert allowed.status_code == 204
    assert allowed.headers["access-control-allow-origin"] == UI
    assert allowed.headers["access-control-allow-credentials"] == "true"
    assert "X-Namespace" in allowed.headers["access-control-allow-headers"]
    elsewhere = await client.options("/codec/decode", headers=preflight | {"Origin": "http://evil.example"})
    assert elsewhere.status_code == 403 and "access-control-allow-origin" not in elsewhere.headers

    # Even with an administrator's cookie, a page of another origin gets no plaintext.
    (sealed,) = await codec(NEW).encode([json_payload({"registration_id": "R9"})])
    client.cookies.set("expo_staff", tokens["administrator"])
    foreign = await client.post(
        "/codec/decode", json={"payloads": [wire(sealed)]}, headers={"Origin": "http://evil.example"}
    )
    client.cookies.clear()
    assert foreign.status_code == 403 and foreign.json()["code"] == "origin_not_allowed"
    assert "access-control-allow-origin" not in foreign.headers and "R9" not in foreign.text


# ------------------------------------------------------------------------------------------ masking


def test_masking_rules() -> None:
    assert mask_id_number(PERSON_ID) == "310***********1234"
    assert mask_id_number("E09000011") == "*****0011"  # a passport: no prefix shown
    assert mask_phone(PHONE) == "+*********5678"
    note = f"collected by Li Si (ID {PERSON_ID}, tel 138-1234-5678) on 2023-11-05"
    assert (
        mask_numbers_in_text(note)
        == "collected by Li Si (ID 310***********1234, tel ***-****-5678) on 2023-11-05"
    )


async def test_collection_list_masks_numbers_in_notes_for_mission_staff(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, edition="ciie6", edition_year_shift=0, **URLS)
    stand_ins = StandIns.fresh(settings)
    note = f"collected by Li Si, ID {PERSON_ID}, mobile {PHONE}"
    async with service_context(
        "certificate", settings, http=httpx.AsyncClient(mounts=stand_ins.mounts())
    ) as ctx:
        async with ctx.db.transaction() as session:
            session.add(
                Certificate(
                    certificate_no="B06-0000001",
                    edition="ciie6",
                    registration_id="RSH1",
                    badge_key="ciie6/B06-0000001.pdf",
                    unit_id="USH",
                    mission="shanghai",
                    holder_name="张伟",
                    unit_name="上海示例公司",
                    delivery_method=DeliveryMethod.MISSION_COLLECTION,
                    dispatched_at=utcnow() - timedelta(days=1),
                    handed_out_at=utcnow(),
                    handed_out_by="mission_staff.shanghai@organiser.example.com",
                    handed_out_note=note,
                )
            )
        certificate_api.app.state.ctx = ctx
        transport = httpx.ASGITransport(app=certificate_api.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://certificate.test") as client:
            shanghai = staff("mission_staff", "shanghai")
            (row,) = (await client.get("/v1/collection-list", headers=shanghai)).json()
            masked = "collected by Li Si, ID 310***********1234, mobile +*********5678"
            assert row["handed_out_note"] == masked
            exported = await client.get("/v1/collection-list", params={"format": "csv"}, headers=shanghai)
            assert exported.status_code == 200, exported.text
            text = exported.content.decode("utf-8-sig")
            assert PERSON_ID not in text and PHONE not in text
            assert masked in [cell for line in csv.reader(io.StringIO(text)) for cell in line]
            # The certificate office answers for hand-outs: it reads the note whole.
            office = (await client.get("/v1/collection-list", headers=staff("certificate_office"))).json()
            assert office[0]["handed_out_note"] == note
