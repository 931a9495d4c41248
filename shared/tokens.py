"""Signed tokens for public URLs: email open pixels and click redirects.

A token is HMAC-SHA256-signed with the secret key and a salt per purpose, so an open token is never
accepted as a click token and nobody can bind a click to a URL of their choosing (no open redirect).
Each carries a random nonce, so tokens cannot be guessed or enumerated even by someone who knows
every other field. Payloads are signed, not encrypted: they hold ids, never an email address.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from itsdangerous import BadData, URLSafeSerializer
from itsdangerous.encoding import base64_decode, base64_encode

# Events from email links that no website source sent are attributed to this fixed source id.
EMAIL_SOURCE_ID = uuid.UUID("0c4b6a52-2b1e-5d38-9f7e-6d61696c0000")
OPEN_SALT = "funnelstream.email-open.v1"
CLICK_SALT = "funnelstream.email-click.v1"
MAX_ID = 512
MAX_URL = 2048
NONCE_BYTES = 12


class InvalidToken(Exception):
    """The token was not made with this secret key for this purpose, or was altered."""


@dataclass(frozen=True)
class EmailToken:
    """Who received which email when (to the second); `user_id` or `anonymous_id` names the lead as scoring knows it."""

    message_id: str
    sent_at: datetime
    user_id: str | None = None
    anonymous_id: str | None = None
    source_id: uuid.UUID = EMAIL_SOURCE_ID


@dataclass(frozen=True)
class ClickToken(EmailToken):
    """An email token bound to the one URL its redirect may go to."""

    url: str = ""


def make_open_token(
    secret_key: str,
    *,
    message_id: str,
    sent_at: datetime,
    user_id: str | None = None,
    anonymous_id: str | None = None,
    source_id: uuid.UUID = EMAIL_SOURCE_ID,
) -> str:
    """A token for `/t/o/{token}.gif`, the open pixel of one sent email."""
    payload = _payload(message_id, sent_at, user_id, anonymous_id, source_id)
    return _serializer(secret_key, OPEN_SALT).dumps(payload)


def make_click_token(
    secret_key: str,
    *,
    url: str,
    message_id: str,
    sent_at: datetime,
    user_id: str | None = None,
    anonymous_id: str | None = None,
    source_id: uuid.UUID = EMAIL_SOURCE_ID,
) -> str:
    """A token for `/t/c/{token}`, which records the click and redirects to `url` (http or https only)."""
    check_url(url)
    payload = _payload(message_id, sent_at, user_id, anonymous_id, source_id)
    payload["l"] = url
    return _serializer(secret_key, CLICK_SALT).dumps(payload)


def read_open_token(secret_key: str, token: str) -> EmailToken:
    """The open token's contents; raise InvalidToken unless it is an unaltered open token."""
    data = _load(secret_key, OPEN_SALT, token)
    return EmailToken(**_fields(data))


def read_click_token(secret_key: str, token: str) -> ClickToken:
    """The click token's contents; raise InvalidToken unless it is an unaltered click token."""
    data = _load(secret_key, CLICK_SALT, token)
    url = data.get("l")
    if not isinstance(url, str):
        raise InvalidToken("click token has no URL")
    check_url(url)
    return ClickToken(**_fields(data), url=url)


def check_url(url: str) -> None:
    """Refuse anything but an absolute http(s) URL: a redirect must never run `javascript:` or `data:`."""
    if len(url) > MAX_URL:
        raise ValueError(f"url exceeds {MAX_URL} characters")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("url must be an absolute http or https URL")


def _serializer(secret_key: str, salt: str) -> URLSafeSerializer:
    return URLSafeSerializer(secret_key, salt=salt, signer_kwargs={"digest_method": hashlib.sha256})


def _payload(
    message_id: str, sent_at: datetime, user_id: str | None, anonymous_id: str | None, source_id: uuid.UUID
) -> dict[str, Any]:
    if not user_id and not anonymous_id:
        raise ValueError("user_id or anonymous_id is required")
    for name, value in (("message_id", message_id), ("user_id", user_id), ("anonymous_id", anonymous_id)):
        if value is not None and len(value) > MAX_ID:
            raise ValueError(f"{name} exceeds {MAX_ID} characters")
    if not message_id:
        raise ValueError("message_id is required")
    if sent_at.tzinfo is None:
        raise ValueError("sent_at must be timezone-aware")
    payload: dict[str, Any] = {
        "s": source_id.hex,
        "m": message_id,
        "t": int(sent_at.timestamp()),
        "n": secrets.token_urlsafe(NONCE_BYTES),
    }
    if user_id:
        payload["u"] = user_id
    if anonymous_id:
        payload["a"] = anonymous_id
    return payload


def sign(secret_key: str, salt: str, payload: dict[str, Any]) -> str:
    """A URL-safe token of `payload`, HMAC-SHA256-signed with the key and a salt per purpose."""
    return str(_serializer(secret_key, salt).dumps(payload))


def load_signed(secret_key: str, salt: str, token: str) -> dict[str, Any]:
    """The payload of a token made by `sign` with this key and salt; InvalidToken otherwise."""
    return _load(secret_key, salt, token)


def _load(secret_key: str, salt: str, token: str) -> dict[str, Any]:
    # Base64 lets several last characters decode to the same signature bytes; accept only the one
    # spelling this module makes, so that any altered character is an invalid token.
    signature = token.rpartition(".")[2]
    try:
        canonical = base64_encode(base64_decode(signature)).decode() == signature
    except BadData:
        canonical = False
    if not canonical:
        raise InvalidToken("malformed token signature")
    try:
        data = _serializer(secret_key, salt).loads(token)
    except BadData:
        raise InvalidToken("bad token signature (altered, another key, or another purpose)") from None
    if not isinstance(data, dict):
        raise InvalidToken("token payload is not an object")
    return data


def _fields(data: dict[str, Any]) -> dict[str, Any]:
    try:
        return {
            "source_id": uuid.UUID(hex=data["s"]),
            "message_id": str(data["m"]),
            "sent_at": datetime.fromtimestamp(int(data["t"]), UTC),
            "user_id": data.get("u"),
            "anonymous_id": data.get("a"),
        }
    except (KeyError, TypeError, ValueError):
        # Signed by us, so only a payload from another version of this module gets here.
        raise InvalidToken("token payload is incomplete") from None
