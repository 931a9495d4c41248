"""Request and response models of the consent admin API and the feedback endpoints."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from services.nurture.consent.service import GLOBAL

TOPIC_PATTERN = r"^(\*|[a-z0-9][a-z0-9_.-]{0,79})$"
IdentityBy = Literal["user", "email", "anonymous"]


class DecisionOut(BaseModel):
    allowed: bool
    reason: str


class SubscriptionOut(BaseModel):
    lead_id: uuid.UUID
    topic: str = Field(description=f"{GLOBAL!r} for everything")
    status: str
    method: str
    consent_text: str | None
    source: str | None
    ip: str | None
    changed_at: datetime


class ConsentView(BaseModel):
    lead_id: uuid.UUID
    user_id: str | None
    emails: list[str]
    effective: dict[str, str] = Field(description="Status per topic (`*`: everything) after folding merged leads")
    may_send: dict[str, DecisionOut] = Field(description="transactional, and marketing without a topic, right now")
    subscriptions: list[SubscriptionOut]
    suppressions: list[dict[str, Any]]
    history: list[dict[str, Any]] = Field(description="Every applied change, oldest first")


class ConsentChangeIn(BaseModel):
    topic: str = Field(default=GLOBAL, pattern=TOPIC_PATTERN, description=f"{GLOBAL!r} (everything) or a topic")
    status: Literal["subscribed", "pending", "unsubscribed", "bounced", "complained"]
    method: Literal["single", "double", "import", "shopify", "api", "admin"] = "api"
    consent_text: str | None = Field(default=None, max_length=2000, description="What the person agreed to")
    source: str | None = Field(default=None, max_length=200, description="Where: a form, a shop, a CRM")
    ip: str | None = Field(default=None, max_length=64)
    at: datetime | None = Field(default=None, description="When the person said so; default now")

    @model_validator(mode="after")
    def consent_needs_text(self) -> ConsentChangeIn:
        if self.status in ("subscribed", "pending") and not self.consent_text:
            raise ValueError("consent_text: required for subscribed and pending (what the person agreed to)")
        if self.at is not None and self.at.tzinfo is None:
            raise ValueError("at: must carry a time zone")
        return self


class ConsentUpdate(BaseModel):
    changes: list[ConsentChangeIn] = Field(min_length=1, max_length=100)


class ConsentUpdated(ConsentView):
    changed: list[str] = Field(description="Topics whose status changed (an older or repeated statement does not)")


class SourceConsentSettingsIn(BaseModel):
    opt_out_regime: bool = Field(
        description="Leads of this source without a consent record get marketing until they opt out"
    )


class SourceConsentSettingsOut(SourceConsentSettingsIn):
    source_id: uuid.UUID


class TopicIn(BaseModel):
    label: str = Field(min_length=1, max_length=200, description="Shown on the preference page")
    description: str = Field(default="", max_length=1000)


class TopicOut(TopicIn):
    topic: str


class RejectedRow(BaseModel):
    row: int = Field(description="Row number as a spreadsheet shows it (header: 1)")
    reason: str


class ImportResult(BaseModel):
    dry_run: bool
    rows: int
    accepted: int
    rejected: list[RejectedRow]
    leads_created: int = 0
    leads_updated: int = 0
    consent_statements: int = 0
    consent_changed: int | None = None
    suppressions_written: int | None = None


class ErasureResult(BaseModel):
    erased: bool
    already: bool = Field(default=False, description="The identity was erased before; nothing left to remove")
    erasure_id: uuid.UUID | None = None
    erased_at: datetime | None = None
    tombstones: int = 0
    removed: dict[str, int] = Field(default_factory=dict, description="Rows removed per table")


class FeedbackAccepted(BaseModel):
    received: int = Field(description="Feedback items understood in this delivery")
    new: int = Field(description="Items not seen before (a redelivery counts 0)")
    events: int = Field(description="Unsubscribed / Email Bounced events published")
    note: str | None = None
