"""Pure decisions of referrals: what a code looks like, which events carry one, and which to attribute.

A customer gets one code when they first buy (or when asked for one through the API). A track event of
another lead that carries the code in its properties (`referral_code`, `referralCode` or `ref`) attributes
that lead to the customer: the first code a lead brings wins, a lead cannot refer itself. The referrer
then gets a `funnelstream.referral` event, which the default e-commerce funnel counts as advocacy.
"""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.events import LeadActivity, LeadChange, LeadStageChanged, TrackedEvent, derived_id

REFERRAL_EVENT = "funnelstream.referral"
REFERRAL_SOURCE = derived_id("funnelstream-referrals")
CODE_PROPERTIES = ("referral_code", "referralCode", "ref")
# Leads reaching these stages, or sending this event, get their code: they bought.
PURCHASE_STAGES = frozenset({("ecommerce", "purchase"), ("b2b", "customer")})
PURCHASE_EVENT = "Order Completed"

# No 0/O, 1/I/L: codes are read aloud and typed from emails.
ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 8
_CODE = re.compile(r"^[A-Z0-9-]{4,40}$")


def new_code() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))


def normalise(value: Any) -> str | None:
    """The code as stored (upper case, no spaces), or None when `value` is not a plausible code."""
    if not isinstance(value, str):
        return None
    code = value.strip().upper().replace(" ", "")
    return code if _CODE.match(code) else None


def code_in(properties: Mapping[str, Any]) -> str | None:
    for key in CODE_PROPERTIES:
        code = normalise(properties.get(key))
        if code is not None:
            return code
    return None


def buyers(items: Iterable[LeadChange]) -> set[uuid.UUID]:
    """Leads of the batch that bought: they get a referral code."""
    found: set[uuid.UUID] = set()
    for message in items:
        if isinstance(message, LeadActivity) and message.name == PURCHASE_EVENT:
            found.add(message.lead_id)
        elif isinstance(message, LeadStageChanged) and (message.model, message.stage) in PURCHASE_STAGES:
            found.add(message.lead_id)
    return found


@dataclass(frozen=True)
class Claim:
    """A lead's event that carries a referral code; attributed if the code is someone else's."""

    lead_id: uuid.UUID
    code: str
    event_id: uuid.UUID
    event_name: str
    occurred_at: datetime


def claims(items: Iterable[LeadChange]) -> list[Claim]:
    """The first code-carrying event per lead of the batch (the batch is in each lead's order)."""
    first: dict[uuid.UUID, Claim] = {}
    for message in items:
        if not isinstance(message, LeadActivity) or message.lead_id in first or message.name == REFERRAL_EVENT:
            continue
        code = code_in(message.properties)
        if code is not None:
            first[message.lead_id] = Claim(
                message.lead_id, code, message.cause_event_id, message.name, message.occurred_at
            )
    return list(first.values())


def referral_event(
    referrer_key: tuple[str | None, str | None], referred: Claim, code: str, at: datetime
) -> TrackedEvent:
    """The event that tells scoring the referrer brought someone; its id is derived from the referred
    lead, so emitting it again (a redelivered batch) is counted once."""
    user_id, anonymous_id = referrer_key
    message_id = str(derived_id(REFERRAL_SOURCE, referred.lead_id))
    return TrackedEvent(
        event_id=derived_id(REFERRAL_SOURCE, message_id),
        source_id=REFERRAL_SOURCE,
        message_id=message_id,
        type="track",
        event=REFERRAL_EVENT,
        user_id=user_id,
        anonymous_id=anonymous_id if user_id is None else None,
        properties={"code": code, "referred_event": referred.event_name},
        context={"library": {"name": "funnelstream-referrals"}},
        timestamp=referred.occurred_at,
        received_at=at,
    )
