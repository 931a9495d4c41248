"""Tables every service reads: sources (write keys), leads and their identities, processed event ids."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import DateTime, ForeignKey, Index, Numeric, String, Text, func, text
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from shared.db import Base


class Source(Base):
    """A website, app or shop that sends events, authenticated by its write key (stored hashed)."""

    __tablename__ = "sources"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200))
    write_key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Lead(Base):
    """A person, known or anonymous. Kept narrow: hot rows are updated on every event batch."""

    __tablename__ = "leads"

    lead_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    user_id: Mapped[str | None] = mapped_column(Text, unique=True)
    anonymous_id: Mapped[str | None] = mapped_column(Text)
    email: Mapped[str | None] = mapped_column(Text, index=True)
    score: Mapped[Decimal] = mapped_column(Numeric(14, 4), server_default=text("0"))
    stage: Mapped[str] = mapped_column(String(40), server_default=text("'visitor'"))
    traits: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class LeadIdentity(Base):
    """Every identity a lead is known by: user id, anonymous id, email. One identity, one lead."""

    __tablename__ = "lead_identities"

    kind: Mapped[str] = mapped_column(String(20), primary_key=True)
    value: Mapped[str] = mapped_column(Text, primary_key=True)
    lead_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("leads.lead_id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ProcessedEvent(Base):
    """Event ids a consumer has applied, written in the same transaction as the effect.

    Idempotence rests on these ids, never on broker offsets: the embedded broker restarts at offset 0.
    """

    __tablename__ = "processed_events"

    consumer: Mapped[str] = mapped_column(String(60), primary_key=True)
    event_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    processed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (Index("ix_processed_events_processed_at", "processed_at"),)
