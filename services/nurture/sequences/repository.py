"""SQL for sequences, enrollments and the scheduler. Never commits: the caller's transaction does."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.nurture.sequences.definition import Definition
from services.nurture.sequences.service import LeadView


@dataclass(frozen=True)
class LiveSequence:
    """An active sequence with its current version."""

    id: uuid.UUID
    name: str
    version: int
    definition: Definition
    message_class: str
    topic: str | None
    exempt_from_cap: bool


@dataclass(frozen=True)
class ActiveEnrollment:
    id: uuid.UUID
    sequence_id: uuid.UUID
    version: int
    lead_id: uuid.UUID
    step_index: int | None
    steps_taken: int
    waiting: dict[str, Any] | None
    context: dict[str, Any]


def _json(value: Any) -> str:
    return orjson.dumps(value, default=str).decode()


async def live_sequences(session: AsyncSession) -> list[LiveSequence]:
    rows = await session.execute(
        text(
            "SELECT s.id, s.name, s.current_version, v.definition, s.message_class, s.topic, s.exempt_from_cap "
            "FROM sequences s JOIN sequence_versions v ON v.sequence_id = s.id AND v.version = s.current_version "
            "WHERE s.status = 'active' ORDER BY s.name"
        )
    )
    return [LiveSequence(r[0], r[1], r[2], Definition.model_validate(r[3]), r[4], r[5], r[6]) for r in rows]


class SequenceCache:
    """Active sequences, re-read at most every `refresh_seconds` (an edit shows within that time)."""

    def __init__(self, refresh_seconds: float = 1.0) -> None:
        self.refresh_seconds = refresh_seconds
        self._found: list[LiveSequence] = []
        self._at = -1e9

    async def get(self, session: AsyncSession) -> list[LiveSequence]:
        if time.monotonic() - self._at >= self.refresh_seconds:
            self._found = await live_sequences(session)
            self._at = time.monotonic()
        return self._found


async def definitions(session: AsyncSession, keys: Iterable[tuple[uuid.UUID, int]]) -> dict[tuple[uuid.UUID, int], Any]:
    """Definitions, message class, topic and cap exemption of the given (sequence, version) pairs."""
    wanted = sorted(set(keys))
    if not wanted:
        return {}
    rows = await session.execute(
        text(
            "SELECT v.sequence_id, v.version, v.definition, s.message_class, s.topic, s.exempt_from_cap, s.name "
            "FROM sequence_versions v JOIN sequences s ON s.id = v.sequence_id "
            "JOIN unnest(CAST(:ids AS uuid[]), CAST(:versions AS int[])) AS w(id, version) "
            "ON v.sequence_id = w.id AND v.version = w.version"
        ),
        {"ids": [k[0] for k in wanted], "versions": [k[1] for k in wanted]},
    )
    return {(r[0], r[1]): (Definition.model_validate(r[2]), r[3], r[4], r[5], r[6]) for r in rows}


async def lock_active(session: AsyncSession, lead_ids: Iterable[uuid.UUID]) -> list[ActiveEnrollment]:
    """The leads' active enrollments, locked (the scheduler skips locked ones; this waits for it)."""
    rows = await session.execute(
        text(
            "SELECT id, sequence_id, version, lead_id, step_index, steps_taken, waiting, context FROM enrollments "
            "WHERE lead_id = ANY(CAST(:ids AS uuid[])) AND status = 'active' ORDER BY id FOR UPDATE"
        ),
        {"ids": sorted(set(lead_ids))},
    )
    return [ActiveEnrollment(*r) for r in rows]


async def enrollment_counts(
    session: AsyncSession, lead_ids: Iterable[uuid.UUID]
) -> dict[tuple[uuid.UUID, uuid.UUID], tuple[int, int]]:
    """(lead, sequence) → (active, ever) enrollments, for the re-entry policy."""
    rows = await session.execute(
        text(
            "SELECT lead_id, sequence_id, count(*) FILTER (WHERE status = 'active'), count(*) FROM enrollments "
            "WHERE lead_id = ANY(CAST(:ids AS uuid[])) GROUP BY lead_id, sequence_id"
        ),
        {"ids": sorted(set(lead_ids))},
    )
    return {(r[0], r[1]): (r[2], r[3]) for r in rows}


@dataclass(frozen=True)
class NewEnrollment:
    id: uuid.UUID
    sequence_id: uuid.UUID
    version: int
    lead_id: uuid.UUID
    cause_event_id: uuid.UUID
    context: dict[str, Any]
    at: datetime


