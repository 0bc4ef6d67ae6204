"""Workflow payloads encrypted at rest in Temporal: a payload codec (AES-256-GCM) and its keys.

Every input, result, signal, update, memo value and failure that a process hands to Temporal passes
through ``PayloadEncryptionCodec`` on its way out and back in, so the Temporal server, its database
and its Web UI hold ciphertext only. The UI shows plaintext to the organiser's administrators through
the review service's codec endpoint (``services/review/codec_api.py``), which uses the same codec.

An encrypted payload keeps the whole original payload (its metadata and data) inside the ciphertext;
outside it carries only ``encoding: binary/encrypted`` and the id of the key that encrypted it. The
key id is authenticated as associated data, so a ciphertext cannot be passed off under another key's
id. A payload without that encoding (written before encryption was switched on, as the recorded
histories of ``tests/histories``) decodes as it is.

Keys come from ``EXPO_PAYLOAD_KEYS``: ``key-id:base64 of 32 bytes``, comma-separated. The first key
encrypts; every key listed decrypts. To rotate, put a new key first and keep the old ones for as long
as histories written under them are read (their retention).
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

ENCODING = b"binary/encrypted"
ENCODING_KEY = "encoding"
KEY_ID_KEY = "encryption-key-id"
NONCE_BYTES = 12  # 96 bits, as GCM is meant to be used; random per payload
KEY_BYTES = 32  # AES-256
_KEY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_ASSOCIATED_DATA_PREFIX = b"expo-payload/v1:"  # bumped if the format ever changes


class PayloadKeyError(ValueError):
    """``EXPO_PAYLOAD_KEYS`` is malformed. The message names the entry's position or key id, never key
    material."""


class PayloadDecryptionError(Exception):
    """An encrypted payload cannot be decrypted: its key is not configured, or it was altered."""


@dataclass(frozen=True)
class PayloadKeys:
    """The configured keys in order: ``current`` encrypts, any of ``by_id`` decrypts."""

    current: str
    by_id: dict[str, bytes]


def parse_keys(text: str) -> PayloadKeys:
    """``key-id:base64,key-id:base64,...`` as keys; PayloadKeyError with what is wrong otherwise."""
    by_id: dict[str, bytes] = {}
    entries = [entry.strip() for entry in text.split(",")]
    if not any(entries):
        raise PayloadKeyError("EXPO_PAYLOAD_KEYS lists no key: give key-id:base64-of-32-bytes")
    for position, entry in enumerate(entries, start=1):
        key_id, colon, encoded = entry.partition(":")
        key_id = key_id.strip()
        if not colon or not _KEY_ID.fullmatch(key_id):
            raise PayloadKeyError(
                f"EXPO_PAYLOAD_KEYS entry {position} is not key-id:base64-of-32-bytes (a key id is 1-64 "
                "letters, digits, '.', '_' or '-')"
            )
        try:
            key = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            key = b""
        if len(key) != KEY_BYTES:
            raise PayloadKeyError(
                f"EXPO_PAYLOAD_KEYS key {key_id!r} is not the base64 of {KEY_BYTES} bytes (AES-256)"
            )
        if key_id in by_id:
            raise PayloadKeyError(f"EXPO_PAYLOAD_KEYS lists key {key_id!r} twice")
        by_id[key_id] = key
    return PayloadKeys(current=next(iter(by_id)), by_id=by_id)


def new_key_entry(key_id: str) -> str:
    """A fresh ``key-id:base64`` entry (to generate a key: ``python -c 'from shared.codec import
    new_key_entry; print(new_key_entry("2026-01"))'``)."""
    if not _KEY_ID.fullmatch(key_id):
        raise PayloadKeyError(f"{key_id!r} is not a key id (1-64 letters, digits, '.', '_' or '-')")
    return f"{key_id}:{base64.b64encode(os.urandom(KEY_BYTES)).decode()}"


def _associated_data(key_id: str) -> bytes:
    return _ASSOCIATED_DATA_PREFIX + key_id.encode()


class PayloadEncryptionCodec(PayloadCodec):
    """Encrypts each payload with the current key (AES-256-GCM, a random 96-bit nonce); decrypts with
    the key its metadata names. Unencrypted payloads decode unchanged."""

    def __init__(self, keys: PayloadKeys) -> None:
        self._current = keys.current
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys.by_id.items()}

    @property
    def current_key_id(self) -> str:
        return self._current

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encrypt(payload) for payload in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decrypt(payload) for payload in payloads]

    def encrypt(self, payload: Payload) -> Payload:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[self._current].encrypt(
            nonce, payload.SerializeToString(), _associated_data(self._current)
        )
        return Payload(
            metadata={ENCODING_KEY: ENCODING, KEY_ID_KEY: self._current.encode()}, data=nonce + sealed
        )

    def decrypt(self, payload: Payload) -> Payload:
        if payload.metadata.get(ENCODING_KEY) != ENCODING:
            return payload  # never encrypted (older histories): as it is
        key_id = payload.metadata.get(KEY_ID_KEY, b"").decode(errors="replace")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise PayloadDecryptionError(
                f"payload encrypted with key {key_id!r}, which is not among EXPO_PAYLOAD_KEYS "
                f"({', '.join(self._ciphers)}): list that key again to read it"
            )
        data = payload.data
        try:
            plain = cipher.decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], _associated_data(key_id))
        except InvalidTag as exc:
            raise PayloadDecryptionError(
                f"payload encrypted with key {key_id!r} failed authentication: it was altered, or that "
                "key id now names a different key"
            ) from exc
        return Payload.FromString(plain)


def codec_for(payload_keys: str | None) -> PayloadEncryptionCodec | None:
    """The codec for ``EXPO_PAYLOAD_KEYS``'s value; None when it is unset (payloads stay plain)."""
    if payload_keys is None or not payload_keys.strip():
        return None
    return PayloadEncryptionCodec(parse_keys(payload_keys))
