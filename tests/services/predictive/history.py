"""Writing generated histories into PostgreSQL as scoring would have left them."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.services.predictive.generate import Generated

SOURCE = uuid.UUID(int=7)


async def store(engine: AsyncEngine, leads: list[Generated], model: str = "b2b", stage: str = "customer") -> None:
    """Leads, their identities, events and their entry into `stage` (the outcome training learns)."""
    events: list[dict[str, Any]] = []
    reached: list[dict[str, Any]] = []
    for g in leads:
        for i, (kind, name, props, at) in enumerate(g.events):
            events.append({"event_id": str(uuid.uuid5(g.lead_id, str(i))), "lead_id": str(g.lead_id), "type": kind,
                           "name": name, "properties": props, "at": at.isoformat()})  # fmt: skip
        if g.reached_at is not None:
            reached.append({"lead_id": str(g.lead_id), "at": g.reached_at.isoformat()})
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO leads (lead_id, user_id, email, traits, stage) SELECT * FROM unnest("
                "CAST(:ids AS uuid[]), CAST(:users AS text[]), CAST(:emails AS text[]), CAST(:traits AS jsonb[]), "
                "CAST(:stages AS text[]))"
            ),
            {
                "ids": [g.lead_id for g in leads],
                "users": [g.user_id for g in leads],
                "emails": [g.email for g in leads],
                "traits": [orjson.dumps(g.traits).decode() for g in leads],
                "stages": [stage if g.reached_at else "lead" for g in leads],
            },
        )
        await conn.execute(
            text(
                "INSERT INTO lead_identities (kind, value, lead_id) SELECT 'user', * FROM unnest("
                "CAST(:users AS text[]), CAST(:ids AS uuid[]))"
            ),
            {"users": [g.user_id for g in leads], "ids": [g.lead_id for g in leads]},
        )
        await conn.execute(
            text(
                "INSERT INTO lead_events (event_id, lead_id, source_id, type, name, properties, occurred_at, "
                "received_at) SELECT r.event_id, r.lead_id, :source, r.type, r.name, r.properties, r.at, r.at "
                "FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(event_id uuid, lead_id uuid, type text, "
                "name text, properties jsonb, at timestamptz)"
            ),
            {"rows": orjson.dumps(events).decode(), "source": SOURCE},
        )
        await conn.execute(
            text(
                "INSERT INTO stage_history (lead_id, model, from_stage, to_stage, kind, rule_set_version, occurred_at) "
                "SELECT r.lead_id, :model, 'lead', :stage, 'entry', 1, r.at "
                "FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(lead_id uuid, at timestamptz)"
            ),
            {"rows": orjson.dumps(reached).decode(), "model": model, "stage": stage},
        )
