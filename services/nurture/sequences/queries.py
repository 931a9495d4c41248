"""SQL behind the sequences admin API: definitions and versions, status per step, enrollments, dry runs."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.nurture.sequences.definition import Definition
from services.scoring.conditions import all_hold

SEQUENCE_COLUMNS = (
    "id, name, description, status, message_class, topic, exempt_from_cap, current_version, created_at, updated_at"
)


def _json(value: Any) -> str:
    return orjson.dumps(value, default=str).decode()


async def create(
    session: AsyncSession, *, name: str, description: str, message_class: str, topic: str | None, exempt: bool,
    definition: Definition,
) -> uuid.UUID | None:  # fmt: skip
    """A draft sequence with version 1; None when the name is taken."""
    sequence_id = uuid.uuid4()
    row = await session.execute(
        text(
            "INSERT INTO sequences (id, name, description, message_class, topic, exempt_from_cap) "
            "VALUES (:id, :name, :d, :mc, :topic, :ex) ON CONFLICT (name) DO NOTHING RETURNING id"
        ),
        {"id": sequence_id, "name": name, "d": description, "mc": message_class, "topic": topic, "ex": exempt},
    )
    if row.first() is None:
        return None
    await add_version(session, sequence_id, 1, definition, "created")
    return sequence_id


async def add_version(
    session: AsyncSession, sequence_id: uuid.UUID, version: int, definition: Definition, note: str
) -> None:
    await session.execute(
        text(
            "INSERT INTO sequence_versions (sequence_id, version, definition, note) "
            "VALUES (:id, :v, CAST(:d AS jsonb), :note)"
        ),
        {"id": sequence_id, "v": version, "d": _json(definition.model_dump(mode="json", by_alias=True)), "note": note},
    )


async def edit(session: AsyncSession, sequence_id: uuid.UUID, definition: Definition, note: str) -> int | None:
    """A new version becomes current; enrollments inside keep theirs. None when the sequence is unknown."""
    version = await session.scalar(
        text(
            "UPDATE sequences SET current_version = current_version + 1, updated_at = now() WHERE id = :id "
            "RETURNING current_version"
        ),
        {"id": sequence_id},
    )
    if version is None:
        return None
    await add_version(session, sequence_id, version, definition, note)
    return int(version)


async def set_status(session: AsyncSession, sequence_id: uuid.UUID, status: str) -> bool:
    row = await session.execute(
        text("UPDATE sequences SET status = :s, updated_at = now() WHERE id = :id RETURNING id"),
        {"s": status, "id": sequence_id},
    )
    return row.first() is not None


async def get(session: AsyncSession, sequence_id: uuid.UUID) -> dict[str, Any] | None:
    row = (
        (
            await session.execute(text(f"SELECT {SEQUENCE_COLUMNS} FROM sequences WHERE id = :id"), {"id": sequence_id})  # noqa: S608
        )
        .mappings()
        .first()
    )
    return dict(row) if row else None


async def all_sequences(session: AsyncSession) -> list[dict[str, Any]]:
    rows = await session.execute(text(f"SELECT {SEQUENCE_COLUMNS} FROM sequences ORDER BY name"))  # noqa: S608
    return [dict(r) for r in rows.mappings()]


async def versions(session: AsyncSession, sequence_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = await session.execute(
        text(
            "SELECT version, note, created_at, definition FROM sequence_versions WHERE sequence_id = :id "
            "ORDER BY version DESC"
        ),
        {"id": sequence_id},
    )
    return [dict(r) for r in rows.mappings()]


async def status_counts(session: AsyncSession, sequence_id: uuid.UUID) -> dict[str, int]:
    rows = await session.execute(
        text("SELECT status, count(*) FROM enrollments WHERE sequence_id = :id GROUP BY status"), {"id": sequence_id}
    )
    return {r[0]: r[1] for r in rows}


async def step_counts(session: AsyncSession, sequence_id: uuid.UUID) -> dict[tuple[int, int], dict[str, int]]:
    """Per (version, step index): active enrollments there, and each logged action's count."""
    found: dict[tuple[int, int], dict[str, int]] = {}
    rows = await session.execute(
        text(
            "SELECT version, step_index, count(*) FROM enrollments WHERE sequence_id = :id AND status = 'active' "
            "AND step_index IS NOT NULL GROUP BY version, step_index"
        ),
        {"id": sequence_id},
    )
    for version, step, n in rows:
        found.setdefault((version, step), {})["here"] = n
    rows = await session.execute(
        text(
            "SELECT e.version, l.step_index, l.action, count(*) FROM enrollment_log l JOIN enrollments e "
            "ON e.id = l.enrollment_id WHERE e.sequence_id = :id AND l.step_index IS NOT NULL "
            "GROUP BY e.version, l.step_index, l.action"
        ),
        {"id": sequence_id},
    )
    for version, step, action, n in rows:
        found.setdefault((version, step), {})[action] = n
    return found


