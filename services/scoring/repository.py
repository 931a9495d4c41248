"""SQL for scoring: identities to leads, lead creation, merges, one update per batch, event history."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.scoring.service import Identity, initial_stage, later_stage, merge_traits
from shared.events import TrackedEvent

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class LeadRow:
    lead_id: uuid.UUID
    user_id: str | None
    anonymous_id: str | None
    email: str | None
    stage: str
    score: Decimal
    traits: dict[str, Any]
    trait_times: dict[str, str]
    last_seen_at: datetime | None
    merged_into: uuid.UUID | None


@dataclass(frozen=True)
class LeadUpdate:
    lead_id: uuid.UUID
    points: Decimal
    email: str | None
    traits: dict[str, Any]
    trait_times: dict[str, str]
    stage: str
    last_seen_at: datetime | None


@dataclass(frozen=True)
class ChangedLead:
    lead_id: uuid.UUID
    user_id: str | None
    score: Decimal
    stage: str


def _json(value: Any) -> str:
    return orjson.dumps(value, default=str).decode()


async def find_leads(session: AsyncSession, identities: Iterable[Identity]) -> dict[Identity, uuid.UUID]:
    wanted = list(identities)
    if not wanted:
        return {}
    rows = await session.execute(
        text(
            "SELECT i.kind, i.value, i.lead_id FROM lead_identities i "
            "JOIN unnest(CAST(:kinds AS text[]), CAST(:vals AS text[])) AS w(kind, value) "
            "ON i.kind = w.kind AND i.value = w.value"
        ),
        {"kinds": [k for k, _ in wanted], "vals": [v for _, v in wanted]},
    )
    return {(r.kind, r.value): r.lead_id for r in rows}


async def create_leads(session: AsyncSession, primaries: dict[Identity, str | None]) -> None:
    """Insert a lead and its primary identity for each identity (with the email seen, if any)."""
    if not primaries:
        return
    keys = list(primaries)
    ids = [uuid.uuid4() for _ in keys]
    await session.execute(
        text(
            "INSERT INTO leads (lead_id, user_id, anonymous_id, stage) "
            "SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:users AS text[]), CAST(:anons AS text[]), "
            "CAST(:stages AS text[])) ON CONFLICT DO NOTHING"
        ),
        {
            "ids": ids,
            "users": [v if k == "user" else None for k, v in keys],
            "anons": [v if k == "anonymous" else None for k, v in keys],
            "stages": [initial_stage(key, primaries[key]) for key in keys],
        },
    )
    claimed = await session.execute(
        text(
            "INSERT INTO lead_identities (kind, value, lead_id) "
            "SELECT * FROM unnest(CAST(:kinds AS text[]), CAST(:vals AS text[]), CAST(:leads AS uuid[])) "
            "ON CONFLICT DO NOTHING RETURNING lead_id"
        ),
        {"kinds": [k for k, _ in keys], "vals": [v for _, v in keys], "leads": ids},
    )
    # Another consumer attached one of these identities to its lead first (an identify on another
    # partition): the lead made here for it would be an orphan, so it goes again.
    orphans = set(ids) - {row.lead_id for row in claimed}
    if orphans:
        await session.execute(
            text("DELETE FROM leads WHERE lead_id = ANY(CAST(:ids AS uuid[]))"), {"ids": list(orphans)}
        )


async def add_identity(session: AsyncSession, identity: Identity, lead_id: uuid.UUID) -> bool:
    """Attach an identity to a lead; False when another lead already owns it."""
    row = await session.execute(
        text(
            "INSERT INTO lead_identities (kind, value, lead_id) VALUES (:kind, :value, :lead) "
            "ON CONFLICT DO NOTHING RETURNING lead_id"
        ),
        {"kind": identity[0], "value": identity[1], "lead": lead_id},
    )
    return row.first() is not None


async def lock_leads(session: AsyncSession, lead_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, LeadRow]:
    """Lock leads in id order (so concurrent consumers cannot deadlock on them) and read them."""
    ids = sorted(set(lead_ids))
    if not ids:
        return {}
    rows = await session.execute(
        text(
            "SELECT lead_id, user_id, anonymous_id, email, stage, score, traits, trait_times, last_seen_at, "
            "merged_into FROM leads WHERE lead_id = ANY(CAST(:ids AS uuid[])) ORDER BY lead_id FOR UPDATE"
        ),
        {"ids": ids},
    )
    return {r.lead_id: LeadRow(*r) for r in rows}


async def live_lead(session: AsyncSession, lead_id: uuid.UUID) -> uuid.UUID:
    """Follow merges from a lead to the lead it lives on in now."""
    for _ in range(100):
        into = await session.scalar(text("SELECT merged_into FROM leads WHERE lead_id = :id"), {"id": lead_id})
        if into is None:
            return lead_id
        lead_id = into
    raise RuntimeError(f"merge chain from {lead_id} does not end")


async def merge(session: AsyncSession, from_id: uuid.UUID, into_id: uuid.UUID, reason: str, cause: uuid.UUID) -> bool:
    """Fold one lead into another: identities, history, score and traits move; recorded in lead_merges."""
    rows = await lock_leads(session, [from_id, into_id])
    source, target = rows[from_id], rows[into_id]
    if source.merged_into is not None or target.merged_into is not None:
        return False  # another consumer merged one of them first; the caller re-resolves
    params = {"from": from_id, "into": into_id}
    await session.execute(text("UPDATE lead_identities SET lead_id = :into WHERE lead_id = :from"), params)
    await session.execute(text("UPDATE lead_events SET lead_id = :into WHERE lead_id = :from"), params)
    await session.execute(text("UPDATE leads SET merged_into = :into WHERE merged_into = :from"), params)
    source_times = {
        k: datetime.fromisoformat(source.trait_times[k]) if k in source.trait_times else EPOCH for k in source.traits
    }
    traits, times = merge_traits(target.traits, target.trait_times, source.traits, source_times)
    seen = max((t for t in (target.last_seen_at, source.last_seen_at) if t is not None), default=None)
    await session.execute(
        text(
            "UPDATE leads SET score = score + :points, email = COALESCE(email, :email), "
            "anonymous_id = COALESCE(anonymous_id, :anon), traits = CAST(:traits AS jsonb), "
            "trait_times = CAST(:times AS jsonb), stage = :stage, last_seen_at = :seen, updated_at = now() "
            "WHERE lead_id = :into"
        ),
        {
            **params,
            "points": source.score,
            "email": source.email,
            "anon": source.anonymous_id,
            "traits": _json(traits),
            "times": _json(times),
            "stage": later_stage(target.stage, source.stage),
            "seen": seen,
        },
    )
    await session.execute(
        text("UPDATE leads SET merged_into = :into, score = 0, updated_at = now() WHERE lead_id = :from"), params
    )
    await session.execute(
        text(
            "INSERT INTO lead_merges (from_lead_id, into_lead_id, reason, cause_event_id) "
            "VALUES (:from, :into, :reason, :cause) ON CONFLICT DO NOTHING"
        ),
        {**params, "reason": reason, "cause": cause},
    )
    return True


async def update_leads(session: AsyncSession, updates: list[LeadUpdate]) -> list[ChangedLead]:
    """One UPDATE for the whole batch (rows already locked by lock_leads)."""
    if not updates:
        return []
    rows = await session.execute(
        text(
            "UPDATE leads AS l SET score = l.score + d.points, email = d.email, traits = d.traits, "
            "  trait_times = d.times, stage = d.stage, updated_at = now(), "
            "  last_seen_at = GREATEST(l.last_seen_at, d.seen) "
            "FROM unnest(CAST(:ids AS uuid[]), CAST(:points AS numeric[]), CAST(:emails AS text[]), "
            "  CAST(:traits AS jsonb[]), CAST(:times AS jsonb[]), CAST(:stages AS text[]), "
            "  CAST(:seen AS timestamptz[])) AS d(lead_id, points, email, traits, times, stage, seen) "
            "WHERE l.lead_id = d.lead_id "
            "RETURNING l.lead_id, l.user_id, l.score, l.stage"
        ),
        {
            "ids": [u.lead_id for u in updates],
            "points": [u.points for u in updates],
            "emails": [u.email for u in updates],
            "traits": [_json(u.traits) for u in updates],
            "times": [_json(u.trait_times) for u in updates],
            "stages": [u.stage for u in updates],
            "seen": [u.last_seen_at for u in updates],
        },
    )
    return [ChangedLead(r.lead_id, r.user_id, r.score, r.stage) for r in rows]


async def insert_events(session: AsyncSession, events: list[tuple[TrackedEvent, uuid.UUID]]) -> None:
    """The batch's events into the lead's history, one statement."""
    if not events:
        return
    await session.execute(
        text(
            "INSERT INTO lead_events (event_id, lead_id, source_id, type, name, properties, bot, occurred_at, "
            "received_at) SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:leads AS uuid[]), "
            "CAST(:sources AS uuid[]), CAST(:types AS text[]), CAST(:names AS text[]), CAST(:props AS jsonb[]), "
            "CAST(:bots AS text[]), CAST(:at AS timestamptz[]), CAST(:received AS timestamptz[])) "
            "ON CONFLICT DO NOTHING"
        ),
        {
            "ids": [e.event_id for e, _ in events],
            "leads": [lead for _, lead in events],
            "sources": [e.source_id for e, _ in events],
            "types": [e.type for e, _ in events],
            "names": [e.event or e.name for e, _ in events],
            "props": [_json(e.properties) for e, _ in events],
            "bots": [e.bot for e, _ in events],
            "at": [e.timestamp for e, _ in events],
            "received": [e.received_at for e, _ in events],
        },
    )
