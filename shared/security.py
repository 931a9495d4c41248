"""Secrets and keys shared by services: write keys are random and stored only as hashes."""

from __future__ import annotations

import hashlib
import hmac
import secrets


def new_write_key() -> str:
    return "wk_" + secrets.token_urlsafe(24)


def hash_write_key(key: str) -> str:
    """SHA-256 is enough for 190-bit random keys: no dictionary to guess from, and lookups stay O(1)."""
    return hashlib.sha256(key.encode()).hexdigest()


def same_secret(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())
