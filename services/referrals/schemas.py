"""Request and response models of the referrals API."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field


class ReferralCodeOut(BaseModel):
    code: str = Field(description="Share it: an event of another lead with `referral_code` set to it is a referral")
    lead_id: uuid.UUID
    user_id: str | None


class ReferredLead(BaseModel):
    lead_id: uuid.UUID
    user_id: str | None
    code: str
    event: str = Field(description="The event that brought the code, e.g. Signed Up")
    occurred_at: datetime


class ReferrerOut(BaseModel):
    lead_id: uuid.UUID
    user_id: str | None


class LeadReferrals(BaseModel):
    lead_id: uuid.UUID
    user_id: str
    code: str | None = Field(description="The lead's own code; issued when it first buys")
    referred: list[ReferredLead] = Field(description="Leads this lead brought, oldest first")
    referred_by: ReferrerOut | None = Field(description="Who brought this lead, if anyone")
