"""Organiser-signed admission code carried in the QR of a buyer's badge.

Entrance gates scan the QR and must tell a genuine badge from a forged one
without a round trip to the registration service, so the code is a small
self-contained token signed with Ed25519 by the organiser.  A gate only needs
the organiser's *public* key.

Code format (ASCII, no padding anywhere, safe for a QR in byte mode)::

    CIIE1.<payload>.<signature>

* ``CIIE1`` — format/version prefix.
* ``<payload>`` — base64url of the compact JSON of the claims, keys sorted::

      {"e":"<edition>","n":"<certificate_no>","s":<serial>,"t":<issued_at, unix seconds>}

* ``<signature>`` — base64url of the 64-byte Ed25519 signature over the ASCII
  bytes ``"CIIE1." + <payload>`` (the prefix is signed too, so a code cannot be
  replayed under another format version).

A typical code is about 170 characters long.

``issued_at`` is kept to whole seconds (the claims model drops microseconds) so
that what is signed is exactly what a gate gets back.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import UTC, datetime
from typing import Any, Literal

import pydantic
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

__all__ = [
    "CODE_PREFIX",
    "AdmissionClaims",
    "AdmissionCodeError",
    "AdmissionCodeErrorReason",
    "AdmissionSigner",
    "AdmissionVerifier",
]

CODE_PREFIX = "CIIE1"
"""Version prefix of the code (without the separating dot)."""

_SEED_LEN = 32
_PUBLIC_KEY_LEN = 32
_SIGNATURE_LEN = 64
_SIGNATURE_B64_LEN = 86  # 64 bytes -> 86 base64url characters without padding
_MAX_CODE_LEN = 1024  # far above any real code; refuse absurd input before decoding it
_B64URL_RE = re.compile(r"[A-Za-z0-9_-]+")
_CLAIM_KEYS = frozenset({"e", "n", "s", "t"})

AdmissionCodeErrorReason = Literal["malformed", "bad_signature"]


class AdmissionCodeError(Exception):
    """The scanned code is not a genuine admission code.

    ``reason`` is ``"malformed"`` when the text is not a well-formed code of this
    format at all, and ``"bad_signature"`` when it is well formed but the
    signature does not match the claims under the organiser's key (forged,
    altered, or signed with another key).
    """

    def __init__(self, reason: AdmissionCodeErrorReason, detail: str = "") -> None:
        self.reason: AdmissionCodeErrorReason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


class AdmissionClaims(pydantic.BaseModel):
    """What the organiser vouches for in an admission code."""

    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")

    edition: str = pydantic.Field(min_length=1)
    certificate_no: str = pydantic.Field(min_length=1)
    serial: int = pydantic.Field(default=1, ge=1)
    """1 for the first card; every reissue (lost card) increments it so older codes can be revoked."""
    issued_at: datetime
    """Aware datetime, normalised to UTC and whole seconds."""

    @pydantic.field_validator("issued_at")
    @classmethod
    def _aware_utc_seconds(cls, value: datetime) -> datetime:
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("issued_at must be timezone-aware")
        return value.astimezone(UTC).replace(microsecond=0)


def _b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode_strict(text: str) -> bytes:
    """Decode unpadded base64url, refusing anything but its canonical form."""
    if not _B64URL_RE.fullmatch(text) or len(text) % 4 == 1:
        raise ValueError("not unpadded base64url")
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64url_encode(data) != text:  # non-zero trailing bits: another spelling of the same bytes
        raise ValueError("non-canonical base64url")
    return data


def _b64_decode_lenient(text: str) -> bytes:
    """Decode standard or urlsafe base64, padded or not (for keys read from configuration)."""
    cleaned = "".join(text.split()).rstrip("=").replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(cleaned + "=" * (-len(cleaned) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not valid base64") from exc


def _claims_payload(claims: AdmissionClaims) -> bytes:
    obj = {
        "e": claims.edition,
        "n": claims.certificate_no,
        "s": claims.serial,
        "t": int(claims.issued_at.timestamp()),
    }
    return json.dumps(obj, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode("utf-8")


def _claims_from_payload(payload: bytes) -> AdmissionClaims:
    obj: Any = json.loads(payload.decode("utf-8"))
    if not isinstance(obj, dict) or set(obj) != _CLAIM_KEYS:
        raise ValueError("unexpected claim keys")
    edition, number, serial, issued = obj["e"], obj["n"], obj["s"], obj["t"]
    if not isinstance(edition, str) or not isinstance(number, str):
        raise ValueError("edition and certificate_no must be strings")
    for value in (serial, issued):
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError("serial and issued_at must be integers")
    return AdmissionClaims(
        edition=edition,
        certificate_no=number,
        serial=serial,
        issued_at=datetime.fromtimestamp(issued, tz=UTC),
    )


class AdmissionSigner:
    """Signs admission codes with the organiser's Ed25519 private key."""

    __slots__ = ("_private_key", "_public_key")

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._private_key = private_key
        self._public_key = private_key.public_key()

    @classmethod
    def from_seed(cls, seed: bytes) -> AdmissionSigner:
        """Build from the raw 32-byte Ed25519 seed (private key)."""
        if len(seed) != _SEED_LEN:
            raise ValueError(f"an Ed25519 seed is {_SEED_LEN} bytes, got {len(seed)}")
        return cls(Ed25519PrivateKey.from_private_bytes(bytes(seed)))

    @classmethod
    def from_base64(cls, text: str) -> AdmissionSigner:
        """Build from the 32-byte seed written in standard or urlsafe base64 (padding optional)."""
        return cls.from_seed(_b64_decode_lenient(text))

    @classmethod
    def generate(cls) -> AdmissionSigner:
        """A fresh random key (tests, key ceremonies)."""
        return cls(Ed25519PrivateKey.generate())

    def seed_b64(self) -> str:
        """The private seed as unpadded base64url — for writing a newly generated key to a secret store."""
        raw = self._private_key.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )
        return _b64url_encode(raw)

    def public_key_bytes(self) -> bytes:
        return self._public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    def public_key_b64(self) -> str:
        """The 32-byte public key as unpadded base64url (what gates are configured with)."""
        return _b64url_encode(self.public_key_bytes())

    def verifier(self) -> AdmissionVerifier:
        return AdmissionVerifier(self.public_key_bytes())

    def sign(self, claims: AdmissionClaims) -> str:
        """Return the compact ASCII code ``CIIE1.<payload>.<signature>`` for ``claims``."""
        signed_part = f"{CODE_PREFIX}.{_b64url_encode(_claims_payload(claims))}"
        signature = self._private_key.sign(signed_part.encode("ascii"))
        return f"{signed_part}.{_b64url_encode(signature)}"

    def __repr__(self) -> str:  # never show the private key
        return f"AdmissionSigner(public_key={self.public_key_b64()!r})"


