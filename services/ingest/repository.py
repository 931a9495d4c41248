"""SQL for ingest: write key → source, cached briefly so the hot path rarely touches the database."""

from __future__ import annotations

import time
import uuid

from sqlalchemy import select, text
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


async def webhook_secrets_for(session: AsyncSession, source_id: uuid.UUID) -> list[str]:
    """The active webhook signing secrets of a source, newest first; none for an unknown or revoked source."""
    row = await session.execute(
        select(Source.webhook_secrets).where(Source.id == source_id, Source.revoked_at.is_(None))
    )
    return list(row.scalar_one_or_none() or [])


async def push_webhook_secret(session: AsyncSession, source_id: uuid.UUID, secret: str) -> list[str] | None:
    """Make `secret` the newest active secret and keep one previous (rotation); None if no active source.

    One statement, so two concurrent rotations cannot leave three secrets active.
    """

    row = await session.execute(
        text(
            "UPDATE sources SET webhook_secrets = "
            "(array_prepend(CAST(:secret AS text), array_remove(webhook_secrets, CAST(:secret AS text))))[1:2] "
            "WHERE id = :id AND revoked_at IS NULL RETURNING webhook_secrets"
        ),
        {"id": source_id, "secret": secret},
    )
    secrets = row.scalar_one_or_none()
    return None if secrets is None else list(secrets)


async def drop_previous_webhook_secret(session: AsyncSession, source_id: uuid.UUID) -> list[str] | None:
    """Keep only the newest secret (end of a rotation); None if no active source."""

    row = await session.execute(
        text(
            "UPDATE sources SET webhook_secrets = webhook_secrets[1:1] "
            "WHERE id = :id AND revoked_at IS NULL RETURNING webhook_secrets"
        ),
        {"id": source_id},
    )
    secrets = row.scalar_one_or_none()
    return None if secrets is None else list(secrets)
