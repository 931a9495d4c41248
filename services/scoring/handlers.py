"""What the scoring consumer does with a batch of tracked events.

Identity (see shared/HARD-PARTS.md): events are keyed by user id, else anonymous id, so a visitor's
anonymous events and their identified events may sit on different partitions and be consumed by
different processes. Every identity lives in `lead_identities` and points at one live lead. When an
event shows two identities are one person (identify with both ids, alias, a shared email), the
anonymous lead folds into the known one: identities, history, score and traits move, the merge is
recorded in `lead_merges`, and the folded lead keeps only `merged_into`. A late anonymous event
resolves through the moved identity to the known lead. If another consumer merges a lead while this
batch works on it, the row lock makes this batch wait, see `merged_into`, and follow it.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from aiokafka import ConsumerRecord
from sqlalchemy.ext.asyncio import AsyncSession

from services.scoring import repository
from services.scoring.repository import LeadUpdate
from services.scoring.service import (
    EventPlan,
    Identity,
    LeadDelta,
    fold_direction,
    merge_traits,
    next_stage,
    plan_batch,
)
from shared.events import LeadChanged, TrackedEvent, decode, derived_id
from shared.kafka import Topics
from shared.runner import Outgoing

log = logging.getLogger(__name__)
MAX_REDIRECTS = 5


class ScoringHandler:
    """Folds tracked events into leads; emits one LeadChanged per changed lead and batch."""

    name = "scoring"

    def __init__(self, topics: Topics) -> None:
        self._out = topics

    def topics(self, topics: Topics) -> list[str]:
        return [topics.events]

    def decode(self, record: ConsumerRecord) -> TrackedEvent:
        return decode(TrackedEvent, record.value)

    async def apply(self, session: AsyncSession, items: Sequence[TrackedEvent]) -> list[Outgoing]:
        plans = plan_batch(list(items))
        leads = await self._resolve(session, plans)
        placed = await self._link(session, plans, leads)
        changed = await self._update(session, placed)
        await repository.insert_events(session, [(plan.event, lead) for plan, lead in placed])
        return self._emit(changed, placed)

    async def _resolve(self, session: AsyncSession, plans: list[EventPlan]) -> dict[Identity, uuid.UUID]:
        """Every identity the batch mentions, creating leads for unknown primary identities."""
        wanted = {p.primary for p in plans} | {link.identity for p in plans for link in p.links}
        leads = await repository.find_leads(session, wanted)
        missing: dict[Identity, str | None] = {}
        for plan in plans:
            if plan.primary not in leads:
                missing[plan.primary] = missing.get(plan.primary) or plan.email
        if missing:
            await repository.create_leads(session, missing)
            leads.update(await repository.find_leads(session, missing))
        return leads

    async def _link(
        self, session: AsyncSession, plans: list[EventPlan], leads: dict[Identity, uuid.UUID]
    ) -> list[tuple[EventPlan, uuid.UUID]]:
        """Attach or merge linked identities in event order; return each event with its lead."""
        placed = []
        for plan in plans:
            lead = leads[plan.primary]
            for link in plan.links:
                other = leads.get(link.identity)
                if other == lead:
                    continue  # the usual case once known: no SQL at all
                if other is None:
                    if link.reason == "alias" and link.identity[0] == "user":
                        continue  # an unknown previous id becomes an anonymous identity (next link)
                    if await repository.add_identity(session, link.identity, lead):
                        leads[link.identity] = lead
                        continue
                    other = (await repository.find_leads(session, [link.identity]))[link.identity]
                lead = await repository.live_lead(session, lead)
                other = await repository.live_lead(session, other)
                rows = await repository.lock_leads(session, [lead, other])
                direction = fold_direction(lead, rows[lead].user_id, other, rows[other].user_id, link)
                if direction is None:
                    if lead != other:
                        log.info("not merging leads %s and %s on %s: both are known users", lead, other, link.reason)
                    continue
                source, target = direction
                if await repository.merge(session, source, target, link.reason, plan.event.event_id):
                    log.info("merged lead %s into %s (%s)", source, target, link.reason)
                for identity, owner in list(leads.items()):
                    if owner == source:
                        leads[identity] = target
                lead = target
            placed.append((plan, lead))
        return placed

    async def _update(
        self, session: AsyncSession, placed: list[tuple[EventPlan, uuid.UUID]]
    ) -> list[repository.ChangedLead]:
        """Lock the batch's leads, follow merges made meanwhile by other consumers, write one update."""
        for _ in range(MAX_REDIRECTS):
            rows = await repository.lock_leads(session, {lead for _, lead in placed})
            moved = {lead for lead, row in rows.items() if row.merged_into is not None}
            if not moved:
                break
            redirect = {lead: await repository.live_lead(session, lead) for lead in moved}
            placed[:] = [(plan, redirect.get(lead, lead)) for plan, lead in placed]
        deltas: dict[uuid.UUID, LeadDelta] = {}
        for plan, lead in placed:
            deltas.setdefault(lead, LeadDelta(last_event_id=plan.event.event_id)).add(plan)
        updates = []
        for lead, delta in deltas.items():
            row = rows[lead]
            traits, times = merge_traits(row.traits, row.trait_times, delta.traits, delta.trait_times)
            email = delta.email or row.email
            stage = next_stage(row.stage, known=bool(row.user_id or email))
            updates.append(LeadUpdate(lead, delta.points, email, traits, times, stage, delta.last_seen_at))
        return await repository.update_leads(session, updates)

    def _emit(self, changed: list[repository.ChangedLead], placed: list[tuple[EventPlan, uuid.UUID]]) -> list[Outgoing]:
        cause = {lead: plan.event.event_id for plan, lead in placed}  # the last event per lead
        now = datetime.now(UTC)
        out = []
        for lead in changed:
            message = LeadChanged(
                event_id=derived_id("lead-changed", cause[lead.lead_id], lead.lead_id),
                lead_id=lead.lead_id,
                user_id=lead.user_id,
                score=lead.score,
                stage=lead.stage,
                cause_event_id=cause[lead.lead_id],
                occurred_at=now,
            )
            out.append(Outgoing(self._out.lead_changes, lead.lead_id.bytes, message.to_bytes()))
        return out
