"""Tables of nurture: sequences and their versions, enrollments, the durable scheduler, audiences."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, DateTime, Identity, Index, Integer, String, Text, func, text
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from shared.db import Base


class Sequence(Base):
    """A marketer's nurture sequence; its steps live in versions, `current_version` is what new leads get."""

    __tablename__ = "sequences"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(Text, server_default=text("''"))
    status: Mapped[str] = mapped_column(String(20), server_default=text("'draft'"))  # draft, active, paused, archived
    message_class: Mapped[str] = mapped_column(String(20), server_default=text("'marketing'"))
    topic: Mapped[str | None] = mapped_column(String(200))
    exempt_from_cap: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    current_version: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class SequenceVersion(Base):
    """An immutable version of a sequence's definition; an enrollment keeps the version it entered with."""

    __tablename__ = "sequence_versions"

    sequence_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    definition: Mapped[dict[str, Any]] = mapped_column(JSONB)
    note: Mapped[str] = mapped_column(Text, server_default=text("''"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Enrollment(Base):
    """A lead inside a sequence: where it is, what it waits for, how it ended."""

    __tablename__ = "enrollments"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    sequence_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    version: Mapped[int] = mapped_column(Integer)
    lead_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    status: Mapped[str] = mapped_column(String(20), server_default=text("'active'"))  # active, completed, exited
    step_index: Mapped[int | None] = mapped_column(Integer)
    steps_taken: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    waiting: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    context: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    cause_event_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    exit_reason: Mapped[str | None] = mapped_column(Text)
    entered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ix_enrollments_lead", "lead_id", "status"),
        Index("ux_enrollments_cause", "sequence_id", "cause_event_id", unique=True),
        Index("ix_enrollments_sequence", "sequence_id", "status"),
    )


class ScheduledStep(Base):
    """The durable scheduler: a step (or a wait's timeout) due at a time. Several nurture processes
    share due rows with FOR UPDATE SKIP LOCKED; a row is done in the transaction that does its work."""

    __tablename__ = "scheduled_steps"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    enrollment_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    step_index: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(20))  # step, timeout
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(20), server_default=text("'due'"))  # due, done, cancelled
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    done_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ix_scheduled_steps_due", "due_at", postgresql_where=text("status = 'due'")),
        Index("ix_scheduled_steps_enrollment", "enrollment_id"),
    )


class EnrollmentLog(Base):
    """What happened to an enrollment, step by step (entered, sent, deferred, branch, exited ...)."""

    __tablename__ = "enrollment_log"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    enrollment_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    step_index: Mapped[int | None] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(30))
    detail: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (Index("ix_enrollment_log_enrollment", "enrollment_id", "id"),)


class NurtureLeadState(Base):
    """Per lead across sequences: when the last marketing message went (the frequency cap)."""

    __tablename__ = "nurture_lead_state"

    lead_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    last_marketing_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AudienceMember(Base):
    """A lead in a named audience (a sequence step or, later, audience rules put it there)."""

    __tablename__ = "audience_members"

    audience: Mapped[str] = mapped_column(String(200), primary_key=True)
    lead_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    removed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
