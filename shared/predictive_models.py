"""Predictive scoring tables: trained model artifacts, their evaluations and which one is active (issue 10)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Float, Identity, Index, Integer, String, Text, func, text
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from shared.db import Base


class PredictiveModel(Base):
    """One training run per row: its evaluation, the decision and, when fitted, the artifact.

    The artifact is JSON (feature names, standardisation, coefficients, calibration): nothing is
    unpickled, so a row can never run code. At most one model per funnel model is active.
    """

    __tablename__ = "predictive_models"

    version: Mapped[int] = mapped_column(Integer, Identity(start=1), primary_key=True)
    funnel_model: Mapped[str] = mapped_column(String(80))
    target_stage: Mapped[str] = mapped_column(String(80))
    horizon_days: Mapped[float] = mapped_column(Float)
    # active, retired (was active), rejected (never activated), rolled_back
    status: Mapped[str] = mapped_column(String(20))
    decision: Mapped[str] = mapped_column(String(20))  # activate, reject
    reason: Mapped[str] = mapped_column(Text)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    artifact: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    params: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    rule_set_version: Mapped[int] = mapped_column(Integer)
    trained_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    activated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index(
            "ux_predictive_models_one_active",
            "funnel_model",
            unique=True,
            postgresql_where=text("status = 'active'"),
        ),
    )


class LeadPrediction(Base):
    """A lead's latest predicted probability per funnel model, with the features that moved it most.

    Audiences, sequences and reports read predictions here; the scoring consumer writes them once
    per batch for the leads the batch touched.
    """

    __tablename__ = "lead_predictions"

    lead_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    funnel_model: Mapped[str] = mapped_column(String(80), primary_key=True)
    probability: Mapped[float] = mapped_column(Float)
    model_version: Mapped[int] = mapped_column(Integer)
    top_features: Mapped[list[Any]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    predicted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))  # the event time it is as of
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (Index("ix_lead_predictions_model_probability", "funnel_model", "probability"),)
