"""Identifiers: short, unguessable, safe in URLs, workflow ids and search attributes."""

from __future__ import annotations

import base64
import secrets


def new_id(prefix: str) -> str:
    """E.g. ``U7K2M4Q9XJ3PA``: a one-letter kind and 60 random bits in Crockford-free base32."""
    return prefix + base64.b32encode(secrets.token_bytes(8)).decode("ascii").rstrip("=")[:12]