async def enroll(session: AsyncSession, new: list[NewEnrollment]) -> list[uuid.UUID]:
    """Insert enrollments (a trigger seen twice enrolls once) and schedule their first step now."""
    if not new:
        return []
    rows = await session.execute(
        text(
            "INSERT INTO enrollments (id, sequence_id, version, lead_id, step_index, cause_event_id, context, "
            "entered_at, updated_at) SELECT d.id, d.sequence_id, d.version, d.lead_id, 0, d.cause, d.context, d.at, "
            "now() FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS d(id uuid, sequence_id uuid, version int, "
            "lead_id uuid, cause uuid, context jsonb, at timestamptz) ON CONFLICT DO NOTHING RETURNING id"
        ),
        {
            "rows": _json(
                [
                    {"id": n.id, "sequence_id": n.sequence_id, "version": n.version, "lead_id": n.lead_id,
                     "cause": n.cause_event_id, "context": n.context, "at": n.at}
                    for n in new
                ]
            )
        },
    )  # fmt: skip
    created = [r[0] for r in rows]
    at = {n.id: n.at for n in new}
    await schedule(session, [(e, 0, "step", at[e]) for e in created])
    await log(session, [(e, 0, "entered", {}) for e in created])
    return created


async def schedule(session: AsyncSession, items: list[tuple[uuid.UUID, int, str, datetime]]) -> None:
    """(enrollment, step index, kind, due at) rows for the scheduler."""
    if not items:
        return
    await session.execute(
        text(
            "INSERT INTO scheduled_steps (enrollment_id, step_index, kind, due_at) SELECT * FROM "
            "unnest(CAST(:e AS uuid[]), CAST(:s AS int[]), CAST(:k AS text[]), CAST(:d AS timestamptz[]))"
        ),
        {
            "e": [i[0] for i in items],
            "s": [i[1] for i in items],
            "k": [i[2] for i in items],
            "d": [i[3] for i in items],
        },
    )


async def cancel_scheduled(session: AsyncSession, enrollment_ids: Iterable[uuid.UUID], kind: str | None = None) -> None:
    ids = sorted(set(enrollment_ids))
    if not ids:
        return
    await session.execute(
        text(
            "UPDATE scheduled_steps SET status = 'cancelled', done_at = now() WHERE status = 'due' "
            "AND enrollment_id = ANY(CAST(:ids AS uuid[])) AND (CAST(:kind AS text) IS NULL OR kind = :kind)"
        ),
        {"ids": ids, "kind": kind},
    )


async def finish(session: AsyncSession, ended: list[tuple[uuid.UUID, str, str | None]]) -> None:
    """(enrollment, status completed|exited, reason): no more steps."""
    if not ended:
        return
    await session.execute(
        text(
            "UPDATE enrollments AS e SET status = d.status, exit_reason = d.reason, finished_at = now(), "
            "updated_at = now(), waiting = NULL FROM unnest(CAST(:ids AS uuid[]), CAST(:st AS text[]), "
            "CAST(:r AS text[])) AS d(id, status, reason) WHERE e.id = d.id"
        ),
        {"ids": [e[0] for e in ended], "st": [e[1] for e in ended], "r": [e[2] for e in ended]},
    )
    await cancel_scheduled(session, [e[0] for e in ended])
    await log(session, [(e[0], None, e[1], {"reason": e[2]} if e[2] else {}) for e in ended])


async def move(session: AsyncSession, moves: list[tuple[uuid.UUID, int | None, int, dict[str, Any] | None]]) -> None:
    """(enrollment, step index, steps taken, waiting) after steps ran."""
    if not moves:
        return
    await session.execute(
        text(
            "UPDATE enrollments AS e SET step_index = d.step, steps_taken = d.taken, waiting = d.waiting, "
            "updated_at = now() FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS d(id uuid, step int, taken int, "
            "waiting jsonb) WHERE e.id = d.id"
        ),
        {"rows": _json([{"id": m[0], "step": m[1], "taken": m[2], "waiting": m[3]} for m in moves])},
    )


async def log(session: AsyncSession, entries: list[tuple[uuid.UUID, int | None, str, dict[str, Any]]]) -> None:
    if not entries:
        return
    await session.execute(
        text(
            "INSERT INTO enrollment_log (enrollment_id, step_index, action, detail) SELECT d.e, d.s, d.a, d.d "
            "FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS d(e uuid, s int, a text, d jsonb)"
        ),
        {"rows": _json([{"e": e[0], "s": e[1], "a": e[2], "d": e[3]} for e in entries])},
    )


@dataclass(frozen=True)
class DueStep:
    row_id: int
    kind: str
    step_index: int
    due_at: datetime
    enrollment: ActiveEnrollment


