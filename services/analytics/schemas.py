"""Request bodies of the analytics API (reports answer plain JSON documents, described in the README)."""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field


class SpendIn(BaseModel):
    """Money spent on a campaign on a day; leave source and utm out for spend on everything."""

    model_config = ConfigDict(extra="forbid")

    day: date
    amount: Decimal = Field(ge=0, max_digits=14, decimal_places=2)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    source_id: uuid.UUID | None = None
    utm_source: str = Field(default="", max_length=200)
    utm_campaign: str = Field(default="", max_length=200)
    note: str = Field(default="", max_length=500)


class SpendOut(SpendIn):
    id: uuid.UUID


class RateIn(BaseModel):
    """1 `base` = `rate` `quote`, valid from `day` until the next rate of the pair."""

    model_config = ConfigDict(extra="forbid")

    base: str = Field(pattern=r"^[A-Z]{3}$")
    quote: str = Field(pattern=r"^[A-Z]{3}$")
    day: date
    rate: Decimal = Field(gt=0, max_digits=20, decimal_places=10)
