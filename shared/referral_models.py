"""Referral tables: each customer's referral code and the signups attributed to it (issue 7)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, String, Text, func
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from shared.db import Base


class ReferralCode(Base):
    """A lead's own referral code: one per lead, issued when it buys (or on request through the API)."""

    __tablename__ = "referral_codes"

    lead_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("leads.lead_id", ondelete="CASCADE"), primary_key=True
    )
    code: Mapped[str] = mapped_column(String(40), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Referral(Base):
    """A referred lead (`lead_id`) attributed to the referrer whose code it brought; the first code wins."""

    __tablename__ = "referrals"

    lead_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("leads.lead_id", ondelete="CASCADE"), primary_key=True
    )
    referrer_lead_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("leads.lead_id", ondelete="CASCADE"), index=True
    )
    code: Mapped[str] = mapped_column(String(40))
    event_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    event_name: Mapped[str] = mapped_column(Text)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
