"""What an unsubscribe, a preference change and provider feedback write, and the events they announce.

Writes happen in the caller's transaction; the returned events are published after it commits, so a
consumer reacting to `Unsubscribed` already reads the new state. Event ids derive from the stored
change (or the provider's event id), so answering a retry publishes the same ids again and scoring and
sequences apply them once. Nobody is left out of an unsubscribe because a mail scanner or bot sent it:
the POST is the person's mail client acting for them (RFC 8058), so these events never carry `bot`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.nurture.consent.feedback import Feedback
from services.nurture.consent.repository import StatusChange, set_statuses, suppress
from services.nurture.consent.service import GLOBAL, normalize_email
from shared.events import TrackedEvent, derived_id

# Events that consent publishes (Unsubscribed, Email Bounced) come from this fixed source id.
CONSENT_SOURCE_ID = uuid.UUID("0c4b6a52-2b1e-5d38-9f7e-636f6e73656e")


@dataclass(frozen=True)
class LeadRef:
    """A live lead as events name it, and its addresses."""

    lead_id: uuid.UUID
    user_id: str | None
    anonymous_id: str | None
    emails: tuple[str, ...] = ()


LEAD_REF = text(
    "SELECT l.lead_id, l.user_id, l.anonymous_id, "
    "coalesce(array_agg(i.value ORDER BY i.value) FILTER (WHERE i.value IS NOT NULL), '{}') AS emails "
    "FROM leads l LEFT JOIN lead_identities i ON i.lead_id = l.lead_id AND i.kind = 'email' "
    "WHERE l.lead_id = (SELECT coalesce(merged_into, lead_id) FROM leads WHERE lead_id = :id) GROUP BY l.lead_id"
)


async def lead_ref(session: AsyncSession, lead_id: uuid.UUID) -> LeadRef | None:
    """The live lead `lead_id` is (or was folded into), or None if it is gone (erased)."""
    row = (await session.execute(LEAD_REF, {"id": lead_id})).first()
    return LeadRef(row.lead_id, row.user_id, row.anonymous_id, tuple(row.emails)) if row else None


async def leads_by_email(session: AsyncSession, emails: Sequence[str]) -> dict[str, LeadRef]:
    """The lead owning each address that has one (an address belongs to one lead)."""
    rows = await session.execute(
        text(
            "SELECT e.value AS email, l.lead_id, l.user_id, l.anonymous_id FROM lead_identities e "
            "JOIN leads l ON l.lead_id = e.lead_id WHERE e.kind = 'email' AND e.value = ANY(:emails)"
        ),
        {"emails": sorted({normalize_email(e) for e in emails})},
    )
    return {r.email: LeadRef(r.lead_id, r.user_id, r.anonymous_id, (r.email,)) for r in rows}


def consent_event(
    lead: LeadRef, name: str, message_id: str, at: datetime, now: datetime, properties: dict[str, Any]
) -> TrackedEvent | None:
    """A track event for the lead (user id if known, else anonymous id); None if events cannot name it."""
    if not lead.user_id and not lead.anonymous_id:
        return None
    return TrackedEvent(
        event_id=derived_id(CONSENT_SOURCE_ID, message_id),
        source_id=CONSENT_SOURCE_ID,
        message_id=message_id,
        type="track",
        event=name,
        user_id=lead.user_id,
        anonymous_id=None if lead.user_id else lead.anonymous_id,
        properties=properties,
        timestamp=at,
        received_at=now,
    )


async def _changed_at(session: AsyncSession, lead_id: uuid.UUID, topic: str) -> datetime | None:
    found: datetime | None = await session.scalar(
        text("SELECT changed_at FROM subscriptions WHERE lead_id = :l AND topic = :t AND status <> 'subscribed'"),
        {"l": lead_id, "t": topic},
    )
    return found


async def unsubscribe(
    session: AsyncSession,
    lead: LeadRef,
    topic: str | None,
    *,
    at: datetime,
    actor: str,
    method: str = "link",
    source: str | None = None,
    ip: str | None = None,
    reason: str = "link",
) -> TrackedEvent | None:
    """Unsubscribe the lead from `topic`, or from everything (None: every topic subscribed to is left too,
    see `set_statuses`). Idempotent. Returns the `Unsubscribed` event; a repeat that changes nothing
    yields an event id used before."""
    key = topic or GLOBAL
    change = StatusChange(lead.lead_id, key, "unsubscribed", method, source, None, ip, at, actor)
    changed = await set_statuses(session, [change])
    stamp = at if changed else (await _changed_at(session, lead.lead_id, key) or at)
    message_id = f"consent-unsubscribed-{lead.lead_id}-{key}-{stamp.isoformat()}"
    return consent_event(lead, "Unsubscribed", message_id, stamp, at, {"topic": key, "reason": reason})


@dataclass
class FeedbackOutcome:
    """What a feedback delivery did: items recorded for the first time, and the events to publish."""

    new: int = 0
    events: list[TrackedEvent] | None = None


async def apply_feedback(session: AsyncSession, items: Sequence[Feedback], now: datetime) -> FeedbackOutcome:
    """Record feedback once per provider event id and apply it; a repeat changes nothing and yields the
    same events again (so a retry after a failed publish still announces them)."""
    if not items:
        return FeedbackOutcome(0, [])
    recorded = await session.execute(
        text(
            "INSERT INTO email_feedback (dedup_key, provider, email, kind, bounce_type, message_id, detail, "
            "occurred_at) SELECT * FROM unnest(CAST(:keys AS text[]), CAST(:providers AS text[]), "
            "CAST(:emails AS text[]), CAST(:kinds AS text[]), CAST(:types AS text[]), CAST(:messages AS text[]), "
            "CAST(:details AS text[]), CAST(:ats AS timestamptz[])) ON CONFLICT (dedup_key) DO NOTHING "
            "RETURNING dedup_key"
        ),
        {
            "keys": [f.dedup_key for f in items],
            "providers": [f.provider for f in items],
            "emails": [f.email for f in items],
            "kinds": [f.kind for f in items],
            "types": [f.bounce_type for f in items],
            "messages": [f.message_id for f in items],
            "details": [f.detail for f in items],
            "ats": [f.at for f in items],
        },
    )
    new = len(recorded.all())
    # Soft bounces are recorded only; the rest in time order, so the latest statement per lead is written.
    lasting = sorted((f for f in items if f.kind != "bounce" or f.bounce_type == "hard"), key=lambda f: f.at)
    await suppress(
        session,
        [
            (f.email, "bounced" if f.kind == "bounce" else "complained", f.provider, f.at)
            for f in lasting
            if f.kind in ("bounce", "complaint")
        ],
    )
    owners = await leads_by_email(session, [f.email for f in lasting])
    # Unsubscribes from an address no lead owns still stop marketing to it.
    await suppress(
        session,
        [
            (f.email, "unsubscribed", f.provider, f.at)
            for f in lasting
            if f.kind == "unsubscribe" and f.email not in owners
        ],
    )
    status = {"bounce": "bounced", "complaint": "complained", "unsubscribe": "unsubscribed"}
    changes: dict[tuple[uuid.UUID, str], StatusChange] = {}
    for f in lasting:
        lead = owners.get(f.email)
        if lead is not None:
            actor = f"feedback:{f.provider}"
            changes[(lead.lead_id, GLOBAL)] = StatusChange(
                lead.lead_id, GLOBAL, status[f.kind], "feedback", f.provider, None, None, f.at, actor
            )
    await set_statuses(session, list(changes.values()))
    events: list[TrackedEvent] = []
    for f in lasting:
        lead = owners.get(f.email)
        if lead is None:
            continue
        name = "Email Bounced" if f.kind == "bounce" else "Unsubscribed"
        properties = {"topic": GLOBAL, "reason": f.kind, "provider": f.provider}
        if f.message_id:
            properties["email_id"] = f.message_id
        event = consent_event(lead, name, f"consent-feedback-{f.dedup_key}-{lead.lead_id}", f.at, now, properties)
        if event is not None:
            events.append(event)
    return FeedbackOutcome(new, events)
