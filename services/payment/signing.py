"""Signing of messages between us and a payment gateway: HMAC-SHA256 over timestamp, nonce and body.

Both directions use it: our requests to the gateway and the gateway's callbacks to us. A callback
older than the allowed skew, or with a wrong signature, is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

TIMESTAMP = "X-Gateway-Timestamp"
NONCE = "X-Gateway-Nonce"
SIGNATURE = "X-Gateway-Signature"
MAX_SKEW = timedelta(minutes=5)


class SignatureError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _digest(key: str, timestamp: str, nonce: str, body: bytes) -> str:
    message = timestamp.encode() + b"\n" + nonce.encode() + b"\n" + body
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


def sign(key: str, body: bytes, now: datetime) -> dict[str, str]:
    timestamp = str(int(now.timestamp()))
    nonce = secrets.token_hex(12)
    return {TIMESTAMP: timestamp, NONCE: nonce, SIGNATURE: _digest(key, timestamp, nonce, body)}


def verify(key: str, headers: dict[str, str], body: bytes, now: datetime) -> None:
    lowered = {name.lower(): value for name, value in headers.items()}
    try:
        timestamp, nonce, signature = (lowered[h.lower()] for h in (TIMESTAMP, NONCE, SIGNATURE))
        sent = datetime.fromtimestamp(int(timestamp), tz=now.tzinfo)
    except (KeyError, ValueError) as exc:
        raise SignatureError("unsigned", "the message carries no valid signature headers") from exc
    if not hmac.compare_digest(signature, _digest(key, timestamp, nonce, body)):
        raise SignatureError("bad_signature", "the signature does not match")
    if abs(now - sent) > MAX_SKEW:
        raise SignatureError("stale", "the message is too old or from the future")
