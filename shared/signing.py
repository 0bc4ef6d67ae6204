"""Signing of messages between us and a provider at the edge (payment gateway, courier): HMAC-SHA256
over timestamp, nonce and body.

Both directions use it: our requests to the provider and its callbacks to us. A message older than
the allowed skew, or with a wrong signature, is refused; ``NonceCache`` recognises a replay of an
identical signed message within that window.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections import OrderedDict
from datetime import datetime, timedelta

TIMESTAMP = "X-Signature-Timestamp"
NONCE = "X-Signature-Nonce"
SIGNATURE = "X-Signature"
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


class NonceCache:
    """The nonces of signed messages seen within the signature window: a message seen again (a
    replay of the identical signed request) is recognised. Older nonces are forgotten: the
    timestamp check refuses those messages anyway. In memory, so per process."""

    def __init__(self, window: timedelta = MAX_SKEW, max_size: int = 100_000) -> None:
        self.window = window
        self.max_size = max_size
        self._seen: OrderedDict[str, datetime] = OrderedDict()

    def seen_before(self, nonce: str, now: datetime) -> bool:
        """Whether ``nonce`` was seen within the window; it is remembered from now on either way."""
        while self._seen:
            oldest, at = next(iter(self._seen.items()))
            if now - at <= 2 * self.window and len(self._seen) < self.max_size:
                break
            del self._seen[oldest]
        if nonce in self._seen:
            return True
        self._seen[nonce] = now
        return False

    def check(self, headers: dict[str, str], now: datetime) -> bool:
        """Whether the (already verified) signed message with these headers is a replay."""
        nonce = {name.lower(): value for name, value in headers.items()}.get(NONCE.lower())
        return nonce is not None and self.seen_before(nonce, now)
