"""SQL of audiences: definitions, the facts rules read, memberships and their change log. Never commits."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.nurture.audiences.definition import ORDER_EVENTS, AudienceDefinition
from services.nurture.audiences.service import CartFact, EventFact, LeadFacts, LiveAudience

UNSUBSCRIBED = ("unsubscribed", "bounced", "complained")


async def live_audiences(session: AsyncSession) -> list[LiveAudience]:
    rows = await session.execute(
        text("SELECT id, name, definition FROM audiences WHERE status = 'active' ORDER BY name")
    )
    return [LiveAudience(r[0], r[1], AudienceDefinition.model_validate(r[2])) for r in rows]


class AudienceCache:
    """Active audiences, re-read at most every `refresh_seconds` (a new definition applies within it),
    per database: one process may serve several (the tests do)."""

    def __init__(self, refresh_seconds: float = 1.0) -> None:
        self.refresh_seconds = refresh_seconds
        self._found: dict[str, tuple[float, list[LiveAudience]]] = {}

    async def get(self, session: AsyncSession) -> list[LiveAudience]:
        key = str(getattr(session.bind, "url", ""))
        at, found = self._found.get(key, (-1e9, []))
        if time.monotonic() - at >= self.refresh_seconds:
            found = await live_audiences(session)
            self._found[key] = (time.monotonic(), found)
        return found


async def has_carts(session: AsyncSession) -> bool:
    return bool(await session.scalar(text("SELECT to_regclass('carts') IS NOT NULL")))


async def lead_facts(
    session: AsyncSession, lead_ids: Iterable[uuid.UUID], audiences: Sequence[LiveAudience], now: datetime
) -> dict[uuid.UUID, LeadFacts]:
    """Everything the audiences' rules read about these leads, in one statement per source."""
    ids = sorted(set(lead_ids))
    if not ids:
        return {}
    params: dict[str, Any] = {"ids": ids}
    leads = (
        await session.execute(
            text(
                "SELECT lead_id, email, stage, stages, score, fit, engagement, grade, traits, "
                "score_state -> 'predictions' AS predictions FROM leads "
                "WHERE lead_id = ANY(CAST(:ids AS uuid[])) AND merged_into IS NULL"
            ),
            params,
        )
    ).all()
    events: dict[uuid.UUID, list[EventFact]] = {}
    names = sorted({n.casefold() for a in audiences for n in a.definition.event_names()})
    if names:
        days = max(a.definition.event_days() for a in audiences)
        rows = await session.execute(
            text(
                "SELECT lead_id, name, occurred_at, properties FROM lead_events "
                "WHERE lead_id = ANY(CAST(:ids AS uuid[])) AND type = 'track' AND bot IS NULL "
                "AND lower(name) = ANY(CAST(:names AS text[])) AND occurred_at >= :since"
            ),
            params | {"names": names, "since": now - timedelta(days=days)},
        )
        for r in rows:
            events.setdefault(r.lead_id, []).append(EventFact(r.name, r.occurred_at, r.properties or {}))
    orders: dict[uuid.UUID, datetime] = dict(
        (
            await session.execute(
                text(
                    "SELECT lead_id, max(occurred_at) FROM lead_events WHERE lead_id = ANY(CAST(:ids AS uuid[])) "
                    "AND type = 'track' AND bot IS NULL AND name = ANY(CAST(:orders AS text[])) GROUP BY lead_id"
                ),
                params | {"orders": list(ORDER_EVENTS)},
            )
        ).all()
    )
    carts: dict[uuid.UUID, list[CartFact]] = {}
    if await has_carts(session):
        rows = await session.execute(
            text(
                "SELECT lead_id, status, item_count, total, started_at, last_activity_at FROM carts "
                "WHERE lead_id = ANY(CAST(:ids AS uuid[]))"
            ),
            params,
        )
        for r in rows:
            total = None if r.total is None else float(r.total)
            carts.setdefault(r.lead_id, []).append(
                CartFact(r.status, r.item_count, total, r.started_at, r.last_activity_at)
            )
    unsubscribed = await unsubscribed_leads(session, ids)
    primary = await session.scalar(text("SELECT rules ->> 'primary_model' FROM rule_sets WHERE status = 'active'"))
    return {
        r.lead_id: LeadFacts(
            lead_id=r.lead_id,
            email=r.email,
            stage=r.stage,
            stages=r.stages or {},
            score=float(r.score),
            fit=float(r.fit),
            engagement=float(r.engagement),
            grade=r.grade,
            traits=r.traits or {},
            events=tuple(events.get(r.lead_id, ())),
            carts=tuple(carts.get(r.lead_id, ())),
            last_order_at=orders.get(r.lead_id),
            unsubscribed=r.lead_id in unsubscribed,
            predictions={m: float(p) for m, p in (r.predictions or {}).items()},
            primary_model=primary,
        )  # fmt: skip
        for r in leads
    }


