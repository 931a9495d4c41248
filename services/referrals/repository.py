"""SQL of referrals: issuing codes, finding a code's owner, recording attributed referrals."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.referrals.service import Claim, new_code

ISSUE_ATTEMPTS = 5


async def issue_codes(session: AsyncSession, lead_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, str]:
    """Each lead's code, created for those without one; a rare clash of two random codes is retried."""
    existing = await session.scalars(
        text("SELECT lead_id FROM leads WHERE lead_id = ANY(CAST(:leads AS uuid[]))"), {"leads": sorted(set(lead_ids))}
    )
    wanted = sorted(existing)
    codes: dict[uuid.UUID, str] = {}
    for _ in range(ISSUE_ATTEMPTS):
        missing = [lead for lead in wanted if lead not in codes]
        if not missing:
            break
        await session.execute(
            text(
                "INSERT INTO referral_codes (lead_id, code) SELECT * FROM unnest(CAST(:leads AS uuid[]), "
                "CAST(:codes AS text[])) ON CONFLICT DO NOTHING"
            ),
            {"leads": missing, "codes": [new_code() for _ in missing]},
        )
        rows = await session.execute(
            text("SELECT lead_id, code FROM referral_codes WHERE lead_id = ANY(CAST(:leads AS uuid[]))"),
            {"leads": missing},
        )
        codes |= {r.lead_id: r.code for r in rows}
    return codes


@dataclass(frozen=True)
class Referrer:
    lead_id: uuid.UUID
    user_id: str | None
    anonymous_id: str | None


async def owners(session: AsyncSession, codes: Iterable[str]) -> dict[str, Referrer]:
    """The lead each code belongs to now (the surviving lead when its owner was merged into another)."""
    rows = await session.execute(
        text(
            "SELECT c.code, l.lead_id, l.user_id, l.anonymous_id FROM referral_codes c "
            "JOIN leads o ON o.lead_id = c.lead_id JOIN leads l ON l.lead_id = coalesce(o.merged_into, o.lead_id) "
            "WHERE c.code = ANY(CAST(:codes AS text[]))"
        ),
        {"codes": sorted(set(codes))},
    )
    return {r.code: Referrer(r.lead_id, r.user_id, r.anonymous_id) for r in rows}


async def record(session: AsyncSession, referrals: list[tuple[Claim, uuid.UUID]]) -> set[uuid.UUID]:
    """Store (claim, referrer) pairs; the first referral of a lead wins. Returns the referred leads whose
    referral is stored by this very event (new now, or stored earlier by a redelivery of it)."""
    if not referrals:
        return set()
    rows = await session.execute(
        text(
            "INSERT INTO referrals (lead_id, referrer_lead_id, code, event_id, event_name, occurred_at) "
            "SELECT * FROM unnest(CAST(:leads AS uuid[]), CAST(:referrers AS uuid[]), CAST(:codes AS text[]), "
            "CAST(:events AS uuid[]), CAST(:names AS text[]), CAST(:ats AS timestamptz[])) "
            "ON CONFLICT (lead_id) DO UPDATE SET lead_id = excluded.lead_id "
            "WHERE referrals.event_id = excluded.event_id RETURNING lead_id"
        ),
        {
            "leads": [c.lead_id for c, _ in referrals],
            "referrers": [r for _, r in referrals],
            "codes": [c.code for c, _ in referrals],
            "events": [c.event_id for c, _ in referrals],
            "names": [c.event_name for c, _ in referrals],
            "ats": [c.occurred_at for c, _ in referrals],
        },
    )
    return set(rows.scalars())


@dataclass(frozen=True)
class ReferralRow:
    lead_id: uuid.UUID
    user_id: str | None
    code: str
    event_name: str
    occurred_at: datetime


async def code_of(session: AsyncSession, lead_id: uuid.UUID) -> str | None:
    found: str | None = await session.scalar(text("SELECT code FROM referral_codes WHERE lead_id = :l"), {"l": lead_id})
    return found


async def referred_by(session: AsyncSession, referrer: uuid.UUID) -> list[ReferralRow]:
    rows = await session.execute(
        text(
            "SELECT r.lead_id, l.user_id, r.code, r.event_name, r.occurred_at FROM referrals r "
            "JOIN leads l ON l.lead_id = r.lead_id WHERE r.referrer_lead_id = :l ORDER BY r.occurred_at"
        ),
        {"l": referrer},
    )
    return [ReferralRow(r.lead_id, r.user_id, r.code, r.event_name, r.occurred_at) for r in rows]


async def referrer_of(session: AsyncSession, lead_id: uuid.UUID) -> tuple[uuid.UUID, str | None] | None:
    row = (
        await session.execute(
            text(
                "SELECT r.referrer_lead_id, l.user_id FROM referrals r JOIN leads l ON l.lead_id = r.referrer_lead_id "
                "WHERE r.lead_id = :l"
            ),
            {"l": lead_id},
        )
    ).first()
    return (row[0], row[1]) if row is not None else None
