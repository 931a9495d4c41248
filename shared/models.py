"""Tables every service reads: sources (write keys), leads and their identities, processed event ids."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import DateTime, Float, ForeignKey, Index, Integer, Numeric, String, Text, func, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from shared.db import Base


class Source(Base):
    """A website, app or shop that sends events, authenticated by its write key (stored hashed)."""

    __tablename__ = "sources"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200))
    write_key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # Active webhook signing secrets, newest first; two during a rotation.
    webhook_secrets: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default=text("'{}'::text[]"))
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
    # Event time of each trait's current value: traits merge last-write-wins per trait by event time.
    trait_times: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    merged_into: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    # Scoring (services/scoring/engine.py): fit and engagement as of engagement_at, the grade, the stage
    # per funnel model, the rest of the engine's state, and when time alone changes something next.
    fit: Mapped[float] = mapped_column(Float, server_default=text("0"))
    engagement: Mapped[float] = mapped_column(Float, server_default=text("0"))
    engagement_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    grade: Mapped[str] = mapped_column(String(2), server_default=text("'D4'"))
    stages: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    score_state: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    next_due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    rule_set_version: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    last_seen_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        Index("ix_leads_anonymous_retention", "updated_at", postgresql_where=text("user_id IS NULL")),
        Index("ix_leads_next_due_at", "next_due_at", postgresql_where=text("next_due_at IS NOT NULL")),
        Index("ix_leads_stage", "stage"),
        Index("ix_leads_rule_set_version", "rule_set_version"),
    )


class LeadIdentity(Base):
    """Every identity a lead is known by: user id, anonymous id, email. One identity, one lead."""

    __tablename__ = "lead_identities"

    kind: Mapped[str] = mapped_column(String(20), primary_key=True)
    value: Mapped[str] = mapped_column(Text, primary_key=True)
    lead_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("leads.lead_id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class LeadMerge(Base):
    """A lead folded into another (identify, alias, shared email): recorded once, never undone."""

    __tablename__ = "lead_merges"

    from_lead_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    into_lead_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), index=True)
    reason: Mapped[str] = mapped_column(String(40))
    cause_event_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    merged_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class LeadEvent(Base):
    """A lead's event history (narrow: no context blob), kept for the configured retention."""

    __tablename__ = "lead_events"

    event_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    lead_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), index=True)
    source_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    type: Mapped[str] = mapped_column(String(20))
    name: Mapped[str | None] = mapped_column(Text)
    properties: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    bot: Mapped[str | None] = mapped_column(String(60))
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ProcessedEvent(Base):
    """Event ids a consumer has applied, written in the same transaction as the effect.

    Idempotence rests on these ids, never on broker offsets: the embedded broker restarts at offset 0.
    """

    __tablename__ = "processed_events"

    consumer: Mapped[str] = mapped_column(String(60), primary_key=True)
    event_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    processed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (Index("ix_processed_events_processed_at", "processed_at"),)


import shared.analytics_models  # noqa: E402, F401
import shared.audience_models  # noqa: E402, F401
import shared.commerce_models  # noqa: E402, F401
import shared.consent_models  # noqa: E402, F401
import shared.console_models  # noqa: E402, F401
import shared.delivery_models  # noqa: E402, F401
import shared.experiments_models  # noqa: E402, F401
import shared.forms_models  # noqa: E402, F401
import shared.predictive_models  # noqa: E402, F401
import shared.referral_models  # noqa: E402, F401
import shared.scoring_models  # noqa: E402, F401 - registers the scoring tables
import shared.sequences_models  # noqa: E402, F401
import shared.templates_models  # noqa: E402, F401
import shared.webhook_models  # noqa: E402, F401 - registers the outgoing webhook tables
