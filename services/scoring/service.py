"""Pure identity decisions over plain data (who an event belongs to, which leads are one person)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from shared.events import TrackedEvent

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
    return EventPlan(event, primary_identity(event), links, email)


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
