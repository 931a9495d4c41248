"""Tables of nurture: consent and subscriptions, suppressions, feedback, erasure tombstones.

Subscription rows are keyed by lead, not by live lead: a lead folded into another keeps its rows and
readers gather the rows of every lead folded into the live one (services/nurture/consent/repository.py).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from shared.db import Base

_STATUSES = "'subscribed', 'pending', 'unsubscribed', 'bounced', 'complained'"
_METHODS = "'single', 'double', 'import', 'shopify', 'api', 'link', 'feedback', 'admin'"


class Subscription(Base):
    """A lead's current consent for everything (topic `*`) or one topic."""

    __tablename__ = "subscriptions"

    lead_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    topic: Mapped[str] = mapped_column(String(80), primary_key=True)
    status: Mapped[str] = mapped_column(String(20))
    method: Mapped[str] = mapped_column(String(20))
    consent_text: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str | None] = mapped_column(Text)
    ip: Mapped[str | None] = mapped_column(String(64))
    # When the person expressed it (event time); an older statement never overrides a newer one.
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint(f"status IN ({_STATUSES})", name="status"),
        CheckConstraint(f"method IN ({_METHODS})", name="method"),
    )


class ConsentChange(Base):
    """Every applied consent change, never updated or deleted except by an erasure: who, what, when."""

    __tablename__ = "consent_changes"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    lead_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    topic: Mapped[str] = mapped_column(String(80))
    previous_status: Mapped[str | None] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20))
    method: Mapped[str] = mapped_column(String(20))
    consent_text: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str | None] = mapped_column(Text)
    ip: Mapped[str | None] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(80))  # unsubscribe-link, preferences, admin, import, feedback:ses, ...
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (Index("ix_consent_changes_lead", "lead_id", "recorded_at"),)


class Suppression(Base):
    """An address nothing (bounced, complained) or no marketing (unsubscribed, manual) goes to, lead or not."""

    __tablename__ = "suppressions"

    email: Mapped[str] = mapped_column(Text, primary_key=True)  # lower-cased
    reason: Mapped[str] = mapped_column(String(20))
    source: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (CheckConstraint("reason IN ('bounced', 'complained', 'unsubscribed', 'manual')", name="reason"),)


class EmailFeedback(Base):
    """A bounce, complaint or unsubscribe reported by a mail provider, once per provider event id."""

    __tablename__ = "email_feedback"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    dedup_key: Mapped[str] = mapped_column(String(200), unique=True)
    provider: Mapped[str] = mapped_column(String(20))  # funnelstream, ses, sendgrid, postmark
    email: Mapped[str] = mapped_column(Text, index=True)
    kind: Mapped[str] = mapped_column(String(20))  # bounce, complaint, unsubscribe
    bounce_type: Mapped[str | None] = mapped_column(String(10))  # hard, soft
    message_id: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[str | None] = mapped_column(Text)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ErasureTombstone(Base):
    """What is left of an erased person: hashes of their identities, so no replay can bring them back."""

    __tablename__ = "erasure_tombstones"

    identity_hash: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256("kind:value")
    kind: Mapped[str] = mapped_column(String(20))
    erasure_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), index=True)
    erased_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class SourceConsentSettings(Base):
    """Per source: whether leads from it may get marketing without an opt-in until they opt out."""

    __tablename__ = "source_consent_settings"

    source_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("sources.id", ondelete="CASCADE"), primary_key=True
    )
    opt_out_regime: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ConsentTopic(Base):
    """A topic people can subscribe to and leave on the preference page."""

    __tablename__ = "consent_topics"

    topic: Mapped[str] = mapped_column(String(80), primary_key=True)
    label: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text, server_default=text("''"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
