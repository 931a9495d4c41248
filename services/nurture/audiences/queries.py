"""SQL behind the audiences API: definitions, members, the change log, counts over time, destinations."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.nurture.audiences.identifiers import hashes, lead_phone

_AUDIENCE = (
    "SELECT a.id, a.name, a.description, a.definition, a.status, a.backfilled_at, a.refreshed_at, a.created_at, "
    "a.updated_at, (SELECT count(*) FROM audience_members m WHERE m.audience = a.name AND m.removed_at IS NULL) "
    "AS members FROM audiences a"
)
_DESTINATION = (
    "SELECT d.id, d.audience_id, d.kind, d.name, d.config, d.credentials, d.active, d.status, d.last_error, "
    "d.failures, d.pushed_count, d.removed_count, d.last_attempt_at, d.last_synced_at, d.next_attempt_at, "
    "(SELECT count(*) FROM audience_sync_queue q WHERE q.destination_id = d.id) AS pending "
    "FROM audience_destinations d"
)


def _json(value: Any) -> str:
    return orjson.dumps(value, default=str).decode()


async def create(session: AsyncSession, name: str, description: str, definition: dict[str, Any]) -> uuid.UUID | None:
    """A new audience, to be backfilled by the refresh loop; None if the name is taken."""
    found: uuid.UUID | None = await session.scalar(
        text(
            "INSERT INTO audiences (id, name, description, definition) VALUES (:id, :n, :d, CAST(:def AS jsonb)) "
            "ON CONFLICT (name) DO NOTHING RETURNING id"
        ),
        {"id": uuid.uuid4(), "n": name, "d": description, "def": _json(definition)},
    )
    return found


async def get(session: AsyncSession, audience_id: uuid.UUID) -> dict[str, Any] | None:
    row = (await session.execute(text(f"{_AUDIENCE} WHERE a.id = :id"), {"id": audience_id})).mappings().first()  # noqa: S608
    return dict(row) if row else None


async def listing(session: AsyncSession) -> list[dict[str, Any]]:
    rows = await session.execute(text(f"{_AUDIENCE} WHERE a.status <> 'archived' ORDER BY a.name"))  # noqa: S608
    return [dict(r) for r in rows.mappings()]


async def edit(session: AsyncSession, audience_id: uuid.UUID, description: str | None, definition: Any) -> None:
    """A new definition starts a new backfill (every lead is evaluated again)."""
    await session.execute(
        text(
            "UPDATE audiences SET description = coalesce(:d, description), updated_at = now(), "
            "definition = coalesce(CAST(:def AS jsonb), definition), "
            "backfill_cursor = CASE WHEN :def IS NULL THEN backfill_cursor END, "
            "backfilled_at = CASE WHEN :def IS NULL THEN backfilled_at END WHERE id = :id"
        ),
        {"id": audience_id, "d": description, "def": None if definition is None else _json(definition)},
    )


async def archive(session: AsyncSession, audience_id: uuid.UUID) -> None:
    await session.execute(
        text("UPDATE audiences SET status = 'archived', updated_at = now() WHERE id = :id"), {"id": audience_id}
    )


async def members(session: AsyncSession, name: str, limit: int, after: uuid.UUID | None) -> list[dict[str, Any]]:
    rows = await session.execute(
        text(
            "SELECT m.lead_id, l.user_id, m.added_at FROM audience_members m "
            "LEFT JOIN leads l ON l.lead_id = m.lead_id WHERE m.audience = :a AND m.removed_at IS NULL "
            "AND (CAST(:after AS uuid) IS NULL OR m.lead_id > :after) "
            "ORDER BY m.lead_id LIMIT :limit"
        ),
        {"a": name, "limit": limit, "after": after},
    )
    return [dict(r) for r in rows.mappings()]


async def member_hashes(session: AsyncSession, name: str) -> list[dict[str, str]]:
    """Hashes of every current member's email and phone (for file exports)."""
    rows = await session.execute(
        text(
            "SELECT l.email, l.traits FROM audience_members m JOIN leads l ON l.lead_id = m.lead_id "
            "WHERE m.audience = :a AND m.removed_at IS NULL ORDER BY m.lead_id"
        ),
        {"a": name},
    )
    return [hashes(r.email, lead_phone(r.traits or {})) for r in rows]


