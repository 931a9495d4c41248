"""Retargeting audience tables: definitions, memberships over time, destinations and their sync state (issue 7).

Members themselves live in `audience_members` (shared/sequences_models.py), keyed by the audience's name,
so a rule-based audience and the sequence step `update_audience` share one membership table and the
`audience_joined` trigger works for both.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Identity, Index, Integer, String, Text, func, text
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from shared.db import Base


class Audience(Base):
    """A rule-based audience: who belongs (definition JSON, services/nurture/audiences/definition.py)."""

    __tablename__ = "audiences"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200), unique=True)  # the `audience` of audience_members
    description: Mapped[str] = mapped_column(Text, server_default=text("''"))
    definition: Mapped[dict[str, Any]] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(String(20), server_default=text("'active'"))  # active, archived
    # Backfill from the current data: NULL backfilled_at = still running, from lead ids after the cursor.
    backfill_cursor: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    backfilled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    refreshed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class AudienceChange(Base):
    """A lead entered or left an audience (the API's change log and counts over time)."""

    __tablename__ = "audience_changes"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    audience_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    lead_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    change: Mapped[str] = mapped_column(String(10))  # entered, left
    reason: Mapped[str] = mapped_column(String(40))  # event, refresh, backfill, archived
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ix_audience_changes_audience_at", "audience_id", "at"),
        Index("ix_audience_changes_lead", "lead_id"),
    )


class AudienceDestination(Base):
    """Where an audience goes: a signed webhook endpoint, a Meta Custom Audience, a Google Customer Match
    list. Sync state lives here; `credentials` is never returned in full by the API."""

    __tablename__ = "audience_destinations"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    audience_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), index=True)
    kind: Mapped[str] = mapped_column(String(20))  # webhook, meta, google
    name: Mapped[str] = mapped_column(String(200))
    config: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    credentials: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    active: Mapped[bool] = mapped_column(server_default=text("true"))
    status: Mapped[str] = mapped_column(String(20), server_default=text("'pending'"))  # pending, ok, error
    last_error: Mapped[str | None] = mapped_column(Text)
    failures: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_synced_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    pushed_count: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    removed_count: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class AudienceSyncItem(Base):
    """A membership change waiting to reach a destination. `lead_id` is NULL for a removal queued by an
    erasure: it carries the hashes that were pushed, since the person's rows are gone."""

    __tablename__ = "audience_sync_queue"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    destination_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    op: Mapped[str] = mapped_column(String(10))  # add, remove
    lead_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    hashes: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        Index("ix_audience_sync_queue_destination", "destination_id", "id"),
        Index("ix_audience_sync_queue_lead", "lead_id"),
    )


class AudiencePushed(Base):
    """What a destination was last sent for a lead (SHA-256 hex only): a removal sends exactly these."""

    __tablename__ = "audience_pushed"

    destination_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    lead_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    hashes: Mapped[dict[str, Any]] = mapped_column(JSONB)
    pushed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_audience_pushed_lead", "lead_id"),)
