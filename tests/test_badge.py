"""Admission code signing/verification and the badge PDF.

The badge tests look at the PDF the way a person (or a gate) would: poppler-utils renders and
extracts it, and zbarimg (Debian package zbar-tools) decodes the QR from the rendered pixels.
"""

from __future__ import annotations

import base64
import io
import json
import shutil
import subprocess
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pydantic
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from PIL import Image, ImageDraw

from services.certificate.admission_code import (
    AdmissionClaims,
    AdmissionCodeError,
    AdmissionSigner,
    AdmissionVerifier,
)
from services.certificate.badge import BadgeData, render_badge

SEED = bytes(range(32))
OTHER_SEED = bytes(range(100, 132))
ISSUED = datetime(2025, 10, 20, 8, 30, tzinfo=UTC)
DPI = 150


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@pytest.fixture(scope="module")
def signer() -> AdmissionSigner:
    return AdmissionSigner.from_seed(SEED)


@pytest.fixture(scope="module")
def verifier(signer: AdmissionSigner) -> AdmissionVerifier:
    return AdmissionVerifier(signer.public_key_b64())


@pytest.fixture(scope="module")
def claims() -> AdmissionClaims:
    return AdmissionClaims(edition="CIIE2025", certificate_no="P25-0001234567", serial=1, issued_at=ISSUED)


@pytest.fixture(scope="module")
def code(signer: AdmissionSigner, claims: AdmissionClaims) -> str:
    return signer.sign(claims)


def _non_canonical(text: str) -> str:
    """Another spelling of the same bytes: set an unused trailing bit of the last base64 character."""
    assert len(text) % 4 in (2, 3)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    spelt = text[:-1] + alphabet[alphabet.index(text[-1]) ^ 1]
    assert _unb64url(spelt) == _unb64url(text)
    return spelt


def _reason(verifier: AdmissionVerifier, code: str) -> str:
    with pytest.raises(AdmissionCodeError) as info:
        verifier.verify(code)
    return info.value.reason


# --------------------------------------------------------------------------- admission code


def test_sign_verify_round_trip(
    signer: AdmissionSigner, verifier: AdmissionVerifier, claims: AdmissionClaims, code: str
) -> None:
    assert code.startswith("CIIE1.")
    assert code.isascii() and "=" not in code and len(code.split(".")) == 3
    assert len(code) < 200
    assert verifier.verify(code) == claims
    assert verifier.verify(code + "\r\n") == claims  # a scanner's line ending is harmless
    reissued = claims.model_copy(update={"serial": 2})
    assert verifier.verify(signer.sign(reissued)).serial == 2


def test_claims_keep_non_ascii_and_normalise_time(
    signer: AdmissionSigner, verifier: AdmissionVerifier
) -> None:
    shanghai = timezone(timedelta(hours=8))
    claims = AdmissionClaims(
        edition="第八届",
        certificate_no="证-0001",
        serial=7,
        issued_at=datetime(2025, 10, 20, 16, 30, 5, 123456, tzinfo=shanghai),
    )
    assert claims.issued_at == datetime(2025, 10, 20, 8, 30, 5, tzinfo=UTC)
    assert claims.issued_at.tzinfo is UTC
    assert verifier.verify(signer.sign(claims)) == claims


def test_claims_validation() -> None:
    with pytest.raises(pydantic.ValidationError):
        AdmissionClaims(edition="CIIE2025", certificate_no="P1", serial=1, issued_at=datetime(2025, 1, 1))
    with pytest.raises(pydantic.ValidationError):
        AdmissionClaims(edition="CIIE2025", certificate_no="P1", serial=0, issued_at=ISSUED)
    claims = AdmissionClaims(edition="CIIE2025", certificate_no="P1", serial=1, issued_at=ISSUED)
    with pytest.raises(pydantic.ValidationError):
        claims.serial = 2  # type: ignore[misc]


