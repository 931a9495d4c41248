"""GDPR/CCPA: export everything about a person, and erase them.

"Everything" is found, not listed: every table with a `lead_id` column (scoring's, consent's, sends,
enrollments, audience memberships, and any table added later) is exported and erased by the person's
lead ids — the live lead and every lead folded into it — and every table with an `enrollment_id` by
the person's enrollments (CHILD_KEYS). Tables keyed otherwise are named here: `leads`, `lead_merges`,
`suppressions` and `email_feedback` (by address), `webhook_deliveries` (by `payload.lead_id`).

Kafka cannot be edited: the erasure leaves tombstones (sha256 of `kind:value` of every identity) that
scoring checks with `repository.erased()`, so a replay cannot bring anyone back, and the send path
checks through `can_send`. Events stay in Kafka until the topic's retention drops them.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.nurture.audiences.sync_repository import queue_erasure
from services.nurture.consent.repository import folded_leads, live_leads
from services.nurture.consent.service import identity_hash, normalize_identity

log = logging.getLogger(__name__)

# Tables with a lead_id column handled on their own below, not by the generic pass.
OWN_HANDLING = {"leads"}
# Rows that belong to a person through another of their rows: (column, table whose `id` it names).
CHILD_KEYS = (("enrollment_id", "enrollments"),)


@dataclass
class Person:
    """One person: their live lead, the leads folded into it, and every identity they are known by."""

    live: uuid.UUID
    lead_ids: list[uuid.UUID]
    identities: set[tuple[str, str]] = field(default_factory=set)

    @property
    def emails(self) -> list[str]:
        return sorted(v for k, v in self.identities if k == "email")


async def find_person(session: AsyncSession, kind: str, value: str, *, lock: bool = False) -> Person | None:
    """The person known by the identity (kind "user", "anonymous" or "email"); with `lock`, their lead rows
    are locked so that a scoring batch cannot write to them meanwhile."""
    lead_id = await session.scalar(
        text("SELECT lead_id FROM lead_identities WHERE kind = :k AND value = :v"),
        {"k": kind, "v": normalize_identity(kind, value)},
    )
    if lead_id is None:
        return None
    live = (await live_leads(session, [lead_id])).get(lead_id)
    if live is None:
        return None
    ids = await folded_leads(session, live)
    if lock:
        await session.execute(
            text("SELECT lead_id FROM leads WHERE lead_id = ANY(:ids) ORDER BY lead_id FOR UPDATE"), {"ids": ids}
        )
    rows = await session.execute(
        text(
            "SELECT kind, value FROM lead_identities WHERE lead_id = ANY(:ids) "
            "UNION SELECT 'user', user_id FROM leads WHERE lead_id = ANY(:ids) AND user_id IS NOT NULL "
            "UNION SELECT 'anonymous', anonymous_id FROM leads WHERE lead_id = ANY(:ids) AND anonymous_id IS NOT NULL "
            "UNION SELECT 'email', lower(email) FROM leads WHERE lead_id = ANY(:ids) AND email IS NOT NULL"
        ),
        {"ids": ids},
    )
    return Person(live, ids, {(r.kind, normalize_identity(r.kind, r.value)) for r in rows})


async def tables_with(session: AsyncSession, column: str) -> list[str]:
    """Every table of the schema with this column."""
    rows = await session.execute(
        text(
            "SELECT c.table_name FROM information_schema.columns c JOIN information_schema.tables t "
            "ON t.table_schema = c.table_schema AND t.table_name = c.table_name "
            "WHERE c.column_name = :column AND c.table_schema = current_schema() AND t.table_type = 'BASE TABLE' "
            "ORDER BY c.table_name"
        ),
        {"column": column},
    )
    return [r.table_name for r in rows]


async def lead_tables(session: AsyncSession) -> list[str]:
    """Every table of the schema with a `lead_id` column, except those handled on their own."""
    return [t for t in await tables_with(session, "lead_id") if t not in OWN_HANDLING]


async def child_rows(session: AsyncSession, person: Person) -> list[tuple[str, str, list[uuid.UUID]]]:
    """(table, column, ids) of rows keyed by one of the person's rows elsewhere (an enrollment's log and
    scheduled steps), found through CHILD_KEYS."""
    found = []
    for column, parent in CHILD_KEYS:
        if not await table_exists(session, parent):
            continue
        ids = list(
            (
                await session.scalars(
                    text(f"SELECT id FROM {_quoted(parent)} WHERE lead_id = ANY(:ids)"),  # noqa: S608
                    {"ids": person.lead_ids},
                )
            ).all()
        )
        if ids:
            found += [(table, column, ids) for table in await tables_with(session, column) if table != parent]
    return found


async def table_exists(session: AsyncSession, name: str) -> bool:
    return bool(await session.scalar(text("SELECT to_regclass(:name) IS NOT NULL"), {"name": name}))


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def _rows(session: AsyncSession, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows as JSON objects, built by PostgreSQL (every column, whatever the table)."""
    query = f"SELECT coalesce(jsonb_agg(to_jsonb(t)), '[]'::jsonb)::text FROM ({sql}) t"  # noqa: S608 - ours
    raw = await session.scalar(text(query), params)
    rows: list[dict[str, Any]] = orjson.loads(raw or "[]")
    return rows


