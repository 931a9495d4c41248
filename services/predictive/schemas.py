"""Requests and answers of the predictive scoring API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class TrainRequest(BaseModel):
    """A training run; anything left out comes from the FUNNELSTREAM_PREDICTIVE_* settings."""

    model_config = ConfigDict(extra="forbid")

    funnel_model: str | None = Field(default=None, max_length=80, description="Default: the primary funnel model")
    target_stage: str | None = Field(default=None, max_length=80, examples=["customer"])
    horizon_days: float | None = Field(default=None, gt=0, le=3650)
    min_positives: int | None = Field(default=None, ge=1)
    confidence: float | None = Field(default=None, gt=0.5, lt=1)


class ModelRun(BaseModel):
    """One training run: what it learnt on, how it did against the rules, and what was decided."""

    model_config = ConfigDict(from_attributes=True)

    version: int
    funnel_model: str
    target_stage: str
    horizon_days: float
    status: str = Field(description="active, retired (was active), rolled_back, or rejected (never activated)")
    decision: str = Field(description="activate or reject")
    reason: str
    metrics: dict[str, Any] = Field(
        description="train/test sizes and positives; model and rules AUC, precision at the top decile; "
        "model calibration (brier, reliability bins); auc_gain_lower_bound; strongest features"
    )
    params: dict[str, Any]
    rule_set_version: int
    trained_at: datetime
    activated_at: datetime | None


class RollbackOut(BaseModel):
    funnel_model: str
    rolled_back: int = Field(description="The version that was active")
    active: int | None = Field(description="The version active now (the one before), or null: no model")


class TopFeature(BaseModel):
    feature: str
    value: float = Field(description="The lead's feature value (counts are log1p)")
    contribution: float = Field(description="Coefficient × standardised value, in log-odds")
    direction: str = Field(description="raises or lowers")


class LeadPredictionOut(BaseModel):
    funnel_model: str
    probability: float = Field(description="Calibrated probability of reaching the model's target stage in time")
    model_version: int
    top_features: list[TopFeature]
    predicted_at: datetime = Field(description="Event time the prediction is as of (the lead's latest event)")
