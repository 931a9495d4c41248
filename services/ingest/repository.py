"""SQL for ingest: write key → source, cached briefly so the hot path rarely touches the database."""

from __future__ import annotations

import time
import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.models import Source
from shared.security import hash_write_key


class SourceCache:
    """Maps write keys to source ids; a revoked key stops working within `ttl` seconds."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], ttl: float = 10.0) -> None:
        self._sessionmaker = sessionmaker
        self._ttl = ttl
        self._entries: dict[str, tuple[uuid.UUID | None, float]] = {}

    async def source_for(self, write_key: str) -> uuid.UUID | None:
        digest = hash_write_key(write_key)
        now = time.monotonic()
        hit = self._entries.get(digest)
        if hit and hit[1] > now:
            return hit[0]
        async with self._sessionmaker() as session:
            source_id = await find_active_source(session, digest)
        if len(self._entries) > 10_000:
            self._entries.clear()
        self._entries[digest] = (source_id, now + self._ttl)
        return source_id


async def find_active_source(session: AsyncSession, write_key_hash: str) -> uuid.UUID | None:
    row = await session.execute(
        select(Source.id).where(Source.write_key_hash == write_key_hash, Source.revoked_at.is_(None))
    )
    return row.scalar_one_or_none()
