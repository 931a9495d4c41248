"""Rebuild the summaries from history: `stage_history` and `lead_events` (orders), chunk by chunk of leads.

The summary tables and per-lead state are emptied first, then every lead's history goes through the same
`apply_changes` as the live consumer, one transaction per chunk. First-touch utm (`analytics_touches`)
and email engagement have no other history and are kept. Stop the analytics consumers while it runs:
events they apply meanwhile would be counted twice.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.analytics.handlers import AnalyticsHandler, apply_changes
from services.analytics.repository import SUMMARY_TABLES
from services.analytics.summaries import NIL, ORDER_EVENTS
from shared.events import LeadActivity, LeadChange, LeadStageChanged, derived_id
from shared.settings import AnalyticsSettings

Progress = Callable[[int, int, float], None]


@dataclass(frozen=True)
class BackfillResult:
    leads: int
    stage_changes: int
    orders: int
    seconds: float


async def _history(session: AsyncSession, leads: list[uuid.UUID]) -> tuple[list[LeadChange], int, int]:
    changes: list[tuple[datetime, int, LeadChange]] = []
    ids = {"ids": leads}
    seen = await session.execute(
        text(
            "SELECT l.lead_id, coalesce(min(e.occurred_at), l.created_at) AS at FROM leads l "
            "LEFT JOIN lead_events e ON e.lead_id = l.lead_id WHERE l.lead_id = ANY(CAST(:ids AS uuid[])) "
            "GROUP BY l.lead_id, l.created_at"
        ),
        ids,
    )
    for lead_id, at in seen:  # the moment analytics would first have seen the lead
        first = LeadActivity(event_id=derived_id("backfill-seen", lead_id), lead_id=lead_id, name="",
                             source_id=NIL, cause_event_id=NIL, occurred_at=at)  # fmt: skip
        changes.append((at, 0, first))
    stages = await session.execute(
        text(
            "SELECT id, lead_id, model, from_stage, to_stage, kind, reason, rule_set_version, cause_event_id, "
            "occurred_at FROM stage_history WHERE lead_id = ANY(CAST(:ids AS uuid[])) ORDER BY occurred_at, id"
        ),
        ids,
    )
    n_stages = 0
    for r in stages:
        n_stages += 1
        change = LeadStageChanged(
            event_id=derived_id("backfill-stage", r.id), lead_id=r.lead_id, model=r.model, stage=r.to_stage,
            previous_stage=r.from_stage, kind=r.kind, reason=r.reason, rule_set_version=r.rule_set_version,
            cause_event_id=r.cause_event_id, occurred_at=r.occurred_at,
        )  # fmt: skip
        changes.append((r.occurred_at, 1, change))
    orders = await session.execute(
        text(
            "SELECT event_id, lead_id, source_id, name, properties, occurred_at FROM lead_events "
            "WHERE lead_id = ANY(CAST(:ids AS uuid[])) AND name = ANY(CAST(:names AS text[])) AND bot IS NULL "
            "AND type = 'track'"
        ),
        {**ids, "names": sorted(ORDER_EVENTS)},
    )
    n_orders = 0
    for r in orders:
        n_orders += 1
        order = LeadActivity(event_id=r.event_id, lead_id=r.lead_id, name=r.name, properties=r.properties,
                             source_id=r.source_id, cause_event_id=r.event_id, occurred_at=r.occurred_at)  # fmt: skip
        changes.append((r.occurred_at, 1, order))
    changes.sort(key=lambda c: (c[0], c[1]))
    return [c for _, _, c in changes], n_stages, n_orders


async def backfill(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: AnalyticsSettings,
    chunk: int = 500,
    progress: Progress | None = None,
) -> BackfillResult:
    """Empty the summaries and rebuild them from history; `progress(done, total, seconds)` after each chunk."""
    started = time.perf_counter()
    handler = AnalyticsHandler(settings)
    async with sessionmaker() as session, session.begin():
        funnels = await handler.funnels(session)
        await session.execute(text(f"TRUNCATE {', '.join(SUMMARY_TABLES)}"))
        total = int(await session.scalar(text("SELECT count(*) FROM leads WHERE merged_into IS NULL")) or 0)
    done = stage_changes = orders = 0
    last = NIL
    while True:
        async with sessionmaker() as session, session.begin():
            leads = list(
                (
                    await session.scalars(
                        text(
                            "SELECT lead_id FROM leads WHERE merged_into IS NULL AND lead_id > :last "
                            "ORDER BY lead_id LIMIT :chunk"
                        ),
                        {"last": last, "chunk": chunk},
                    )
                ).all()
            )
            if not leads:
                break
            changes, n_stages, n_orders = await _history(session, leads)
            await apply_changes(session, changes, funnels, settings.reporting_currency)
        last = leads[-1]
        done += len(leads)
        stage_changes += n_stages
        orders += n_orders
        if progress is not None:
            progress(done, total, time.perf_counter() - started)
    return BackfillResult(done, stage_changes, orders, time.perf_counter() - started)
