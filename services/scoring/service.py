"""Pure scoring decisions over plain data: no I/O, no clock."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from shared.events import TrackedEvent

# Foundation placeholder: every human event is worth one point; bot-flagged events score nothing.
# Rule sets replace this (issue 5).
POINTS_PER_EVENT = Decimal(1)
STAGE_ORDER = ("visitor", "lead")

Identity = tuple[str, str]  # (kind, value): ("user", "u-1"), ("anonymous", "a-1"), ("email", "x@y")


@dataclass(frozen=True)
class Link:
    """Evidence in an event that another identity is the same person as the event's lead."""

    identity: Identity
    reason: str  # "identify", "alias", "email"
    # An alias may name a lead known by another user id; identify and email never fold two known users.
    may_fold_known: bool = False


@dataclass
class EventPlan:
    event: TrackedEvent
    primary: Identity
    links: list[Link]
    email: str | None
    points: Decimal


@dataclass
class LeadDelta:
    """Everything one batch does to one lead, aggregated in memory before one write."""

    last_event_id: uuid.UUID
    points: Decimal = Decimal(0)
    email: str | None = None
    traits: dict[str, Any] = field(default_factory=dict)
    trait_times: dict[str, datetime] = field(default_factory=dict)
    last_seen_at: datetime | None = None
    events: list[TrackedEvent] = field(default_factory=list)

    def add(self, plan: EventPlan) -> None:
        event = plan.event
        self.points += plan.points
        self.last_event_id = event.event_id
        self.events.append(event)
        if plan.email:
            self.email = plan.email
        if self.last_seen_at is None or event.timestamp > self.last_seen_at:
            self.last_seen_at = event.timestamp
        if event.type == "identify":
            for key, value in event.traits.items():
                if key not in self.trait_times or event.timestamp >= self.trait_times[key]:
                    self.traits[key] = value
                    self.trait_times[key] = event.timestamp


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


def plan_event(event: TrackedEvent) -> EventPlan:
    links: list[Link] = []
    if event.user_id and event.anonymous_id:
        links.append(Link(("anonymous", event.anonymous_id), "identify"))
    if event.type == "alias" and event.previous_id:
        links.append(Link(("user", event.previous_id), "alias", may_fold_known=True))
        links.append(Link(("anonymous", event.previous_id), "alias", may_fold_known=True))
    email = email_of(event)
    if email:
        links.append(Link(("email", email), "email"))
    points = Decimal(0) if event.bot else POINTS_PER_EVENT
    return EventPlan(event, primary_identity(event), links, email, points)


def plan_batch(events: list[TrackedEvent]) -> list[EventPlan]:
    return [plan_event(e) for e in events]


def fold_direction(
    event_lead: uuid.UUID, event_lead_user: str | None, other: uuid.UUID, other_user: str | None, link: Link
) -> tuple[uuid.UUID, uuid.UUID] | None:
    """(from, into) when the two leads are one person, or None when they must stay apart.

    The anonymous lead folds into the known one; two anonymous leads fold into the event's lead;
    two leads known by different user ids fold only on an explicit alias.
    """
    if event_lead == other:
        return None
    if event_lead_user and other_user:
        return (other, event_lead) if link.may_fold_known and event_lead_user != other_user else None
    if other_user:
        return (event_lead, other)
    return (other, event_lead)


def merge_traits(
    traits: dict[str, Any], times: dict[str, str], incoming: dict[str, Any], incoming_times: dict[str, datetime]
) -> tuple[dict[str, Any], dict[str, str]]:
    """Last write wins per trait, by event time (ISO strings stored); ties go to the incoming value."""
    traits, times = dict(traits), dict(times)
    for key, value in incoming.items():
        at = incoming_times[key]
        current = times.get(key)
        if current is None or datetime.fromisoformat(current) <= at:
            traits[key] = value
            times[key] = at.isoformat()
    return traits, times


def later_stage(a: str, b: str) -> str:
    """The further of two funnel stages (unknown stages rank after the known ones)."""
    rank = {s: i for i, s in enumerate(STAGE_ORDER)}
    return a if rank.get(a, len(rank)) >= rank.get(b, len(rank)) else b


def next_stage(stage: str, known: bool) -> str:
    """A visitor becomes a lead once they are known by a user id or an email."""
    return later_stage(stage, "lead") if known else stage


def initial_stage(identity: Identity, email: str | None) -> str:
    return "lead" if identity[0] == "user" or email else "visitor"