async def export_person(session: AsyncSession, person: Person, now: datetime) -> dict[str, Any]:
    """Everything stored about the person, as JSON-ready data."""
    ids = {"ids": person.lead_ids}
    tables: dict[str, list[dict[str, Any]]] = {}
    for table in await lead_tables(session):
        tables[table] = await _rows(session, f"SELECT * FROM {_quoted(table)} WHERE lead_id = ANY(:ids)", ids)  # noqa: S608
    for table, column, keys in await child_rows(session, person):
        sql = f"SELECT * FROM {_quoted(table)} WHERE {_quoted(column)} = ANY(:keys)"  # noqa: S608
        tables[table] = await _rows(session, sql, {"keys": keys})
    emails = {"emails": person.emails}
    if await table_exists(session, "webhook_deliveries"):
        tables["webhook_deliveries"] = await _rows(
            session,
            "SELECT * FROM webhook_deliveries WHERE payload->>'lead_id' = ANY(:ids)",
            {"ids": [str(i) for i in person.lead_ids]},
        )
    return {
        "exported_at": now.isoformat(),
        "lead_id": str(person.live),
        "identities": [{"kind": k, "value": v} for k, v in sorted(person.identities)],
        "leads": await _rows(session, "SELECT * FROM leads WHERE lead_id = ANY(:ids)", ids),
        "merges": await _rows(
            session, "SELECT * FROM lead_merges WHERE from_lead_id = ANY(:ids) OR into_lead_id = ANY(:ids)", ids
        ),
        "suppressions": await _rows(session, "SELECT * FROM suppressions WHERE email = ANY(:emails)", emails),
        "email_feedback": await _rows(session, "SELECT * FROM email_feedback WHERE email = ANY(:emails)", emails),
        "tables": tables,
    }


async def remove_from_audiences(session: AsyncSession, person: Person) -> int:
    """Queue the person's removal from every destination they were pushed to (an ad platform, a
    webhook), carrying only the SHA-256 hashes that were sent, in the erasure's transaction; returns how
    many removals were queued. The audience sync loop sends them; rows of `audience_members`,
    `audience_pushed` and pending adds go in the generic pass."""
    return await queue_erasure(session, person.lead_ids)


async def erase_person(session: AsyncSession, person: Person, now: datetime) -> dict[str, Any]:
    """Delete the person's rows everywhere, keep tombstones of their identities; returns what was removed.
    Lock the person first (`find_person(..., lock=True)`)."""
    erasure_id = uuid.uuid4()
    hashes = sorted({(identity_hash(k, v), k) for k, v in person.identities})
    await session.execute(
        text(
            "INSERT INTO erasure_tombstones (identity_hash, kind, erasure_id, erased_at) "
            "SELECT h, k, :id, :at FROM unnest(CAST(:hashes AS text[]), CAST(:kinds AS text[])) AS i(h, k) "
            "ON CONFLICT DO NOTHING"
        ),
        {"id": erasure_id, "at": now, "hashes": [h for h, _ in hashes], "kinds": [k for _, k in hashes]},
    )
    removed: dict[str, int] = {"audience_memberships": await remove_from_audiences(session, person)}
    ids = {"ids": person.lead_ids}
    for table, column, keys in await child_rows(session, person):
        result = await session.execute(
            text(f"DELETE FROM {_quoted(table)} WHERE {_quoted(column)} = ANY(:keys)"),  # noqa: S608
            {"keys": keys},
        )
        removed[table] = _count(result)
    # Tables of other features may reference each other: a delete refused by a foreign key is retried
    # after the others, each in its own savepoint.
    pending = await lead_tables(session)
    for _ in range(len(pending) + 1):
        refused: list[str] = []
        for table in pending:
            try:
                async with session.begin_nested():
                    result = await session.execute(
                        text(f"DELETE FROM {_quoted(table)} WHERE lead_id = ANY(:ids)"),  # noqa: S608
                        ids,
                    )
            except IntegrityError as exc:
                log.info("erasure: %s waits for other tables (%s)", table, type(exc.orig).__name__)
                refused.append(table)
                continue
            removed[table] = _count(result)
        if not refused or refused == pending:
            pending = refused
            break
        pending = refused
    if pending:
        raise RuntimeError(f"erasure blocked by foreign keys in: {', '.join(pending)}")
    if await table_exists(session, "webhook_deliveries"):
        result = await session.execute(
            text("DELETE FROM webhook_deliveries WHERE payload->>'lead_id' = ANY(:ids)"),
            {"ids": [str(i) for i in person.lead_ids]},
        )
        removed["webhook_deliveries"] = _count(result)
    emails = {"emails": person.emails}
    for table in ("suppressions", "email_feedback"):
        result = await session.execute(text(f"DELETE FROM {table} WHERE email = ANY(:emails)"), emails)  # noqa: S608
        removed[table] = _count(result)
    result = await session.execute(
        text("DELETE FROM lead_merges WHERE from_lead_id = ANY(:ids) OR into_lead_id = ANY(:ids)"), ids
    )
    removed["lead_merges"] = _count(result)
    result = await session.execute(text("DELETE FROM leads WHERE lead_id = ANY(:ids)"), ids)
    removed["leads"] = _count(result)
    return {
        "erasure_id": str(erasure_id),
        "erased_at": now.isoformat(),
        "tombstones": len(hashes),
        "removed": dict(sorted(removed.items())),
    }


def _count(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)
