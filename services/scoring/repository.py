"""SQL for scoring: identities to leads, lead creation, merges, one update per batch, event history."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.scoring.service import Identity
from shared.events import TrackedEvent

LEAD_COLUMNS = (
    "lead_id, user_id, anonymous_id, email, stage, score, traits, trait_times, last_seen_at, merged_into, "
    "fit, engagement, engagement_at, grade, stages, score_state, rule_set_version"
)


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
    fit: float
    engagement: float
    engagement_at: datetime | None
    grade: str
    stages: dict[str, str]
    score_state: dict[str, Any]
    rule_set_version: int


@dataclass(frozen=True)
class LeadWrite:
    """A lead's new scoring state, written with one UPDATE per batch."""

    lead_id: uuid.UUID
    email: str | None
    traits: dict[str, Any] | None  # None: unchanged
    trait_times: dict[str, str] | None
    score: Decimal
    fit: float
    engagement: float
    engagement_at: datetime | None
    grade: str
    stage: str
    stages: dict[str, str]
    score_state: dict[str, Any]
    next_due_at: datetime | None
    rule_set_version: int
    last_seen_at: datetime | None


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


async def create_leads(session: AsyncSession, primaries: Iterable[Identity]) -> dict[Identity, uuid.UUID]:
    """Insert a lead and its primary identity for each identity; returns the identities it created."""
    keys = list(primaries)
    if not keys:
        return {}
    ids = [uuid.uuid4() for _ in keys]
    await session.execute(
        text(
            "INSERT INTO leads (lead_id, user_id, anonymous_id) "
            "SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:users AS text[]), CAST(:anons AS text[])) "
            "ON CONFLICT DO NOTHING"
        ),
        {
            "ids": ids,
            "users": [v if k == "user" else None for k, v in keys],
            "anons": [v if k == "anonymous" else None for k, v in keys],
        },
    )
    claimed = await session.execute(
        text(
            "INSERT INTO lead_identities (kind, value, lead_id) "
            "SELECT * FROM unnest(CAST(:kinds AS text[]), CAST(:vals AS text[]), CAST(:leads AS uuid[])) "
            "ON CONFLICT DO NOTHING RETURNING kind, value, lead_id"
        ),
        {"kinds": [k for k, _ in keys], "vals": [v for _, v in keys], "leads": ids},
    )
    # Another consumer attached one of these identities to its lead first (an identify on another
    # partition): the lead made here for it would be an orphan, so it goes again.
    created = {(row.kind, row.value): row.lead_id for row in claimed}
    orphans = set(ids) - set(created.values())
    if orphans:
        await session.execute(
            text("DELETE FROM leads WHERE lead_id = ANY(CAST(:ids AS uuid[]))"), {"ids": list(orphans)}
        )
    return created


async def add_identities(session: AsyncSession, owners: dict[Identity, uuid.UUID]) -> set[Identity]:
    """Attach many new identities at once; returns those attached (others belong to another lead)."""
    if not owners:
        return set()
    keys = list(owners)
    rows = await session.execute(
        text(
            "INSERT INTO lead_identities (kind, value, lead_id) "
            "SELECT * FROM unnest(CAST(:kinds AS text[]), CAST(:vals AS text[]), CAST(:leads AS uuid[])) "
            "ON CONFLICT DO NOTHING RETURNING kind, value"
        ),
        {"kinds": [k for k, _ in keys], "vals": [v for _, v in keys], "leads": [owners[k] for k in keys]},
    )
    return {(r.kind, r.value) for r in rows}


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
        text(f"SELECT {LEAD_COLUMNS} FROM leads WHERE lead_id = ANY(CAST(:ids AS uuid[])) ORDER BY lead_id FOR UPDATE"),  # noqa: S608, E501
        {"ids": ids},
    )
    return {r.lead_id: LeadRow(*r) for r in rows}


