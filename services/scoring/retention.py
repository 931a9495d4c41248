"""Retention: never-identified anonymous leads, old event history, and expired dedup ids.

Anonymous visitors who never identify would otherwise grow the database without end (a Mautic
complaint). Deletes run in bounded chunks so they never hold long locks, under an advisory lock so
that one of many scoring processes does the work at a time.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.settings import ScoringSettings

log = logging.getLogger(__name__)

CHUNK = 5000
LOCK_KEY = 7315527


@dataclass(frozen=True)
class RetentionResult:
    anonymous_leads: int = 0
    events: int = 0
    processed_ids: int = 0


async def _chunked(session: AsyncSession, sql: str, cutoff: datetime) -> int:
    total = 0
    while True:
        deleted = len((await session.execute(text(sql), {"cutoff": cutoff, "chunk": CHUNK})).all())
        total += deleted
        if deleted < CHUNK:
            return total


async def apply_retention(
    sessionmaker: async_sessionmaker[AsyncSession], settings: ScoringSettings, now: datetime
) -> RetentionResult | None:
    """One retention pass; None when another process holds the retention lock. Each statement returns
    one row per deleted row, so the counts are exact."""
    async with sessionmaker() as session, session.begin():
        if not await session.scalar(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": LOCK_KEY}):
            return None
        anonymous = events = 0
        if settings.anonymous_retention_days:
            cutoff = now - timedelta(days=settings.anonymous_retention_days)
            anonymous = await _chunked(
                session,
                "WITH gone AS (DELETE FROM leads WHERE lead_id IN (SELECT lead_id FROM leads WHERE user_id IS NULL "
                "AND email IS NULL AND merged_into IS NULL AND updated_at < :cutoff LIMIT :chunk) RETURNING lead_id), "
                "history AS (DELETE FROM lead_events WHERE lead_id IN (SELECT lead_id FROM gone)), "
                "folded AS (DELETE FROM leads WHERE merged_into IN (SELECT lead_id FROM gone)) "
                "SELECT 1 FROM gone",
                cutoff,
            )
        if settings.event_retention_days:
            cutoff = now - timedelta(days=settings.event_retention_days)
            events = await _chunked(
                session,
                "DELETE FROM lead_events WHERE event_id IN "
                "(SELECT event_id FROM lead_events WHERE occurred_at < :cutoff LIMIT :chunk) RETURNING 1",
                cutoff,
            )
        processed = await _chunked(
            session,
            "DELETE FROM processed_events WHERE (consumer, event_id) IN (SELECT consumer, event_id "
            "FROM processed_events WHERE processed_at < :cutoff LIMIT :chunk) RETURNING 1",
            now - timedelta(hours=settings.dedup_window_hours),
        )
    result = RetentionResult(anonymous, events, processed)
    if anonymous or events or processed:
        log.info("retention removed %s", result)
    return result


async def retention_loop(sessionmaker: async_sessionmaker[AsyncSession], settings: ScoringSettings) -> None:
    """Apply retention every `retention_interval_seconds` until cancelled; failures are logged, not fatal."""
    while True:
        try:
            await apply_retention(sessionmaker, settings, datetime.now(UTC))
        except Exception:  # noqa: BLE001 - retention must never stop the consumer
            log.exception("retention pass failed; next try in %.0fs", settings.retention_interval_seconds)
        await asyncio.sleep(settings.retention_interval_seconds)
