"""The analytics consumer: lead changes and tracked events become summary-table additions.

It reads `lead-changes` (stage changes, orders, when a lead is first seen) and `events` (the first
utm-tagged event of each identity, for first-touch attribution, and email opens and clicks, human
and bot apart, since bot events never reach `lead-changes`). The runner claims event ids in the same
transaction, so a redelivered batch adds nothing twice; each table gets one upsert per batch.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from aiokafka import ConsumerRecord
from sqlalchemy.ext.asyncio import AsyncSession

from services.analytics import repository
from services.analytics.summaries import Funnels, LeadInfo, summarize
from services.scoring.rulebook import ActiveRules
from shared.events import LeadChange, ScoringTick, TrackedEvent, decode_lead_change, decode_scoring_input
from shared.kafka import Topics
from shared.runner import Outgoing
from shared.settings import AnalyticsSettings

Item = LeadChange | TrackedEvent | ScoringTick
EMAIL_EVENTS = {"Email Opened": "opens", "Email Link Clicked": "clicks"}
MAX_UTM = 200


class AnalyticsHandler:
    name = "analytics"

    def __init__(self, settings: AnalyticsSettings) -> None:
        self.settings = settings
        self.lead_changes = Topics(settings.topic_prefix).lead_changes
        self.rules = ActiveRules(refresh_seconds=5.0)

    def topics(self, topics: Topics) -> list[str]:
        return [topics.events, topics.lead_changes]

    def decode(self, record: ConsumerRecord) -> Item:
        if record.topic == self.lead_changes:
            return decode_lead_change(record.value)
        return decode_scoring_input(record.value)

    async def funnels(self, session: AsyncSession) -> Funnels:
        scorer = await self.rules.get(session)
        models = [(m.name, [s.name for s in m.stages]) for m in scorer.rules.models]
        return Funnels.from_rules(models, [w.strip() for w in self.settings.analytics_won_stages.split(",")])

    async def apply(self, session: AsyncSession, items: Sequence[Item]) -> list[Outgoing]:
        events = [i for i in items if isinstance(i, TrackedEvent)]
        if events:
            await repository.add_touches(session, touches(events))
            await repository.add_engagement(session, engagement(events))
        changes = [i for i in items if not isinstance(i, TrackedEvent | ScoringTick)]
        if changes:
            await apply_changes(session, changes, await self.funnels(session), self.settings.reporting_currency)
        return []


async def apply_changes(
    session: AsyncSession, changes: Sequence[LeadChange], funnels: Funnels, default_currency: str
) -> None:
    """Load the changed leads' state, summarize, write (also the backfill's path)."""
    ids = list(dict.fromkeys(c.lead_id for c in changes))
    leads = await repository.load_leads(session, ids)
    missing = [i for i in ids if i not in leads]
    if missing:
        found = await repository.attribution(session, missing)
        first: dict[uuid.UUID, datetime] = {}
        for c in changes:
            if c.lead_id in found and (c.lead_id not in first or c.occurred_at < first[c.lead_id]):
                first[c.lead_id] = c.occurred_at
        for lead_id in missing:
            source, utm_source, utm_medium, utm_campaign = found[lead_id]
            leads[lead_id] = LeadInfo(lead_id, first[lead_id], (source, utm_source, utm_campaign), utm_medium, new=True)
    stages = await repository.load_stages(session, ids)
    delta = summarize(changes, leads, stages, funnels, default_currency)
    await repository.write_delta(session, delta)


def touches(events: Sequence[TrackedEvent]) -> dict[tuple[str, str], tuple[datetime, str, str, str]]:
    """The earliest utm-tagged event of each identity in the batch (`context.campaign`)."""
    found: dict[tuple[str, str], tuple[datetime, str, str, str]] = {}
    for e in events:
        campaign = e.context.get("campaign")
        if not isinstance(campaign, dict) or e.bot is not None:
            continue
        utm = tuple(str(campaign.get(k) or "")[:MAX_UTM] for k in ("source", "medium", "name"))
        if not any(utm):
            continue
        for kind, value in (("user", e.user_id), ("anonymous", e.anonymous_id)):
            if value and ((kind, value) not in found or e.timestamp < found[(kind, value)][0]):
                found[(kind, value)] = (e.timestamp, utm[0], utm[1], utm[2])
    return found


def engagement(events: Sequence[TrackedEvent]) -> dict[str, dict[str, int]]:
    """Opens and clicks per email Message-ID; bot ones (scanners, prefetchers) counted apart."""
    counts: dict[str, dict[str, int]] = {}
    for e in events:
        what = EMAIL_EVENTS.get(e.event or "") if e.type == "track" else None
        email_id = e.properties.get("email_id")
        if what is None or not isinstance(email_id, str) or not email_id:
            continue
        key = f"bot_{what}" if e.bot is not None else what
        row = counts.setdefault(email_id[:500], {})
        row[key] = row.get(key, 0) + 1
    return counts
