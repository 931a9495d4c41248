"""Experiment tables: experiments on send steps and split steps, assignments and winner decisions (issue 12)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, DateTime, Float, Index, Integer, String, Text, func, text
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from shared.db import Base


class Experiment(Base):
    """An A/B test on one step (`step_id`) of a sequence: a send step's variants or a split step's paths.

    `variants` is copied from the step when the experiment is created ([{key, weight, template_id?,
    next?}]); `decision` keeps the numbers the winner was chosen on."""

    __tablename__ = "experiments"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    sequence_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    step_id: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(10))
    variants: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    metric: Mapped[str] = mapped_column(String(20))
    goal_event: Mapped[str | None] = mapped_column(Text)
    window_seconds: Mapped[int] = mapped_column(Integer)
    alpha: Mapped[float] = mapped_column(Float)
    min_sample: Mapped[int] = mapped_column(Integer)
    auto_winner: Mapped[bool] = mapped_column(server_default=text("false"))
    status: Mapped[str] = mapped_column(String(10), server_default=text("'running'"))
    winner: Mapped[str | None] = mapped_column(Text)
    decision: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        CheckConstraint("status IN ('running', 'decided', 'stopped')", name="status"),
        CheckConstraint("kind IN ('send', 'path')", name="kind"),
        CheckConstraint("metric IN ('open', 'click', 'conversion', 'revenue')", name="metric"),
        # One live experiment per step: the scheduler routes by it.
        Index(
            "uq_experiments_live_step",
            "sequence_id",
            "step_id",
            unique=True,
            postgresql_where=text("status <> 'stopped'"),
        ),
    )


class ExperimentAssignment(Base):
    """The variant a lead got, recorded at its first exposure (the send queued, or the split taken)."""

    __tablename__ = "experiment_assignments"

    experiment_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    lead_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    variant: Mapped[str] = mapped_column(Text)
    enrollment_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    # "<enrollment>:<step count>" of the exposure: a send experiment's email (email_sends.send_key), or a
    # path experiment's split step (its emails are the enrollment's keys with a higher count).
    send_key: Mapped[str | None] = mapped_column(Text)
    assigned_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_experiment_assignments_experiment_variant", "experiment_id", "variant"),)