async def unsubscribed_leads(session: AsyncSession, lead_ids: Iterable[uuid.UUID]) -> set[uuid.UUID]:
    """Leads unsubscribed from everything, bounced or complained, or whose address is suppressed."""
    rows = await session.scalars(
        text(
            "SELECT lead_id FROM subscriptions WHERE lead_id = ANY(CAST(:ids AS uuid[])) AND topic = '*' "
            "AND status = ANY(CAST(:dead AS text[])) UNION SELECT l.lead_id FROM leads l JOIN suppressions s "
            "ON s.email = lower(l.email) WHERE l.lead_id = ANY(CAST(:ids AS uuid[]))"
        ),
        {"ids": sorted(set(lead_ids)), "dead": list(UNSUBSCRIBED)},
    )
    return set(rows.all())


async def current_members(
    session: AsyncSession, names: Sequence[str], lead_ids: Iterable[uuid.UUID]
) -> set[tuple[str, uuid.UUID]]:
    """(audience, lead) memberships of these leads in these audiences, locked against a concurrent writer."""
    rows = await session.execute(
        text(
            "SELECT audience, lead_id FROM audience_members WHERE audience = ANY(CAST(:names AS text[])) "
            "AND lead_id = ANY(CAST(:ids AS uuid[])) AND removed_at IS NULL ORDER BY audience, lead_id FOR UPDATE"
        ),
        {"names": list(names), "ids": sorted(set(lead_ids))},
    )
    return {(r[0], r[1]) for r in rows}


async def members_of(session: AsyncSession, name: str, after: uuid.UUID | None, limit: int) -> list[uuid.UUID]:
    rows = await session.scalars(
        text(
            "SELECT lead_id FROM audience_members WHERE audience = :a AND removed_at IS NULL "
            "AND (CAST(:after AS uuid) IS NULL OR lead_id > :after) ORDER BY lead_id LIMIT :limit"
        ),
        {"a": name, "after": after, "limit": limit},
    )
    return list(rows.all())


async def log_changes(session: AsyncSession, rows: list[tuple[uuid.UUID, uuid.UUID, str, str]], now: datetime) -> None:
    """(audience id, lead, entered|left, reason) rows of the change log, in one statement."""
    if not rows:
        return
    await session.execute(
        text(
            "INSERT INTO audience_changes (audience_id, lead_id, change, reason, at) SELECT a, l, c, r, :at FROM "
            "unnest(CAST(:a AS uuid[]), CAST(:l AS uuid[]), CAST(:c AS text[]), CAST(:r AS text[])) AS d(a, l, c, r)"
        ),
        {"a": [r[0] for r in rows], "l": [r[1] for r in rows], "c": [r[2] for r in rows], "r": [r[3] for r in rows],
         "at": now},
    )  # fmt: skip


async def queue_for_destinations(session: AsyncSession, rows: list[tuple[uuid.UUID, uuid.UUID, str]]) -> None:
    """(audience id, lead, add|remove): one sync-queue row per active destination of the audience."""
    if not rows:
        return
    await session.execute(
        text(
            "INSERT INTO audience_sync_queue (destination_id, op, lead_id) SELECT d.id, x.op, x.lead_id FROM "
            "unnest(CAST(:a AS uuid[]), CAST(:l AS uuid[]), CAST(:o AS text[])) AS x(audience_id, lead_id, op) "
            "JOIN audience_destinations d ON d.audience_id = x.audience_id AND d.active ORDER BY x.lead_id"
        ),
        {"a": [r[0] for r in rows], "l": [r[1] for r in rows], "o": [r[2] for r in rows]},
    )


async def candidates(
    session: AsyncSession, audience: LiveAudience, since: datetime | None, now: datetime
) -> set[uuid.UUID]:
    """Leads whose membership may have changed with time alone, or outside the stream, since `since`:
    current members (a window aged, a trait changed), leads with an idle open cart, leads updated since."""
    found = set(await members_of(session, audience.name, None, 1_000_000))
    found |= set(
        (
            await session.scalars(
                text("SELECT lead_id FROM leads WHERE updated_at >= :since AND merged_into IS NULL"),
                {"since": since or now - timedelta(days=1)},
            )
        ).all()
    )
    if audience.definition.uses_carts() and await has_carts(session):
        found |= set(
            (
                await session.scalars(
                    text("SELECT DISTINCT lead_id FROM carts WHERE status IN ('open', 'checkout') AND item_count > 0")
                )
            ).all()
        )
    return found


async def lead_page(session: AsyncSession, after: uuid.UUID | None, limit: int) -> list[uuid.UUID]:
    """Live leads in id order after `after` (the backfill's chunks)."""
    rows = await session.scalars(
        text(
            "SELECT lead_id FROM leads WHERE merged_into IS NULL "
            "AND (CAST(:after AS uuid) IS NULL OR lead_id > :after) ORDER BY lead_id LIMIT :limit"
        ),
        {"after": after, "limit": limit},
    )
    return list(rows.all())