async def due_leads(session: AsyncSession, at: datetime, limit: int) -> dict[uuid.UUID, LeadRow]:
    """Leads with a time-driven change due by `at`, locked; ones another consumer holds are skipped."""
    rows = await session.execute(
        text(
            f"SELECT {LEAD_COLUMNS} FROM leads WHERE next_due_at <= :at AND merged_into IS NULL "  # noqa: S608
            "ORDER BY next_due_at LIMIT :limit FOR UPDATE SKIP LOCKED"
        ),
        {"at": at, "limit": limit},
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


async def move_to(session: AsyncSession, from_id: uuid.UUID, into_id: uuid.UUID, reason: str, cause: uuid.UUID) -> None:
    """Everything of one lead that belongs to the person moves to the other; the merge is recorded."""
    params = {"from": from_id, "into": into_id}
    for table in ("lead_identities", "lead_events", "score_ledger", "stage_history"):
        await session.execute(text(f"UPDATE {table} SET lead_id = :into WHERE lead_id = :from"), params)  # noqa: S608
    await session.execute(
        text(
            "INSERT INTO account_members (account_id, lead_id) SELECT account_id, :into FROM account_members "
            "WHERE lead_id = :from ON CONFLICT DO NOTHING"
        ),
        params,
    )
    await session.execute(text("DELETE FROM account_members WHERE lead_id = :from"), params)
    await session.execute(text("UPDATE leads SET merged_into = :into WHERE merged_into = :from"), params)
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


def _rows(rows: list[dict[str, Any]]) -> str:
    """A batch as one JSON document: one parameter for the whole batch instead of an array per column,
    which asyncpg would encode element by element."""
    return orjson.dumps(rows, default=str).decode()


async def write_leads(session: AsyncSession, writes: list[LeadWrite]) -> None:
    """One UPDATE for the whole batch (rows already locked)."""
    if not writes:
        return
    await session.execute(
        text(
            "UPDATE leads AS l SET email = d.email, traits = COALESCE(d.traits, l.traits), "
            "  trait_times = COALESCE(d.times, l.trait_times), score = d.score, "
            "  fit = d.fit, engagement = d.engagement, engagement_at = d.engagement_at, grade = d.grade, "
            "  stage = d.stage, stages = d.stages, score_state = d.state, next_due_at = d.due, "
            "  rule_set_version = d.version, last_seen_at = GREATEST(l.last_seen_at, d.seen), updated_at = now() "
            "FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS d(lead_id uuid, email text, traits jsonb, "
            "  times jsonb, score numeric, fit float8, engagement float8, engagement_at timestamptz, grade text, "
            "  stage text, stages jsonb, state jsonb, due timestamptz, version int, seen timestamptz) "
            "WHERE l.lead_id = d.lead_id"
        ),
        {
            "rows": _rows(
                [
                    {
                        "lead_id": w.lead_id,
                        "email": w.email,
                        "traits": w.traits,
                        "times": w.trait_times,
                        "score": w.score,
                        "fit": w.fit,
                        "engagement": w.engagement,
                        "engagement_at": w.engagement_at,
                        "grade": w.grade,
                        "stage": w.stage,
                        "stages": w.stages,
                        "state": w.score_state,
                        "due": w.next_due_at,
                        "version": w.rule_set_version,
                        "seen": w.last_seen_at,
                    }
                    for w in writes
                ]
            )
        },
    )


async def insert_events(session: AsyncSession, events: list[tuple[TrackedEvent, uuid.UUID]]) -> set[uuid.UUID]:
    """The batch's events into the leads' history, one statement; returns the ids not seen before.

    An identify's traits are kept as its properties, so a replay can rebuild fit from history.
    """
    if not events:
        return set()
    rows = await session.execute(
        text(
            "INSERT INTO lead_events (event_id, lead_id, source_id, type, name, properties, bot, occurred_at, "
            "received_at) SELECT * FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS d(event_id uuid, lead_id uuid, "
            "source_id uuid, type text, name text, properties jsonb, bot text, occurred_at timestamptz, "
            "received_at timestamptz) ON CONFLICT DO NOTHING RETURNING event_id"
        ),
        {
            "rows": _rows(
                [
                    {
                        "event_id": e.event_id,
                        "lead_id": lead,
                        "source_id": e.source_id,
                        "type": e.type,
                        "name": e.event or e.name,
                        "properties": e.traits if e.type == "identify" else e.properties,
                        "bot": e.bot,
                        "occurred_at": e.timestamp,
                        "received_at": e.received_at,
                    }
                    for e, lead in events
                ]
            )
        },
    )
    return {row.event_id for row in rows}


@dataclass(frozen=True)
class HistoryEvent:
    lead_id: uuid.UUID
    event_id: uuid.UUID
    type: str
    name: str | None
    properties: dict[str, Any]
    bot: str | None
    occurred_at: datetime


async def history(session: AsyncSession, lead_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, list[HistoryEvent]]:
    """The leads' retained events in event-time order (the order a replay applies them in)."""
    rows = await session.execute(
        text(
            "SELECT lead_id, event_id, type, name, properties, bot, occurred_at FROM lead_events "
            "WHERE lead_id = ANY(CAST(:ids AS uuid[])) ORDER BY lead_id, occurred_at, event_id"
        ),
        {"ids": list(lead_ids)},
    )
    found: dict[uuid.UUID, list[HistoryEvent]] = {}
    for r in rows:
        found.setdefault(r.lead_id, []).append(HistoryEvent(*r))
    return found


async def replace_ledger(session: AsyncSession, lead_ids: list[uuid.UUID]) -> None:
    """Before a rebuild from history: the old ledger and stage history go, the rebuild writes new ones."""
    await session.execute(text("DELETE FROM score_ledger WHERE lead_id = ANY(CAST(:ids AS uuid[]))"), {"ids": lead_ids})
    await session.execute(
        text("DELETE FROM stage_history WHERE lead_id = ANY(CAST(:ids AS uuid[]))"), {"ids": lead_ids}
    )


@dataclass(frozen=True)
class LedgerRow:
    lead_id: uuid.UUID
    rule_id: str
    kind: str
    points: float
    event_id: uuid.UUID | None
    occurred_at: datetime


@dataclass(frozen=True)
class HistoryRow:
    lead_id: uuid.UUID
    model: str
    from_stage: str | None
    to_stage: str
    kind: str
    reason: str | None
    details: dict[str, Any] | None
    cause_event_id: uuid.UUID | None
    occurred_at: datetime


async def insert_ledger(session: AsyncSession, version: int, rows: list[LedgerRow]) -> None:
    if not rows:
        return
    await session.execute(
        text(
            "INSERT INTO score_ledger (lead_id, rule_set_version, rule_id, kind, points, event_id, occurred_at) "
            "SELECT d.lead_id, :version, d.rule_id, d.kind, d.points, d.event_id, d.at "
            "FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS d(lead_id uuid, rule_id text, kind text, "
            "points float8, event_id uuid, at timestamptz)"
        ),
        {
            "version": version,
            "rows": _rows(
                [
                    {"lead_id": r.lead_id, "rule_id": r.rule_id, "kind": r.kind, "points": r.points,
                     "event_id": r.event_id, "at": r.occurred_at}
                    for r in rows
                ]
            ),
        },
    )  # fmt: skip


async def insert_stage_history(session: AsyncSession, version: int, rows: list[HistoryRow]) -> None:
    if not rows:
        return
    await session.execute(
        text(
            "INSERT INTO stage_history (lead_id, rule_set_version, model, from_stage, to_stage, kind, reason, "
            "details, cause_event_id, occurred_at) SELECT d.lead_id, :version, d.model, d.from_stage, d.to_stage, "
            "d.kind, d.reason, d.details, d.cause, d.at FROM unnest(CAST(:leads AS uuid[]), CAST(:models AS text[]), "
            "CAST(:froms AS text[]), CAST(:tos AS text[]), CAST(:kinds AS text[]), CAST(:reasons AS text[]), "
            "CAST(:details AS jsonb[]), CAST(:causes AS uuid[]), CAST(:at AS timestamptz[])) "
            "AS d(lead_id, model, from_stage, to_stage, kind, reason, details, cause, at)"
        ),
        {
            "version": version,
            "leads": [r.lead_id for r in rows],
            "models": [r.model for r in rows],
            "froms": [r.from_stage for r in rows],
            "tos": [r.to_stage for r in rows],
            "kinds": [r.kind for r in rows],
            "reasons": [r.reason for r in rows],
            "details": [_json(r.details) if r.details is not None else None for r in rows],
            "causes": [r.cause_event_id for r in rows],
            "at": [r.occurred_at for r in rows],
        },
    )
