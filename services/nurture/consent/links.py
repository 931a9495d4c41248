"""Signed links of marketing email: unsubscribe (`/u/{token}`) and the preference page (`/p/{token}`).

Like shared/tokens.py: HMAC-SHA256 with the secret key and a salt per purpose (an unsubscribe token is
never a preference token), a random nonce so tokens cannot be guessed, and only the canonical spelling
of the signature accepted. Payloads carry the lead id, a 128-bit fingerprint of the address (so the page
can name the address the mail went to without the token showing it) and the topic; never an email.
Tokens do not expire: an unsubscribe link must keep working for as long as the mail sits in an inbox.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from services.nurture.consent.service import GLOBAL, email_digest
from shared.tokens import InvalidToken, load_signed, sign

UNSUBSCRIBE_SALT = "funnelstream.unsubscribe.v1"
PREFERENCES_SALT = "funnelstream.preferences.v1"
MAX_TOPIC = 80
MAX_TOKEN = 1024
NONCE_BYTES = 8


@dataclass(frozen=True)
class LinkToken:
    """Whose link it is: the lead, the fingerprint of the address the mail went to, and the topic (None: all)."""

    lead_id: uuid.UUID
    email_digest: str
    topic: str | None = None


def unsubscribe_url(base_url: str, secret_key: str, lead_id: uuid.UUID, email: str, topic: str | None = None) -> str:
    """The link for the footer and the `List-Unsubscribe` header (RFC 8058 one-click POSTs to it)."""
    token = _dumps(secret_key, UNSUBSCRIBE_SALT, lead_id, email, topic)
    return f"{base_url.rstrip('/')}/u/{quote(token, safe='')}"


def preferences_url(base_url: str, secret_key: str, lead_id: uuid.UUID, email: str) -> str:
    """The link to the preference page: topics on and off, or leave everything."""
    token = _dumps(secret_key, PREFERENCES_SALT, lead_id, email, None)
    return f"{base_url.rstrip('/')}/p/{quote(token, safe='')}"


def read_unsubscribe_token(secret_key: str, token: str) -> LinkToken:
    """The unsubscribe token's contents; InvalidToken unless it is an unaltered unsubscribe token."""
    return _fields(_load(secret_key, UNSUBSCRIBE_SALT, token))


def read_preferences_token(secret_key: str, token: str) -> LinkToken:
    """The preference token's contents; InvalidToken unless it is an unaltered preference token."""
    return _fields(_load(secret_key, PREFERENCES_SALT, token))


def _dumps(secret_key: str, salt: str, lead_id: uuid.UUID, email: str, topic: str | None) -> str:
    if "@" not in email:
        raise ValueError("email must be an address")
    if topic is not None and (not topic or topic == GLOBAL or len(topic) > MAX_TOPIC):
        raise ValueError(f"topic must be 1 to {MAX_TOPIC} characters and not {GLOBAL!r}")
    payload: dict[str, Any] = {"l": lead_id.hex, "e": email_digest(email), "n": secrets.token_urlsafe(NONCE_BYTES)}
    if topic is not None:
        payload["t"] = topic
    return sign(secret_key, salt, payload)


def _load(secret_key: str, salt: str, token: str) -> dict[str, Any]:
    if len(token) > MAX_TOKEN:
        raise InvalidToken("token too long")
    return load_signed(secret_key, salt, token)


def _fields(data: dict[str, Any]) -> LinkToken:
    try:
        topic = data.get("t")
        return LinkToken(
            lead_id=uuid.UUID(hex=data["l"]),
            email_digest=str(data["e"]),
            topic=str(topic) if topic is not None else None,
        )
    except (KeyError, TypeError, ValueError):
        raise InvalidToken("token payload is incomplete") from None
