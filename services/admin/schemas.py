"""Request and response models of the admin API."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class SourceCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200, description="What sends the events, e.g. 'website'")


class SourceCreated(BaseModel):
    id: uuid.UUID
    name: str
    write_key: str = Field(description="Shown once; only its hash is stored")


class SourceOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    created_at: datetime
    revoked_at: datetime | None


class LeadOut(BaseModel):
    """A lead with its score decayed to the time of the request (`scored_at`)."""

    model_config = ConfigDict(from_attributes=True)

    lead_id: uuid.UUID
    user_id: str | None
    anonymous_id: str | None
    email: str | None
    score: Decimal = Field(description="fit + engagement, engagement decayed to `scored_at`; 4 decimals")
    fit: Decimal = Field(default=Decimal(0), description="Points for who the lead is (never decays)")
    engagement: Decimal = Field(default=Decimal(0), description="Behaviour points decayed to `scored_at`")
    grade: str = Field(default="D4", description="Fit letter A-D and engagement digit 1-4 at `scored_at`")
    stage: str = Field(description="Stage in the primary funnel model")
    stages: dict[str, str] = Field(default_factory=dict, description="Stage per funnel model")
    traits: dict[str, Any]
    last_seen_at: datetime | None = None
    rule_set_version: int = Field(default=0, description="Rule-set version the lead was last scored under")
    scored_at: datetime | None = Field(default=None, description="The time score, engagement and grade are for")
    created_at: datetime
    updated_at: datetime


class LeadList(BaseModel):
    leads: list[LeadOut]
    next: str | None = Field(default=None, description="Cursor for the next page (`after=`); null on the last")


class Problem(BaseModel):
    error: str
    field: str | None = None