class AdmissionVerifier:
    """Checks admission codes against the organiser's Ed25519 public key (offline, ~0.1 ms per code)."""

    __slots__ = ("_public_key",)

    def __init__(self, public_key: bytes | str) -> None:
        """``public_key``: the raw 32 bytes, or them in standard/urlsafe base64."""
        raw = _b64_decode_lenient(public_key) if isinstance(public_key, str) else bytes(public_key)
        if len(raw) != _PUBLIC_KEY_LEN:
            raise ValueError(f"an Ed25519 public key is {_PUBLIC_KEY_LEN} bytes, got {len(raw)}")
        self._public_key = Ed25519PublicKey.from_public_bytes(raw)

    def verify(self, code: str) -> AdmissionClaims:
        """Return the claims of a genuine code; raise :class:`AdmissionCodeError` otherwise.

        Surrounding whitespace (a scanner's trailing CR/LF) is ignored; nothing else is tolerated.
        """
        if not isinstance(code, str):
            raise AdmissionCodeError("malformed", "code is not text")
        code = code.strip()
        if not code:
            raise AdmissionCodeError("malformed", "empty code")
        if len(code) > _MAX_CODE_LEN:
            raise AdmissionCodeError("malformed", "code too long")
        parts = code.split(".")
        if len(parts) != 3:
            raise AdmissionCodeError("malformed", "expected three dot-separated parts")
        prefix, payload_b64, signature_b64 = parts
        if prefix != CODE_PREFIX:
            raise AdmissionCodeError("malformed", "unknown code prefix")
        if len(signature_b64) != _SIGNATURE_B64_LEN:
            raise AdmissionCodeError("malformed", "signature has the wrong length")
        try:
            payload = _b64url_decode_strict(payload_b64)
            signature = _b64url_decode_strict(signature_b64)
        except ValueError as exc:
            raise AdmissionCodeError("malformed", str(exc)) from None
        if not payload or len(signature) != _SIGNATURE_LEN:
            raise AdmissionCodeError("malformed", "empty payload or bad signature length")
        try:
            self._public_key.verify(signature, f"{prefix}.{payload_b64}".encode("ascii"))
        except InvalidSignature:
            raise AdmissionCodeError("bad_signature", "signature does not match") from None
        try:
            return _claims_from_payload(payload)
        except (ValueError, OverflowError, OSError) as exc:  # incl. JSON, UTF-8 and pydantic errors
            # Only reachable if the organiser's key signed a bad payload.
            raise AdmissionCodeError("malformed", f"invalid claims: {exc}") from None
