"""The variables templates get, built from a lead, and the sample lead used to validate and preview.

lead.email, lead.user_id, lead.first_name, lead.last_name   strings (names may be None: print as "")
lead.traits        every trait the lead sent (optional per lead: `| default(…)` or `is defined`)
lead.score         number, 2 decimals, as last scored
lead.grade, lead.stage, lead.stages   "B2", the primary funnel stage, {model: stage}
lead.referral_code the lead's own referral code once it bought (None before): see Referrals
unsubscribe_url, preferences_url      links for this lead and this message
view_in_browser_url                   link to the web copy, or None
now                                   the send time, a timezone-aware datetime (UTC)
extra                                 the step's own data, e.g. extra.cart for a cart reminder
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

SAMPLE_LEAD: dict[str, Any] = {
    "email": "ada@example.com",
    "user_id": "sample-user",
    "traits": {
        "firstName": "Ada",
        "lastName": "Lovelace",
        "name": "Ada Lovelace",
        "email": "ada@example.com",
        "company": "Analytical Engines Ltd",
        "title": "Head of Engineering",
    },
    "score": Decimal("57.25"),
    "grade": "B2",
    "stage": "mql",
    "stages": {"b2b": "mql"},
    "referral_code": "ADA7K2QX",
}

# Validation renders each template a second time with this lead: every trait is optional.
BARE_LEAD: dict[str, Any] = {
    "email": "lead@example.com",
    "user_id": None,
    "traits": {},
    "score": 0,
    "grade": "D4",
    "stage": "visitor",
    "stages": {},
}

SAMPLE_EXTRA: dict[str, Any] = {
    "cart": {
        "url": "https://shop.example.com/cart/sample",
        "currency": "EUR",
        "total": "89.80",
        "items": [
            {
                "name": "Notebook",
                "quantity": 2,
                "price": "19.90",
                "url": "https://shop.example.com/p/notebook",
                "image_url": "https://shop.example.com/i/notebook.png",
            },
            {
                "name": "Fountain pen",
                "quantity": 1,
                "price": "50.00",
                "url": "https://shop.example.com/p/pen",
                "image_url": "https://shop.example.com/i/pen.png",
            },
        ],
    }
}

# Previews and validation never link to a real unsubscribe: `.invalid` cannot resolve.
SAMPLE_URLS: dict[str, str] = {
    "unsubscribe_url": "https://funnelstream.invalid/preview/unsubscribe",
    "preferences_url": "https://funnelstream.invalid/preview/preferences",
    "view_in_browser_url": "https://funnelstream.invalid/preview/view",
}
SAMPLE_NOW = datetime(2026, 1, 15, 9, 30, tzinfo=UTC)


def context_for(
    lead: Mapping[str, Any],
    *,
    unsubscribe_url: str,
    preferences_url: str,
    now: datetime,
    view_in_browser_url: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The variables of one message to `lead` (a `leads` row: email, user_id, traits, score, grade,
    stage, stages; first_name and last_name are taken from it or from the traits)."""
    traits: Mapping[str, Any] = lead.get("traits") or {}
    first, last = _names(lead, traits)
    score = lead.get("score")
    return {
        "lead": {
            "email": lead.get("email") or _text(traits.get("email")),
            "user_id": lead.get("user_id"),
            "first_name": first,
            "last_name": last,
            "traits": dict(traits),
            "score": round(float(score), 2) if score is not None else 0.0,
            "grade": lead.get("grade") or "D4",
            "stage": lead.get("stage") or "visitor",
            "stages": dict(lead.get("stages") or {}),
            "referral_code": lead.get("referral_code"),
        },
        "unsubscribe_url": unsubscribe_url,
        "preferences_url": preferences_url,
        "view_in_browser_url": view_in_browser_url,
        "now": now,
        "extra": dict(extra or {}),
    }


def sample_context(
    lead: Mapping[str, Any] | None = None, extra: Mapping[str, Any] | None = None, now: datetime = SAMPLE_NOW
) -> dict[str, Any]:
    """The context of a preview: `lead` (default the sample lead) with the preview links."""
    return context_for(
        SAMPLE_LEAD if lead is None else lead,
        now=now,
        extra=SAMPLE_EXTRA if extra is None else extra,
        **SAMPLE_URLS,
    )


def _names(lead: Mapping[str, Any], traits: Mapping[str, Any]) -> tuple[str | None, str | None]:
    first = _text(lead.get("first_name")) or _text(traits.get("firstName")) or _text(traits.get("first_name"))
    last = _text(lead.get("last_name")) or _text(traits.get("lastName")) or _text(traits.get("last_name"))
    full = (_text(traits.get("name")) or "").split(maxsplit=1)
    if first is None and full:
        first = full[0]
    if last is None and len(full) == 2:
        last = full[1]
    return first, last


def _text(value: Any) -> str | None:
    return (value.strip() or None) if isinstance(value, str) else None


SAMPLE_CONTEXT: dict[str, Any] = sample_context()