async def enrollments(
    session: AsyncSession, *, sequence_id: uuid.UUID | None = None, lead_id: uuid.UUID | None = None,
    status: str | None = None, limit: int = 100,
) -> list[dict[str, Any]]:  # fmt: skip
    rows = await session.execute(
        text(
            "SELECT e.id, e.sequence_id, s.name AS sequence, e.version, e.lead_id, l.user_id, e.status, e.step_index, "
            "e.waiting, e.exit_reason, e.entered_at, e.finished_at, v.definition, "
            "(SELECT min(due_at) FROM scheduled_steps st WHERE st.enrollment_id = e.id AND st.status = 'due') "
            "AS next_due_at FROM enrollments e JOIN sequences s ON s.id = e.sequence_id "
            "JOIN sequence_versions v ON v.sequence_id = e.sequence_id AND v.version = e.version "
            "LEFT JOIN leads l ON l.lead_id = e.lead_id "
            "WHERE (CAST(:seq AS uuid) IS NULL OR e.sequence_id = :seq) AND (CAST(:lead AS uuid) IS NULL OR "
            "e.lead_id = :lead) AND (CAST(:st AS text) IS NULL OR e.status = :st) "
            "ORDER BY e.entered_at DESC LIMIT :limit"
        ),
        {"seq": sequence_id, "lead": lead_id, "st": status, "limit": limit},
    )
    return [dict(r) for r in rows.mappings()]


async def enrollment_log(session: AsyncSession, ids: list[uuid.UUID]) -> dict[uuid.UUID, list[dict[str, Any]]]:
    rows = await session.execute(
        text(
            "SELECT enrollment_id, step_index, action, detail, at FROM enrollment_log "
            "WHERE enrollment_id = ANY(CAST(:ids AS uuid[])) ORDER BY id"
        ),
        {"ids": ids},
    )
    found: dict[uuid.UUID, list[dict[str, Any]]] = {}
    for r in rows.mappings():
        found.setdefault(r["enrollment_id"], []).append(
            {"step_index": r["step_index"], "action": r["action"], "detail": r["detail"], "at": r["at"]}
        )
    return found


async def lead_by_user(session: AsyncSession, user_id: str) -> uuid.UUID | None:
    found = await session.scalar(
        text(
            "SELECT l.lead_id FROM lead_identities i JOIN leads l ON l.lead_id = i.lead_id "
            "WHERE i.kind = 'user' AND i.value = :u AND l.merged_into IS NULL"
        ),
        {"u": user_id},
    )
    return found if isinstance(found, uuid.UUID) else None


async def dry_run(
    session: AsyncSession, definition: Definition, now: datetime, days: int
) -> tuple[int, list[str], str]:
    """How many leads the trigger would have enrolled over the last `days` (re-entry not applied)."""
    since = now - timedelta(days=days)
    trigger = definition.trigger
    if trigger.kind == "event":
        rows = await session.execute(
            text(
                "SELECT e.lead_id, coalesce(l.user_id, e.lead_id::text), e.properties FROM lead_events e "
                "JOIN leads l ON l.lead_id = e.lead_id WHERE e.type = 'track' AND lower(e.name) = lower(:n) "
                "AND e.bot IS NULL AND e.occurred_at >= :since AND l.merged_into IS NULL"
            ),
            {"n": trigger.event, "since": since},
        )
        leads = {r[0]: r[1] for r in rows if all_hold(trigger.conditions, {"properties": r[2]})}
        return len(leads), sorted(leads.values())[:20], "from the retained event history"
    if trigger.kind == "stage_entered":
        sql = (
            "SELECT DISTINCT h.lead_id, coalesce(l.user_id, h.lead_id::text) FROM stage_history h JOIN leads l "
            "ON l.lead_id = h.lead_id WHERE h.model = :m AND h.to_stage = :s AND h.occurred_at >= :since"
        )
        params: dict[str, Any] = {"m": trigger.model, "s": trigger.stage, "since": since}
        note = "from the stage history"
    elif trigger.kind == "score_crossed":
        sql = (
            "SELECT DISTINCT c.lead_id, coalesce(l.user_id, c.lead_id::text) FROM (SELECT lead_id, occurred_at, "
            "sum(points) OVER w AS running, sum(points) OVER w - points AS before FROM score_ledger "
            "WINDOW w AS (PARTITION BY lead_id ORDER BY occurred_at, id)) c JOIN leads l ON l.lead_id = c.lead_id "
            "WHERE c.occurred_at >= :since AND c.before < :x AND c.running >= :x"
        )
        params = {"x": trigger.gte, "since": since}
        note = "from the score ledger (scores at the times points changed)"
    elif trigger.kind == "audience_joined":
        sql = (
            "SELECT a.lead_id, coalesce(l.user_id, a.lead_id::text) FROM audience_members a JOIN leads l "
            "ON l.lead_id = a.lead_id WHERE a.audience = :a AND a.added_at >= :since"
        )
        params = {"a": trigger.audience, "since": since}
        note = "from audience memberships"
    elif trigger.kind == "prediction_crossed":
        return 0, [], "prediction history is not kept (only each lead's latest), so it cannot be dry-run"
    else:
        return 0, [], "grade history is not kept, so a grade trigger cannot be dry-run"
    rows = await session.execute(text(sql), params)
    found = {r[0]: r[1] for r in rows}
    return len(found), sorted(found.values())[:20], note
