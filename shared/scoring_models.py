"""Scoring tables: rule-set versions, each lead's score ledger and stage history, accounts, rescore jobs."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, Boolean, DateTime, Float, Identity, Index, Integer, Numeric, String, Text, func, text
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from shared.db import Base


class RuleSetVersion(Base):
    """One version of the scoring rules; exactly one is active, drafts can be dry-run first."""

    __tablename__ = "rule_sets"

    version: Mapped[int] = mapped_column(Integer, Identity(start=1), primary_key=True)
    rules: Mapped[dict[str, Any]] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(String(20), server_default=text("'draft'"))  # draft, active, retired
    note: Mapped[str] = mapped_column(Text, server_default=text("''"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    activated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ux_rule_sets_one_active", "status", unique=True, postgresql_where=text("status = 'active'")),
    )


class ScoreLedgerEntry(Base):
    """Which event or trait gave which points when, and what decay removed."""

    __tablename__ = "score_ledger"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    lead_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    rule_set_version: Mapped[int] = mapped_column(Integer)
    rule_id: Mapped[str] = mapped_column(String(80))
    kind: Mapped[str] = mapped_column(String(20))  # behaviour, fit, inactivity, decay
    points: Mapped[float] = mapped_column(Float)
    event_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_score_ledger_lead", "lead_id", "occurred_at"),)


class StageHistory(Base):
    """Every stage change of every lead per funnel model: the input of cycle-time and conversion reports."""

    __tablename__ = "stage_history"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    lead_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    model: Mapped[str] = mapped_column(String(80))
    from_stage: Mapped[str | None] = mapped_column(String(80))
    to_stage: Mapped[str] = mapped_column(String(80))
    kind: Mapped[str] = mapped_column(String(20))  # entry, exit, sales, merge
    reason: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    cause_event_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    rule_set_version: Mapped[int] = mapped_column(Integer)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ix_stage_history_lead", "lead_id", "model", "occurred_at"),
        Index("ix_stage_history_model_stage", "model", "to_stage", "occurred_at"),
    )


class Account(Base):
    """A company (Segment `group`): its buying group's scores rolled up, and the furthest member stage."""

    __tablename__ = "accounts"

    account_id: Mapped[str] = mapped_column(Text, primary_key=True)
    traits: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    score: Mapped[Decimal] = mapped_column(Numeric(14, 4), server_default=text("0"))
    stages: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    member_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class AccountMember(Base):
    __tablename__ = "account_members"

    account_id: Mapped[str] = mapped_column(Text, primary_key=True)
    lead_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    joined_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (Index("ix_account_members_lead", "lead_id"),)


class RescoreJob(Base):
    """Rescoring every lead from history after a rule-set version is activated."""

    __tablename__ = "rescore_jobs"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    rule_set_version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20), server_default=text("'running'"))  # running, done
    emit_changes: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    total: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    done: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    report: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