def test_keys_from_base64(signer: AdmissionSigner, code: str) -> None:
    standard = base64.b64encode(SEED).decode()
    assert AdmissionSigner.from_base64(standard).public_key_b64() == signer.public_key_b64()
    assert AdmissionSigner.from_base64(_b64url(SEED)).public_key_b64() == signer.public_key_b64()
    raw_public = _unb64url(signer.public_key_b64())
    assert len(raw_public) == 32
    for key in (raw_public, signer.public_key_b64(), base64.b64encode(raw_public).decode()):
        assert AdmissionVerifier(key).verify(code).certificate_no == "P25-0001234567"
    with pytest.raises(ValueError):
        AdmissionSigner.from_seed(SEED[:31])
    with pytest.raises(ValueError):
        AdmissionSigner.from_base64("not base64 at all!")
    with pytest.raises(ValueError):
        AdmissionVerifier(raw_public[:16])
    assert _b64url(SEED) not in repr(signer)


def test_changed_claim_is_refused(verifier: AdmissionVerifier, code: str) -> None:
    prefix, payload_b64, signature_b64 = code.split(".")
    payload = json.loads(_unb64url(payload_b64))
    for key, value in (("s", 2), ("n", "P25-0001234568"), ("e", "CIIE2024"), ("t", payload["t"] + 1)):
        forged = _b64url(json.dumps({**payload, key: value}, separators=(",", ":"), sort_keys=True).encode())
        assert _reason(verifier, f"{prefix}.{forged}.{signature_b64}") == "bad_signature"
    # One flipped byte anywhere in the payload.
    raw = bytearray(_unb64url(payload_b64))
    for i in range(len(raw)):
        flipped = bytearray(raw)
        flipped[i] ^= 0x01
        assert _reason(verifier, f"{prefix}.{_b64url(bytes(flipped))}.{signature_b64}") == "bad_signature"


def test_changed_or_swapped_signature_is_refused(
    signer: AdmissionSigner, verifier: AdmissionVerifier, claims: AdmissionClaims, code: str
) -> None:
    prefix, payload_b64, signature_b64 = code.split(".")
    other = signer.sign(claims.model_copy(update={"certificate_no": "P25-0009999999"}))
    assert _reason(verifier, f"{prefix}.{payload_b64}.{other.split('.')[2]}") == "bad_signature"
    signature = bytearray(_unb64url(signature_b64))
    signature[10] ^= 0x80
    assert _reason(verifier, f"{prefix}.{payload_b64}.{_b64url(bytes(signature))}") == "bad_signature"
    assert _reason(verifier, f"{prefix}.{payload_b64}.{_b64url(bytes(64))}") == "bad_signature"


def test_other_signers_key_is_refused(verifier: AdmissionVerifier, claims: AdmissionClaims) -> None:
    forger = AdmissionSigner.from_seed(OTHER_SEED)
    assert _reason(verifier, forger.sign(claims)) == "bad_signature"
    assert _reason(verifier, AdmissionSigner.generate().sign(claims)) == "bad_signature"


def test_truncated_code_is_refused(verifier: AdmissionVerifier, code: str) -> None:
    for cut in (1, 2, 3, 10, 86, 87, len(code) - 6, len(code) - 1):
        assert _reason(verifier, code[:-cut]) == "malformed", cut


def test_wrong_prefix_is_refused(verifier: AdmissionVerifier, code: str) -> None:
    rest = code.removeprefix("CIIE1.")
    for prefix in ("CIIE2.", "ciie1.", "CIIE.", "", "CIIE1..", "X.CIIE1."):
        assert _reason(verifier, prefix + rest) == "malformed", prefix


def test_not_base64_or_garbage_is_refused(verifier: AdmissionVerifier, code: str) -> None:
    prefix, payload_b64, signature_b64 = code.split(".")
    bad_codes = [
        f"{prefix}.{payload_b64[:5]}!{payload_b64[6:]}.{signature_b64}",
        f"{prefix}.{payload_b64}.{signature_b64[:5]}/{signature_b64[6:]}",
        f"{prefix}.{payload_b64.replace('-', '+').replace('_', '/')}==.{signature_b64}",
        f"{prefix}.{payload_b64}.{signature_b64[:-2]}==",
        f"{prefix}.{_non_canonical(payload_b64)}.{signature_b64}",
        f"{prefix}.{payload_b64}.{_non_canonical(signature_b64)}",
        f"{prefix}..{signature_b64}",
        f"{prefix}.{payload_b64}.{signature_b64}.extra",
        f"{prefix}.{payload_b64} .{signature_b64}",
        "",
        "   ",
        "..",
        "CIIE1..",
        "hello world",
        "https://www.ciie.org/",
        "CIIE1." + "A" * 2000 + "." + signature_b64,
        "\x00" * 50,
    ]
    for bad in bad_codes:
        assert _reason(verifier, bad) == "malformed", bad


