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
    model_config = ConfigDict(from_attributes=True)

    lead_id: uuid.UUID
    user_id: str | None
    anonymous_id: str | None
    email: str | None
    score: Decimal
    stage: str
    traits: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class LeadList(BaseModel):
    leads: list[LeadOut]


class Problem(BaseModel):
    error: str
    field: str | None = None
