"""What the nurture consumer does with lead changes.

Foundation scope: it consumes `lead-changes` through the shared runner and records each change as
processed, so the process, its consumer group, lag and drain behave as they will once sequences act
on these changes (issue 6).
"""

from __future__ import annotations

from collections.abc import Sequence

from aiokafka import ConsumerRecord
from sqlalchemy.ext.asyncio import AsyncSession

from shared.events import LeadChange, decode_lead_change
from shared.kafka import Topics
from shared.runner import Outgoing


class NurtureHandler:
    name = "nurture"

    def topics(self, topics: Topics) -> list[str]:
        return [topics.lead_changes]

    def decode(self, record: ConsumerRecord) -> LeadChange:
        return decode_lead_change(record.value)

    async def apply(self, session: AsyncSession, items: Sequence[LeadChange]) -> list[Outgoing]:
        return []