def test_signed_nonsense_is_malformed(verifier: AdmissionVerifier) -> None:
    """Even a genuine signature over a payload that is not valid claims is refused."""
    key = Ed25519PrivateKey.from_private_bytes(SEED)
    for payload in (b"not json", b'{"e":"x","n":"y","s":1}', b'{"e":"x","n":"y","s":0,"t":1}', b"[1,2]"):
        signed = f"CIIE1.{_b64url(payload)}"
        code = f"{signed}.{_b64url(key.sign(signed.encode()))}"
        assert _reason(verifier, code) == "malformed", payload


# --------------------------------------------------------------------------- badge PDF


def _tool(name: str, package: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is needed for this test: apt-get install -y {package}"
    return path


def _png_photo() -> bytes:
    img = Image.new("RGBA", (120, 160), (190, 205, 230, 255))
    draw = ImageDraw.Draw(img)
    draw.ellipse((35, 20, 85, 85), fill=(240, 210, 180, 255))
    draw.rectangle((20, 95, 100, 160), fill=(30, 50, 110, 255))
    draw.rectangle((0, 0, 10, 10), fill=(0, 0, 0, 0))  # some transparency to flatten
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()


def _badge(code: str, photo: bytes | None) -> BadgeData:
    return BadgeData(
        edition_name_zh="第八届中国国际进口博览会",
        edition_name_en="The 8th China International Import Expo",
        certificate_no="P25-0001234567",
        certificate_type_zh="专业观众证",
        certificate_type_en="Professional Visitor",
        holder_name="张伟",
        unit_name="上海东方国际贸易（集团）有限公司",
        mission_name_zh="上海交易团",
        mission_name_en="Shanghai Trade Mission",
        sub_mission_name_zh="浦东新区交易分团",
        sub_mission_name_en="Pudong New Area Sub-mission",
        admission_code=code,
        photo=photo,
    )


def _pdf_info(pdf: Path) -> dict[str, str]:
    out = subprocess.run(
        [_tool("pdfinfo", "poppler-utils"), str(pdf)], capture_output=True, text=True, check=True
    )
    info = {}
    for line in out.stdout.splitlines():
        key, _, value = line.partition(":")
        info[key.strip()] = value.strip()
    return info


def _pdf_text(pdf: Path) -> str:
    out = subprocess.run(
        [_tool("pdftotext", "poppler-utils"), "-enc", "UTF-8", str(pdf), "-"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout


def _rasterise(pdf: Path) -> Path:
    prefix = pdf.with_suffix("")
    subprocess.run(
        [_tool("pdftoppm", "poppler-utils"), "-png", "-r", str(DPI), "-singlefile", str(pdf), str(prefix)],
        capture_output=True,
        check=True,
    )
    return prefix.with_suffix(".png")


def _decode_qr(png: Path) -> list[str]:
    out = subprocess.run(
        [_tool("zbarimg", "zbar-tools"), "--raw", "-q", "-Sdisable", "-Sqrcode.enable", str(png)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode in (0, 4), out.stderr  # 4: no symbol found
    return [line for line in out.stdout.splitlines() if line]


def _qr_width_mm(png: Path) -> float:
    """Width of the black QR symbol in the lower right of the page, measured on the rendered pixels."""
    with Image.open(png) as img:
        gray = img.convert("L")
        w, h = gray.size
        region = gray.crop((w // 2, h // 2, w, h)).point(
            lambda v: 255 if v < 12 else 0
        )  # pure black only, not the ink
        box = region.getbbox()
    assert box is not None
    return (box[2] - box[0]) / DPI * 25.4


def _check_badge(tmp_path: Path, pdf_bytes: bytes, code: str, verifier: AdmissionVerifier) -> str:
    assert pdf_bytes.startswith(b"%PDF-") and pdf_bytes.rstrip().endswith(b"%%EOF")
    pdf = tmp_path / "badge.pdf"
    pdf.write_bytes(pdf_bytes)

    info = _pdf_info(pdf)
    assert info["Pages"] == "1"
    width_pt, _, height_pt = info["Page size"].split()[:3]
    assert abs(float(width_pt) / 72 * 25.4 - 105) < 0.5
    assert abs(float(height_pt) / 72 * 25.4 - 148) < 0.5

    text = _pdf_text(pdf)
    for expected in (
        "P25-0001234567",
        "张伟",
        "第八届中国国际进口博览会",
        "Professional Visitor",
        "上海交易团",
    ):
        assert expected in text, expected
    assert "Scan at the entrance gate" in text and "入口闸机扫码" in text

    png = _rasterise(pdf)
    assert _decode_qr(png) == [code]
    assert verifier.verify(_decode_qr(png)[0]).certificate_no == "P25-0001234567"
    assert _qr_width_mm(png) >= 30
    return text


def test_badge_with_photo(tmp_path: Path, code: str, verifier: AdmissionVerifier) -> None:
    pdf_bytes = render_badge(_badge(code, _png_photo()))
    text = _check_badge(tmp_path, pdf_bytes, code, verifier)
    assert "照片" not in text  # no placeholder when there is a photo
    assert b"/Subtype /Image" in pdf_bytes
    assert render_badge(_badge(code, _png_photo())) == pdf_bytes  # deterministic


def test_badge_with_jpeg_photo(tmp_path: Path, code: str, verifier: AdmissionVerifier) -> None:
    with Image.open(io.BytesIO(_png_photo())) as img:
        out = io.BytesIO()
        img.convert("RGB").resize((1200, 1600)).save(out, format="JPEG", quality=85)
    pdf_bytes = render_badge(_badge(code, out.getvalue()))
    _check_badge(tmp_path, pdf_bytes, code, verifier)
    assert len(pdf_bytes) < 500_000


def test_badge_without_photo(tmp_path: Path, code: str, verifier: AdmissionVerifier) -> None:
    data = _badge(code, None).model_copy(update={"sub_mission_name_zh": None, "sub_mission_name_en": None})
    pdf_bytes = render_badge(data)
    text = _check_badge(tmp_path, pdf_bytes, code, verifier)
    assert "照片" in text and "Photo" in text
    assert "Sub-mission" not in text
    assert b"/Subtype /Image" not in pdf_bytes


def test_badge_with_long_latin_texts(
    tmp_path: Path, signer: AdmissionSigner, verifier: AdmissionVerifier
) -> None:
    claims = AdmissionClaims(
        edition="CIIE2025", certificate_no="P25-0001234567-REISSUE-0003", serial=3, issued_at=ISSUED
    )
    code = signer.sign(claims)
    data = _badge(code, _png_photo()).model_copy(
        update={
            "certificate_no": claims.certificate_no,
            "holder_name": "Maximilian Alexander von Württemberg-Hohenzollern",
            "unit_name": "Deutsche Großhandelsgesellschaft für Maschinenbau und Industrieausrüstung mbH "
            "& Co. KG, Niederlassung Shanghai, Repräsentanz für Ostasien und Ozeanien " * 2,
        }
    )
    pdf = tmp_path / "long.pdf"
    pdf.write_bytes(render_badge(data))
    assert _pdf_info(pdf)["Pages"] == "1"
    assert "Württemberg" in _pdf_text(pdf)
    assert _decode_qr(_rasterise(pdf)) == [code]


def test_unreadable_photo_is_an_error(code: str) -> None:
    with pytest.raises(ValueError, match="photo"):
        render_badge(_badge(code, b"\x89PNG\r\n\x1a\nnot really a png"))
