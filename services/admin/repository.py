"""SQL for the admin API. Repositories never commit; the request boundary does."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from shared.models import Lead, LeadIdentity, Source

IDENTITY_KINDS = {"user_id": "user", "anonymous_id": "anonymous", "email": "email"}


async def add_source(session: AsyncSession, name: str, write_key_hash: str) -> Source:
    source = Source(id=uuid.uuid4(), name=name, write_key_hash=write_key_hash)
    session.add(source)
    await session.flush()
    return source


async def list_sources(session: AsyncSession) -> Sequence[Source]:
    return (await session.scalars(select(Source).order_by(Source.created_at))).all()


async def revoke_source(session: AsyncSession, source_id: uuid.UUID) -> Source | None:
    await session.execute(
        update(Source).where(Source.id == source_id, Source.revoked_at.is_(None)).values(revoked_at=datetime.now(UTC))
    )
    return await session.get(Source, source_id, populate_existing=True)


def known_by(kind: str, value: str) -> ColumnElement[bool]:
    """Leads known by an identity: through the identity table, or the lead's own columns."""
    if kind == "email":
        value = value.strip().lower()
    via_identity = select(LeadIdentity.lead_id).where(
        LeadIdentity.kind == IDENTITY_KINDS[kind], LeadIdentity.value == value
    )
    column = {"user_id": Lead.user_id, "anonymous_id": Lead.anonymous_id, "email": Lead.email}[kind]
    return (Lead.lead_id.in_(via_identity)) | (column == value)


async def leads_by_identity(session: AsyncSession, kind: str, value: str) -> Sequence[Lead]:
    """Live leads known by an identity, oldest first."""
    query = select(Lead).where(known_by(kind, value), Lead.merged_into.is_(None)).order_by(Lead.created_at)
    return (await session.scalars(query)).all()
