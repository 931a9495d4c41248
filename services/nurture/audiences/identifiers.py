"""Hashed identifiers for ad platforms: normalise, then SHA-256 hex. Raw emails and phones never leave.

Meta (Customer File Custom Audiences, "Hashing and Normalizing Data",
https://developers.facebook.com/docs/marketing-api/audiences/guides/custom-audiences): EMAIL trimmed and
lower-cased; PHONE digits only (symbols, letters and leading zeros removed) with the country code; both
SHA-256. Google Ads (UserIdentifier, https://developers.google.com/google-ads/api/reference/rpc/latest/
UserIdentifier): hashed_email = SHA-256 of the trimmed, lower-cased address; hashed_phone_number =
SHA-256 of the number in E.164 (`+16502531234`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

PHONE_TRAITS = ("phone", "phone_number", "phoneNumber", "mobile")
_NOT_DIGIT = re.compile(r"[^0-9]")  # ASCII digits only: other scripts' digits are not E.164


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def normalize_email(email: str | None) -> str | None:
    if not email or "@" not in email:
        return None
    value = email.strip().lower()
    return value or None


def phone_digits(phone: str | None) -> str | None:
    """Digits with the country code, no '+' and no international '00' prefix; None if not a plausible
    number (E.164 allows at most 15 digits). A number without a country code cannot be told apart from
    one with it: shops must send phones as +<country><number>."""
    if not phone:
        return None
    raw = phone.strip()
    digits = _NOT_DIGIT.sub("", raw)
    if not raw.startswith("+") and digits.startswith("00"):
        digits = digits[2:]
    digits = digits.lstrip("0")
    return digits if 8 <= len(digits) <= 15 else None


def lead_phone(traits: Mapping[str, Any]) -> str | None:
    for key in PHONE_TRAITS:
        value = traits.get(key)
        if isinstance(value, str | int) and str(value).strip():
            return str(value)
    return None


def hashes(email: str | None, phone: str | None) -> dict[str, str]:
    """`email`: SHA-256 of the normalised email (Meta and Google alike); `phone`: SHA-256 of the digits
    (Meta); `phone_e164`: SHA-256 of '+' and the digits (Google). Keys are absent when unknown."""
    found: dict[str, str] = {}
    normal = normalize_email(email)
    if normal:
        found["email"] = sha256_hex(normal)
    digits = phone_digits(phone)
    if digits:
        found["phone"] = sha256_hex(digits)
        found["phone_e164"] = sha256_hex("+" + digits)
    return found
