"""The refresh loop of the nurture process: backfill new definitions from the current data, and find
time-driven changes (an event ages out of its window, a cart goes idle) that no stream message announces.

One nurture process at a time does a pass (a transaction-level advisory lock per chunk); each chunk of
leads is evaluated and written in its own transaction, so a large audience never holds a long lock.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.nurture.audiences import membership, repository
from services.nurture.audiences.definition import AudienceDefinition
from services.nurture.audiences.service import LiveAudience
from services.nurture.sequences.repository import live_sequences

log = logging.getLogger(__name__)

LOCK_KEY = 7_1001  # advisory lock of audience refresh passes
CHUNK = 1000


async def _locked(session: AsyncSession) -> bool:
    return bool(await session.scalar(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": LOCK_KEY}))


async def backfill_chunk(sessionmaker: async_sessionmaker[AsyncSession], now: datetime) -> bool:
    """Evaluate the next chunk of leads for one audience still backfilling; False when none is."""
    async with sessionmaker() as session, session.begin():
        if not await _locked(session):
            return False
        row = (
            await session.execute(
                text(
                    "SELECT id, name, definition, backfill_cursor FROM audiences WHERE status = 'active' "
                    "AND backfilled_at IS NULL ORDER BY created_at LIMIT 1 FOR UPDATE"
                )
            )
        ).first()
        if row is None:
            return False
        audience = LiveAudience(row.id, row.name, AudienceDefinition.model_validate(row.definition))
        leads = await repository.lead_page(session, row.backfill_cursor, CHUNK)
        await membership.evaluate(session, [audience], leads, now, "backfill", await live_sequences(session))
        done = len(leads) < CHUNK
        await session.execute(
            text(
                "UPDATE audiences SET backfill_cursor = :c, backfilled_at = :done, refreshed_at = :now WHERE id = :id"
            ),
            {"c": leads[-1] if leads else row.backfill_cursor, "done": now if done else None, "now": now, "id": row.id},
        )
        return True


async def refresh(sessionmaker: async_sessionmaker[AsyncSession], now: datetime) -> int:
    """Re-evaluate, per backfilled audience, the leads whose membership may have changed since its last
    refresh; returns how many changes were written."""
    async with sessionmaker() as session:
        rows = (
            await session.execute(
                text(
                    "SELECT id, name, definition, refreshed_at FROM audiences WHERE status = 'active' "
                    "AND backfilled_at IS NOT NULL ORDER BY name"
                )
            )
        ).all()
        found: list[tuple[LiveAudience, list[uuid.UUID]]] = []
        for row in rows:
            audience = LiveAudience(row.id, row.name, AudienceDefinition.model_validate(row.definition))
            found.append((audience, sorted(await repository.candidates(session, audience, row.refreshed_at, now))))
    changed = 0
    for audience, leads in found:
        for start in range(0, max(len(leads), 1), CHUNK):
            async with sessionmaker() as session, session.begin():
                if not await _locked(session):
                    return changed
                changes = await membership.evaluate(
                    session, [audience], leads[start : start + CHUNK], now, "refresh", await live_sequences(session)
                )
                changed += len(changes.entered) + len(changes.left)
                await session.execute(
                    text("UPDATE audiences SET refreshed_at = :now WHERE id = :id"), {"now": now, "id": audience.id}
                )
    return changed


async def refresh_loop(sessionmaker: async_sessionmaker[AsyncSession], refresh_seconds: float) -> None:
    """Backfill new audiences (chunk after chunk), and refresh every audience every `refresh_seconds`."""
    last = 0.0
    loop = asyncio.get_running_loop()
    while True:
        try:
            if await backfill_chunk(sessionmaker, datetime.now(UTC)):
                continue
            if loop.time() - last >= refresh_seconds:
                last = loop.time()
                await refresh(sessionmaker, datetime.now(UTC))
        except Exception:  # noqa: BLE001 - a database outage must not stop the nurture process
            log.exception("audience refresh failed; retrying")
        await asyncio.sleep(min(1.0, refresh_seconds))
