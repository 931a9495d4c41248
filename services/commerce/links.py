"""The signed recovery link of a cart reminder: `/r/cart/{token}` on the collection edge.

The token names the cart and the step (HMAC-SHA256 with the secret key and its own salt, via
shared/tokens.py), never a URL: where it leads is looked up when it is clicked (the cart's own URL or
the shop's pattern, http(s) only), so nobody can make it redirect elsewhere.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from urllib.parse import quote

from shared.tokens import InvalidToken, load_signed, sign

RECOVERY_SALT = "funnelstream.cart-recovery.v1"
MAX_TOKEN = 2048


@dataclass(frozen=True)
class RecoveryToken:
    cart_key: str
    step: int


def recovery_url(base_url: str, secret_key: str, cart_key: str, step: int) -> str:
    token = sign(secret_key, RECOVERY_SALT, {"k": cart_key, "s": step, "n": secrets.token_urlsafe(6)})
    return f"{base_url.rstrip('/')}/r/cart/{quote(token, safe='')}"


def read_recovery_token(secret_key: str, token: str) -> RecoveryToken:
    """The token's cart and step; InvalidToken unless it is an unaltered recovery token."""
    if len(token) > MAX_TOKEN:
        raise InvalidToken("token too long")
    data = load_signed(secret_key, RECOVERY_SALT, token)
    key, step = data.get("k"), data.get("s")
    if not isinstance(key, str) or not isinstance(step, int):
        raise InvalidToken("recovery token payload is incomplete")
    return RecoveryToken(key, step)
