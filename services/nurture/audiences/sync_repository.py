"""SQL of the sync to destinations: claiming a destination, its queue, what was pushed, the outcome."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.nurture.audiences.identifiers import hashes, lead_phone


@dataclass(frozen=True)
class Claimed:
    id: uuid.UUID
    audience_id: uuid.UUID
    audience: str
    kind: str
    config: dict[str, Any]
    credentials: dict[str, Any]
    failures: int
    exclude_unsubscribed: bool


@dataclass(frozen=True)
class QueueItem:
    id: int
    op: str
    lead_id: uuid.UUID | None
    hashes: dict[str, str] | None


def _json(value: Any) -> str:
    return orjson.dumps(value, default=str).decode()


async def claim(session: AsyncSession, now: datetime, lease_seconds: float) -> Claimed | None:
    """One destination with pending changes that is due, leased so no other process pushes it meanwhile."""
    row = (
        await session.execute(
            text(
                "WITH due AS (SELECT d.id FROM audience_destinations d WHERE d.active AND d.next_attempt_at <= :now "
                "AND (d.lease_until IS NULL OR d.lease_until < :now) "
                "AND EXISTS (SELECT 1 FROM audience_sync_queue q WHERE q.destination_id = d.id) "
                "ORDER BY d.next_attempt_at LIMIT 1 FOR UPDATE OF d SKIP LOCKED) "
                "UPDATE audience_destinations d SET lease_until = :lease, last_attempt_at = :now FROM due, audiences a "
                "WHERE d.id = due.id AND a.id = d.audience_id "
                "RETURNING d.id, d.audience_id, a.name, d.kind, d.config, d.credentials, d.failures, "
                "coalesce((a.definition->>'exclude_unsubscribed')::boolean, true)"
            ),
            {"now": now, "lease": now + timedelta(seconds=lease_seconds)},
        )
    ).first()
    return None if row is None else Claimed(*row)


async def queued(session: AsyncSession, destination_id: uuid.UUID, limit: int) -> list[QueueItem]:
    rows = await session.execute(
        text(
            "SELECT id, op, lead_id, hashes FROM audience_sync_queue WHERE destination_id = :d ORDER BY id LIMIT :limit"
        ),
        {"d": destination_id, "limit": limit},
    )
    return [QueueItem(*r) for r in rows]


async def current_hashes(session: AsyncSession, lead_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, dict[str, str]]:
    """Hashes of the leads' email and phone as they are now; leads gone (erased, merged) are absent."""
    rows = await session.execute(
        text(
            "SELECT lead_id, email, traits FROM leads WHERE lead_id = ANY(CAST(:ids AS uuid[])) AND merged_into IS NULL"
        ),
        {"ids": sorted(set(lead_ids))},
    )
    return {r.lead_id: hashes(r.email, lead_phone(r.traits or {})) for r in rows}


async def pushed(
    session: AsyncSession, destination_id: uuid.UUID, lead_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, dict[str, str]]:
    rows = await session.execute(
        text(
            "SELECT lead_id, hashes FROM audience_pushed WHERE destination_id = :d "
            "AND lead_id = ANY(CAST(:ids AS uuid[]))"
        ),
        {"d": destination_id, "ids": sorted(set(lead_ids))},
    )
    return {r[0]: r[1] for r in rows}


async def held_by_others(
    session: AsyncSession, destination_id: uuid.UUID, leaving: list[uuid.UUID], values: set[str]
) -> set[str]:
    """Which of these hashes the destination also holds for a lead that is not leaving (two merged
    leads with one address): removing them would take a member out too."""
    if not values:
        return set()
    rows = await session.execute(
        text(
            "SELECT h.value FROM audience_pushed p, jsonb_each_text(p.hashes) AS h(key, value) "
            "WHERE p.destination_id = :d AND NOT p.lead_id = ANY(CAST(:leaving AS uuid[])) "
            "AND h.value = ANY(CAST(:values AS text[]))"
        ),
        {"d": destination_id, "leaving": leaving, "values": sorted(values)},
    )
    return {r[0] for r in rows}


