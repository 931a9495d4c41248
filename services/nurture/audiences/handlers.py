"""The nurture consumer's batch, as audiences see it: the leads whose score, stage or activity changed are
re-evaluated against every active audience in one pass, inside the batch's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.nurture.audiences import membership
from services.nurture.audiences.repository import AudienceCache
from services.nurture.sequences.repository import SequenceCache
from shared.events import LeadChange

AUDIENCES = AudienceCache()


async def on_lead_changes(session: AsyncSession, items: Sequence[LeadChange], sequences: SequenceCache) -> None:
    """Entered/left changes of the batch's leads (an unsubscribe or an order arrives here as activity)."""
    audiences = await AUDIENCES.get(session)
    if not audiences or not items:
        return
    now = datetime.now(UTC)
    live = await sequences.get(session)
    await membership.evaluate(session, audiences, {m.lead_id for m in items}, now, "event", live)