async def changes(session: AsyncSession, audience_id: uuid.UUID, limit: int) -> list[dict[str, Any]]:
    rows = await session.execute(
        text(
            "SELECT lead_id, change, reason, at FROM audience_changes WHERE audience_id = :id "
            "ORDER BY at DESC, id DESC LIMIT :limit"
        ),
        {"id": audience_id, "limit": limit},
    )
    return [dict(r) for r in rows.mappings()]


async def counts(session: AsyncSession, audience_id: uuid.UUID, bucket: str, since: datetime) -> list[dict[str, Any]]:
    """Entered and left per bucket since `since`, and members at the end of each bucket."""
    rows = await session.execute(
        text(
            "WITH b AS (SELECT date_trunc(:bucket, at) AS at, count(*) FILTER (WHERE change = 'entered') AS entered, "
            "count(*) FILTER (WHERE change = 'left') AS left_ FROM audience_changes WHERE audience_id = :id "
            "GROUP BY 1), t AS (SELECT at, entered, left_, sum(entered - left_) OVER (ORDER BY at) AS members FROM b) "
            "SELECT at, entered, left_ AS left, members FROM t "
            "WHERE at >= date_trunc(:bucket, CAST(:since AS timestamptz)) ORDER BY at"
        ),
        {"id": audience_id, "bucket": bucket, "since": since},
    )
    return [{"at": r.at, "entered": r.entered, "left": r.left, "members": int(r.members)} for r in rows]


async def add_destination(
    session: AsyncSession,
    audience_id: uuid.UUID,
    kind: str,
    name: str,
    config: dict[str, str],
    credentials: dict[str, str],
) -> uuid.UUID:
    destination_id = uuid.uuid4()
    await session.execute(
        text(
            "INSERT INTO audience_destinations (id, audience_id, kind, name, config, credentials) "
            "VALUES (:id, :a, :k, :n, CAST(:c AS jsonb), CAST(:s AS jsonb))"
        ),
        {"id": destination_id, "a": audience_id, "k": kind, "n": name, "c": _json(config), "s": _json(credentials)},
    )
    return destination_id


async def destinations(
    session: AsyncSession, audience_id: uuid.UUID, destination_id: uuid.UUID | None = None
) -> list[dict[str, Any]]:
    rows = await session.execute(
        text(
            f"{_DESTINATION} WHERE d.audience_id = :a AND (CAST(:d AS uuid) IS NULL OR d.id = :d) "  # noqa: S608
            "ORDER BY d.created_at"
        ),
        {"a": audience_id, "d": destination_id},
    )
    return [dict(r) for r in rows.mappings()]


async def remove_destination(session: AsyncSession, destination_id: uuid.UUID) -> None:
    """The destination stops syncing (kept for its history); its queue is dropped."""
    await session.execute(
        text("UPDATE audience_destinations SET active = false WHERE id = :id"), {"id": destination_id}
    )
    await session.execute(text("DELETE FROM audience_sync_queue WHERE destination_id = :id"), {"id": destination_id})


async def retry_now(session: AsyncSession, destination_id: uuid.UUID) -> None:
    await session.execute(
        text("UPDATE audience_destinations SET next_attempt_at = now() WHERE id = :id"), {"id": destination_id}
    )


async def endpoint_active(session: AsyncSession, endpoint_id: uuid.UUID) -> bool:
    return bool(await session.scalar(text("SELECT active FROM webhook_endpoints WHERE id = :id"), {"id": endpoint_id}))