async def record_success(
    session: AsyncSession,
    destination_id: uuid.UUID,
    taken: list[int],
    added: dict[uuid.UUID, dict[str, str]],
    removed: list[uuid.UUID],
    counts: tuple[int, int],
    now: datetime,
) -> None:
    """Done queue rows go, what was pushed is remembered (for leads that still exist; one erased
    meanwhile gets its removal queued with the hashes just sent), counters and status are updated."""
    await session.execute(
        text("DELETE FROM audience_sync_queue WHERE id = ANY(CAST(:ids AS bigint[]))"), {"ids": taken}
    )
    await session.execute(
        text("DELETE FROM audience_pushed WHERE destination_id = :d AND lead_id = ANY(CAST(:ids AS uuid[]))"),
        {"d": destination_id, "ids": removed},
    )
    if added:
        rows = [{"lead_id": lead, "hashes": h} for lead, h in added.items()]
        await session.execute(
            text(
                "INSERT INTO audience_pushed (destination_id, lead_id, hashes, pushed_at) SELECT :d, x.lead_id, "
                "x.hashes, :now FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS x(lead_id uuid, hashes jsonb) "
                "WHERE EXISTS (SELECT 1 FROM leads l WHERE l.lead_id = x.lead_id) "
                "ON CONFLICT (destination_id, lead_id) DO UPDATE SET hashes = excluded.hashes, pushed_at = :now"
            ),
            {"d": destination_id, "rows": _json(rows), "now": now},
        )
        await session.execute(
            text(
                "INSERT INTO audience_sync_queue (destination_id, op, lead_id, hashes) SELECT :d, 'remove', NULL, "
                "x.hashes FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS x(lead_id uuid, hashes jsonb) "
                "WHERE NOT EXISTS (SELECT 1 FROM leads l WHERE l.lead_id = x.lead_id)"
            ),
            {"d": destination_id, "rows": _json(rows)},
        )
    await session.execute(
        text(
            "UPDATE audience_destinations SET status = 'ok', last_error = NULL, failures = 0, lease_until = NULL, "
            "next_attempt_at = :now, last_synced_at = :now, pushed_count = pushed_count + :p, "
            "removed_count = removed_count + :r WHERE id = :d"
        ),
        {"d": destination_id, "now": now, "p": counts[0], "r": counts[1]},
    )


async def record_failure(session: AsyncSession, destination_id: uuid.UUID, error: str, retry_at: datetime) -> None:
    await session.execute(
        text(
            "UPDATE audience_destinations SET status = 'error', last_error = :e, failures = failures + 1, "
            "lease_until = NULL, next_attempt_at = :at WHERE id = :d"
        ),
        {"d": destination_id, "e": error[:500], "at": retry_at},
    )


async def queue_members(session: AsyncSession, destination_id: uuid.UUID) -> int:
    """A new destination starts with every current member of its audience queued as an add."""
    result = await session.execute(
        text(
            "INSERT INTO audience_sync_queue (destination_id, op, lead_id) SELECT d.id, 'add', m.lead_id "
            "FROM audience_destinations d JOIN audiences a ON a.id = d.audience_id JOIN audience_members m "
            "ON m.audience = a.name AND m.removed_at IS NULL WHERE d.id = :d ORDER BY m.lead_id"
        ),
        {"d": destination_id},
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def queue_erasure(session: AsyncSession, lead_ids: list[uuid.UUID]) -> int:
    """Removals of an erased person from every destination they were pushed to, carrying the hashes that
    were sent (their rows, `audience_pushed` included, are deleted next in the same transaction)."""
    result = await session.execute(
        text(
            "INSERT INTO audience_sync_queue (destination_id, op, lead_id, hashes) SELECT destination_id, 'remove', "
            "NULL, hashes FROM audience_pushed WHERE lead_id = ANY(CAST(:ids AS uuid[])) ORDER BY destination_id"
        ),
        {"ids": lead_ids},
    )
    return int(getattr(result, "rowcount", 0) or 0)