async def claim_due(session: AsyncSession, now: datetime, limit: int) -> list[DueStep]:
    """Due steps with their enrollments, both locked; rows another process holds are skipped."""
    rows = await session.execute(
        text(
            "SELECT s.id, s.kind, s.step_index, s.due_at, e.id, e.sequence_id, e.version, e.lead_id, e.step_index, "
            "e.steps_taken, e.waiting, e.context, e.status FROM scheduled_steps s JOIN enrollments e "
            "ON e.id = s.enrollment_id JOIN sequences q ON q.id = e.sequence_id "
            "WHERE s.status = 'due' AND s.due_at <= :now AND q.status = 'active' ORDER BY s.due_at "
            "LIMIT :limit FOR UPDATE OF s, e SKIP LOCKED"
        ),
        {"now": now, "limit": limit},
    )
    found = []
    stale = []
    for r in rows:
        if r[12] != "active":
            stale.append(r[0])
            continue
        found.append(DueStep(r[0], r[1], r[2], r[3], ActiveEnrollment(*r[4:12])))
    if stale:
        await done(session, stale, "cancelled")
    return found


async def done(session: AsyncSession, row_ids: list[int], status: str = "done") -> None:
    if row_ids:
        await session.execute(
            text("UPDATE scheduled_steps SET status = :st, done_at = now() WHERE id = ANY(CAST(:ids AS bigint[]))"),
            {"ids": row_ids, "st": status},
        )


async def lead_views(session: AsyncSession, lead_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, LeadView]:
    rows = await session.execute(
        text(
            "SELECT l.lead_id, l.user_id, l.anonymous_id, l.email, l.traits, l.score, l.grade, l.stage, l.stages, "
            "r.code, COALESCE(l.score_state->'predictions', '{}'::jsonb) "
            "FROM leads l LEFT JOIN referral_codes r ON r.lead_id = l.lead_id "
            "WHERE l.lead_id = ANY(CAST(:ids AS uuid[]))"
        ),
        {"ids": sorted(set(lead_ids))},
    )
    return {r[0]: LeadView(r[0], r[1], r[2], r[3], r[4], float(r[5]), r[6], r[7], r[8], r[9], r[10]) for r in rows}


async def has_event(session: AsyncSession, lead_id: uuid.UUID, name: str) -> bool:
    found = await session.scalar(
        text("SELECT 1 FROM lead_events WHERE lead_id = :l AND lower(name) = lower(:n) AND bot IS NULL LIMIT 1"),
        {"l": lead_id, "n": name},
    )
    return found is not None


async def last_marketing(session: AsyncSession, lead_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, datetime]:
    rows = await session.execute(
        text(
            "SELECT lead_id, last_marketing_at FROM nurture_lead_state WHERE lead_id = ANY(CAST(:ids AS uuid[])) "
            "AND last_marketing_at IS NOT NULL"
        ),
        {"ids": sorted(set(lead_ids))},
    )
    return {r[0]: r[1] for r in rows}


async def marketing_sent(session: AsyncSession, sent: dict[uuid.UUID, datetime]) -> None:
    if not sent:
        return
    await session.execute(
        text(
            "INSERT INTO nurture_lead_state (lead_id, last_marketing_at) SELECT * FROM unnest(CAST(:l AS uuid[]), "
            "CAST(:t AS timestamptz[])) ON CONFLICT (lead_id) DO UPDATE SET last_marketing_at = "
            "GREATEST(nurture_lead_state.last_marketing_at, excluded.last_marketing_at)"
        ),
        {"l": list(sent), "t": list(sent.values())},
    )


async def join_audiences(session: AsyncSession, pairs: list[tuple[str, uuid.UUID]]) -> set[tuple[str, uuid.UUID]]:
    """Add leads to audiences in one statement; returns the (audience, lead) pairs that were not members."""
    if not pairs:
        return set()
    rows = await session.execute(
        text(
            "INSERT INTO audience_members (audience, lead_id) SELECT DISTINCT * FROM unnest(CAST(:a AS text[]), "
            "CAST(:l AS uuid[])) ON CONFLICT (audience, lead_id) DO UPDATE SET removed_at = NULL, added_at = now() "
            "WHERE audience_members.removed_at IS NOT NULL RETURNING audience, lead_id"
        ),
        {"a": [a for a, _ in pairs], "l": [lead for _, lead in pairs]},
    )
    return {(r[0], r[1]) for r in rows}


async def leave_audiences(session: AsyncSession, pairs: list[tuple[str, uuid.UUID]]) -> None:
    if not pairs:
        return
    await session.execute(
        text(
            "UPDATE audience_members AS m SET removed_at = now() FROM unnest(CAST(:a AS text[]), CAST(:l AS uuid[])) "
            "AS d(audience, lead_id) WHERE m.audience = d.audience AND m.lead_id = d.lead_id AND m.removed_at IS NULL"
        ),
        {"a": [a for a, _ in pairs], "l": [lead for _, lead in pairs]},
    )
