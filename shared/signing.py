"""Signatures of webhooks, received and sent: `FunnelStream-Signature: t=<unix>,v1=<hex>`.

v1 is HMAC-SHA256 over "{t}.{raw body}" with a shared secret; several v1 entries may be given (one per
active secret during a rotation) and any match passes; `t` must lie within the tolerance of now.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

SIGNATURE_HEADER = "FunnelStream-Signature"
TOLERANCE_SECONDS = 300
MAX_SIGNATURE_HEADER = 2048  # bounds the work an unauthenticated header can ask for
MAX_V1 = 8


def _mac(secret: str, body: bytes, t: int) -> str:
    return hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, t: int) -> str:
    """The `FunnelStream-Signature` header value for `body` sent at unix time `t`."""
    return f"t={t},v1={_mac(secret, body, t)}"


@dataclass(frozen=True)
class SignatureHeader:
    t: int
    v1: list[str]


def parse_signature(header: str | None) -> SignatureHeader | None:
    """`t` and the `v1` signatures of a header, or None if malformed; unknown schemes are ignored."""
    if not header or len(header) > MAX_SIGNATURE_HEADER:
        return None
    t: int | None = None
    v1: list[str] = []
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep:
            return None
        if key == "t":
            if t is not None or not value.isascii() or not value.isdigit():
                return None
            t = int(value)
        elif key == "v1":
            v1.append(value)
    if t is None or not v1 or len(v1) > MAX_V1:
        return None
    return SignatureHeader(t, v1)


def signature_problem(
    header: str | None, body: bytes, secrets: list[str], now: float, tolerance: int = TOLERANCE_SECONDS
) -> str | None:
    """Why a signature is refused, or None if it is valid. The reason never depends on the secrets' owner."""
    parsed = parse_signature(header)
    if parsed is None:
        return f"missing or malformed {SIGNATURE_HEADER} header (t=<unix>,v1=<hex>)"
    if abs(now - parsed.t) > tolerance:
        return f"signature timestamp outside the {tolerance} s window"
    expected = [_mac(s, body, parsed.t).encode() for s in secrets]
    if not any(hmac.compare_digest(given.encode(), e) for given in parsed.v1 for e in expected):
        return "no signature matches an active secret"
    return None


def verify(header: str | None, body: bytes, secrets: list[str], now: float, tolerance: int = TOLERANCE_SECONDS) -> bool:
    """True when any `v1` in `header` signs `body` under any of `secrets`, with `t` within `tolerance` of `now`."""
    return signature_problem(header, body, secrets, now, tolerance) is None
