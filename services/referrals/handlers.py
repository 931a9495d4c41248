"""What the nurture consumer does for referrals with each batch of lead changes.

Buyers get their code (so a post-purchase email can show it); an event carrying someone else's code
records the referral and sends the referrer a `funnelstream.referral` event on `events`, published
before the batch commits and with an id derived from the referred lead, so a redelivered batch
neither attributes twice nor counts twice.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.referrals import repository
from services.referrals.service import buyers, claims, referral_event
from shared.events import LeadChange
from shared.kafka import Topics
from shared.runner import Outgoing

log = logging.getLogger(__name__)


async def apply_referrals(session: AsyncSession, items: Sequence[LeadChange], topics: Topics) -> list[Outgoing]:
    bought = buyers(items)
    if bought:
        await repository.issue_codes(session, bought)
    found = claims(items)
    if not found:
        return []
    owners = await repository.owners(session, {c.code for c in found})
    attributable = []
    for claim in found:
        referrer = owners.get(claim.code)
        if referrer is None:
            log.info("lead %s brought referral code %s, which nobody has", claim.lead_id, claim.code)
        elif referrer.lead_id != claim.lead_id:
            attributable.append((claim, referrer))
    stored = await repository.record(session, [(c, r.lead_id) for c, r in attributable])
    now = datetime.now(UTC)
    outgoing = []
    for claim, referrer in attributable:
        if claim.lead_id not in stored:
            continue  # referred earlier, by another code or event: the first one wins
        if referrer.user_id is None and referrer.anonymous_id is None:
            log.warning("referrer %s has no user or anonymous id; its advocacy event is not sent", referrer.lead_id)
            continue
        event = referral_event((referrer.user_id, referrer.anonymous_id), claim, claim.code, now)
        outgoing.append(Outgoing(topics.events, event.lead_key.encode(), event.to_bytes()))
    return outgoing
