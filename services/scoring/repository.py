"""SQL for scoring: resolve identities to leads, create missing leads, apply a batch's deltas."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.scoring.service import Identity, LeadDelta, initial_stage


@dataclass(frozen=True)
class ChangedLead:
    lead_id: uuid.UUID
    user_id: str | None
    score: Decimal
    stage: str
    previous_stage: str


async def find_leads(session: AsyncSession, identities: list[Identity]) -> dict[Identity, uuid.UUID]:
    if not identities:
        return {}
    rows = await session.execute(
        text(
            "SELECT i.kind, i.value, i.lead_id FROM lead_identities i "
            "JOIN unnest(CAST(:kinds AS text[]), CAST(:vals AS text[])) AS w(kind, value) "
            "ON i.kind = w.kind AND i.value = w.value"
        ),
        {"kinds": [k for k, _ in identities], "vals": [v for _, v in identities]},
    )
    return {(r.kind, r.value): r.lead_id for r in rows}


async def create_leads(session: AsyncSession, deltas: list[LeadDelta]) -> None:
    """Insert a lead and its primary identity for each delta whose lead does not exist yet."""
    if not deltas:
        return
    ids = [uuid.uuid4() for _ in deltas]
    await session.execute(
        text(
            "INSERT INTO leads (lead_id, user_id, anonymous_id, stage) "
            "SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:users AS text[]), CAST(:anons AS text[]), "
            "CAST(:stages AS text[])) ON CONFLICT DO NOTHING"
        ),
        {
            "ids": ids,
            "users": [d.primary[1] if d.primary[0] == "user" else None for d in deltas],
            "anons": [d.primary[1] if d.primary[0] == "anonymous" else None for d in deltas],
            "stages": [initial_stage(d.primary, d.email) for d in deltas],
        },
    )
    await add_identities(session, [(d.primary, lead_id) for d, lead_id in zip(deltas, ids, strict=True)])


async def add_identities(session: AsyncSession, pairs: list[tuple[Identity, uuid.UUID]]) -> None:
    """Attach identities to leads; an identity already owned by a lead stays where it is."""
    if not pairs:
        return
    await session.execute(
        text(
            "INSERT INTO lead_identities (kind, value, lead_id) "
            "SELECT * FROM unnest(CAST(:kinds AS text[]), CAST(:vals AS text[]), CAST(:leads AS uuid[])) "
            "ON CONFLICT DO NOTHING"
        ),
        {
            "kinds": [i[0] for i, _ in pairs],
            "vals": [i[1] for i, _ in pairs],
            "leads": [lead for _, lead in pairs],
        },
    )


async def apply_deltas(session: AsyncSession, deltas: dict[uuid.UUID, LeadDelta]) -> list[ChangedLead]:
    """One UPDATE for the whole batch; returns every changed lead with its stage before and after."""
    if not deltas:
        return []
    lead_ids = list(deltas)
    rows = await session.execute(
        text(
            "WITH d AS (SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:points AS numeric[]), "
            "  CAST(:emails AS text[]), CAST(:traits AS jsonb[])) AS d(lead_id, points, email, traits)), "
            "old AS (SELECT l.lead_id, l.stage FROM leads l JOIN d USING (lead_id) ORDER BY l.lead_id FOR UPDATE) "
            "UPDATE leads AS l SET score = l.score + d.points, email = COALESCE(d.email, l.email), "
            "  traits = l.traits || d.traits, updated_at = now(), "
            "  stage = CASE WHEN l.stage = 'visitor' AND (l.user_id IS NOT NULL OR d.email IS NOT NULL "
            "    OR l.email IS NOT NULL) THEN 'lead' ELSE l.stage END "
            "FROM d JOIN old USING (lead_id) WHERE l.lead_id = d.lead_id "
            "RETURNING l.lead_id, l.user_id, l.score, l.stage, old.stage AS previous_stage"
        ),
        {
            "ids": lead_ids,
            "points": [deltas[i].points for i in lead_ids],
            "emails": [deltas[i].email for i in lead_ids],
            "traits": [orjson.dumps(deltas[i].traits).decode() for i in lead_ids],
        },
    )
    return [ChangedLead(r.lead_id, r.user_id, r.score, r.stage, r.previous_stage) for r in rows]
