"""Request and response models of the experiments API."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

Metric = Literal["open", "click", "conversion", "revenue"]


class ExperimentCreate(BaseModel):
    """An experiment on a sequence step: a send step with `variants`, or a `split` step."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    sequence_id: uuid.UUID
    step_id: str = Field(min_length=1, max_length=80)
    metric: Metric = Field(description="open and click exclude bots; conversion needs goal_event; revenue sums it")
    goal_event: str | None = Field(
        default=None,
        max_length=200,
        validate_default=True,
        description="conversion: the event; revenue: default Order Completed",
    )
    window: timedelta = Field(
        default=timedelta(days=7),
        ge=timedelta(seconds=1),
        le=timedelta(days=365),
        description="Outcomes count within this time after the exposure (ISO 8601)",
    )
    alpha: float = Field(default=0.05, ge=0.001, le=0.2, description="The false-winner rate the test keeps")
    min_sample: int = Field(default=100, ge=10, le=10_000_000, description="Exposures per variant before deciding")
    auto_winner: bool = Field(default=False, description="Send remaining traffic to the winner once it is clear")

    @field_validator("goal_event")
    @classmethod
    def _goal(cls, value: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("metric") == "conversion" and not value:
            raise ValueError("a conversion experiment needs the event that counts")
        return value


class Decide(BaseModel):
    model_config = ConfigDict(extra="forbid")

    winner: str = Field(min_length=1, max_length=80, description="The variant that gets the remaining traffic")


class ExperimentOut(BaseModel):
    id: uuid.UUID
    name: str
    sequence_id: uuid.UUID
    step_id: str
    kind: Literal["send", "path"]
    variants: list[dict[str, Any]]
    metric: Metric
    goal_event: str | None
    window_seconds: int
    alpha: float
    min_sample: int
    auto_winner: bool
    status: Literal["running", "decided", "stopped"]
    winner: str | None
    decision: dict[str, Any] | None = Field(description="The numbers the winner was chosen on")
    decided_at: datetime | None
    created_at: datetime


class VariantResult(BaseModel):
    key: str
    weight: float
    template_id: str | None
    next: str | None
    exposures: int = Field(description="Leads exposed (for a send: the email was sent)")
    total: float = Field(description="Leads who opened/clicked/converted, or the revenue")
    rate: float = Field(description="total / exposures: a rate, or revenue per exposed lead")
    ci_low: float = Field(description="95 % interval of the rate (fixed-sample; Wilson for proportions)")
    ci_high: float
    prob_best: float = Field(description="Posterior probability that this variant is best (descriptive)")


class ComparisonOut(BaseModel):
    variant: str
    baseline: str
    difference: float = Field(description="variant rate minus baseline rate")
    interval_low: float = Field(description="Always-valid interval of the difference at 1 - alpha")
    interval_high: float
    likelihood_ratio: float
    p_value: float = Field(description="Always-valid p-value (1 / likelihood ratio)")
    alpha: float = Field(description="The level of this pair (alpha / number of pairs)")
    significant: bool


class ResultsOut(BaseModel):
    experiment: ExperimentOut
    method: str
    variants: list[VariantResult]
    comparisons: list[ComparisonOut]
    min_sample_reached: bool
    leader: str | None = Field(description="The variant the always-valid test would declare the winner now")
