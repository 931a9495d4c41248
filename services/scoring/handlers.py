"""What the scoring consumer does with a batch of tracked events."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from aiokafka import ConsumerRecord
from sqlalchemy.ext.asyncio import AsyncSession

from services.scoring import repository
from services.scoring.service import LeadDelta, plan_batch
from shared.events import LeadChanged, TrackedEvent, decode, derived_id
from shared.kafka import Topics
from shared.runner import Outgoing


class ScoringHandler:
    """Folds tracked events into lead scores; emits one LeadChanged per changed lead and batch."""

    name = "scoring"

    def __init__(self, topics: Topics) -> None:
        self._out = topics

    def topics(self, topics: Topics) -> list[str]:
        return [topics.events]

    def decode(self, record: ConsumerRecord) -> TrackedEvent:
        return decode(TrackedEvent, record.value)

    async def apply(self, session: AsyncSession, items: Sequence[TrackedEvent]) -> list[Outgoing]:
        deltas = plan_batch(list(items))
        found = await repository.find_leads(session, list(deltas))
        missing = [d for key, d in deltas.items() if key not in found]
        if missing:
            await repository.create_leads(session, missing)
            found.update(await repository.find_leads(session, [d.primary for d in missing]))
        by_lead: dict[uuid.UUID, LeadDelta] = {}
        secondary: list[tuple[tuple[str, str], uuid.UUID]] = []
        for key, delta in deltas.items():
            lead_id = found[key]
            by_lead[lead_id] = delta
            secondary.extend((identity, lead_id) for identity in sorted(delta.secondary))
        await repository.add_identities(session, secondary)
        changed = await repository.apply_deltas(session, by_lead)
        now = datetime.now(UTC)
        out = []
        for lead in changed:
            cause = by_lead[lead.lead_id].last_event_id
            message = LeadChanged(
                event_id=derived_id("lead-changed", cause, lead.lead_id),
                lead_id=lead.lead_id,
                user_id=lead.user_id,
                score=lead.score,
                stage=lead.stage,
                previous_stage=lead.previous_stage,
                cause_event_id=cause,
                occurred_at=now,
            )
            out.append(Outgoing(self._out.lead_changes, lead.lead_id.bytes, message.to_bytes()))
        return out
