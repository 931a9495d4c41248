"""Pure scoring decisions over plain data: no I/O, no clock."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from shared.events import TrackedEvent

# Foundation placeholder: every event is worth one point. Rule sets replace this (issue 5).
POINTS_PER_EVENT = Decimal(1)

Identity = tuple[str, str]  # (kind, value): ("user", "u-1"), ("anonymous", "a-1"), ("email", "x@y")


@dataclass
class LeadDelta:
    """Everything one batch does to one lead, aggregated in memory before one write."""

    primary: Identity
    last_event_id: uuid.UUID
    points: Decimal = Decimal(0)
    email: str | None = None
    traits: dict[str, Any] = field(default_factory=dict)
    secondary: set[Identity] = field(default_factory=set)


def primary_identity(event: TrackedEvent) -> Identity:
    """The identity an event's lead is found by: the user id once known, else the anonymous id."""
    if event.user_id:
        return ("user", event.user_id)
    return ("anonymous", event.anonymous_id or event.message_id)


def email_of(event: TrackedEvent) -> str | None:
    value = event.traits.get("email") or event.context.get("traits", {}).get("email")
    if isinstance(value, str) and "@" in value:
        return value.strip().lower()[:320]
    return None


def plan_batch(events: list[TrackedEvent]) -> dict[Identity, LeadDelta]:
    """Fold a batch of events into one delta per lead, in event order."""
    deltas: dict[Identity, LeadDelta] = {}
    for event in events:
        key = primary_identity(event)
        delta = deltas.setdefault(key, LeadDelta(primary=key, last_event_id=event.event_id))
        delta.points += POINTS_PER_EVENT
        delta.last_event_id = event.event_id
        email = email_of(event)
        if email:
            delta.email = email
            delta.secondary.add(("email", email))
        if event.user_id and event.anonymous_id:
            delta.secondary.add(("anonymous", event.anonymous_id))
        if event.type == "identify":
            delta.traits.update(event.traits)
    return deltas


def initial_stage(identity: Identity, email: str | None) -> str:
    """A visitor becomes a lead once they are known by a user id or an email."""
    return "lead" if identity[0] == "user" or email else "visitor"
