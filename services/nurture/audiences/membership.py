"""Evaluate leads against live audiences and write what changed: memberships (one statement each way),
the change log, the destinations' sync queue, and enrollments in sequences triggered by `audience_joined`.

Used by the nurture consumer's batch (handlers.py), the refresh loop (time-driven changes, backfills),
and the API (archiving an audience)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.nurture.audiences import repository
from services.nurture.audiences.service import Changes, LiveAudience, membership_changes
from services.nurture.sequences import repository as sequences
from services.nurture.sequences.repository import LiveSequence, NewEnrollment
from services.nurture.sequences.service import may_enter
from shared.events import derived_id


async def evaluate(
    session: AsyncSession,
    audiences: Sequence[LiveAudience],
    lead_ids: Iterable[uuid.UUID],
    now: datetime,
    reason: str,
    live_sequences: Sequence[LiveSequence] = (),
) -> Changes:
    """Re-evaluate the leads against the audiences in one pass and write the changes."""
    leads = sorted(set(lead_ids))
    if not audiences or not leads:
        return Changes()
    current = await repository.current_members(session, [a.name for a in audiences], leads)
    facts = await repository.lead_facts(session, leads, audiences, now)
    changes = membership_changes(audiences, leads, facts, current, now)
    await write(session, changes, now, reason, live_sequences)
    return changes


async def write(
    session: AsyncSession, changes: Changes, now: datetime, reason: str, live_sequences: Sequence[LiveSequence] = ()
) -> None:
    joined = await sequences.join_audiences(session, [(a.name, lead) for a, lead in changes.entered])
    await sequences.leave_audiences(session, [(a.name, lead) for a, lead in changes.left])
    entered = [(a, lead) for a, lead in changes.entered if (a.name, lead) in joined]
    await repository.log_changes(
        session,
        [(a.id, lead, "entered", reason) for a, lead in entered]
        + [(a.id, lead, "left", reason) for a, lead in changes.left],
        now,
    )
    await repository.queue_for_destinations(
        session, [(a.id, lead, "add") for a, lead in entered] + [(a.id, lead, "remove") for a, lead in changes.left]
    )
    await enroll_joined(session, entered, now, live_sequences)


async def enroll_joined(
    session: AsyncSession, entered: list[tuple[LiveAudience, uuid.UUID]], now: datetime, live: Sequence[LiveSequence]
) -> None:
    """Enroll leads who joined an audience in the sequences it triggers, re-entry policy permitting."""
    triggered = [s for s in live if s.definition.trigger.kind == "audience_joined"]
    if not entered or not triggered:
        return
    counts = await sequences.enrollment_counts(session, {lead for _, lead in entered})
    new: list[NewEnrollment] = []
    for audience, lead in entered:
        for sequence in triggered:
            if getattr(sequence.definition.trigger, "audience", None) != audience.name:
                continue
            active_n, ever = counts.get((lead, sequence.id), (0, 0))
            if not may_enter(sequence.definition.reentry, active_n, ever):
                continue
            counts[(lead, sequence.id)] = (active_n + 1, ever + 1)
            cause = derived_id(audience.id, lead, "joined", now.isoformat())
            context = {"trigger": "audience_joined", "audience": audience.name}
            new.append(NewEnrollment(uuid.uuid4(), sequence.id, sequence.version, lead, cause, context, now))
    await sequences.enroll(session, new)
