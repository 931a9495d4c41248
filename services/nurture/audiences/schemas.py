"""Request and response models of the audiences API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.nurture.audiences.definition import AudienceDefinition


class AudienceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:\- ]+$")
    description: str = ""
    definition: AudienceDefinition


class AudienceEdit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: str | None = None
    definition: AudienceDefinition | None = None


class AudienceOut(BaseModel):
    id: uuid.UUID
    name: str
    description: str
    definition: dict[str, Any]
    status: str
    backfilled_at: datetime | None
    refreshed_at: datetime | None
    members: int
    created_at: datetime
    updated_at: datetime


REQUIRED: dict[str, tuple[str, ...]] = {
    "webhook": ("endpoint_id",),
    "meta": ("audience_id",),
    "google": ("customer_id", "user_list_id"),
}
SECRETS: dict[str, tuple[str, ...]] = {
    "webhook": (),
    "meta": ("access_token",),
    "google": ("access_token", "developer_token"),
}


class DestinationCreate(BaseModel):
    """`config`: webhook {endpoint_id}; meta {audience_id, base_url?}; google {customer_id, user_list_id,
    login_customer_id?, ad_user_data?, ad_personalization? (GRANTED or DENIED: the job's consent), base_url?}.
    `credentials`: meta {access_token}; google {access_token, developer_token}."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["webhook", "meta", "google"]
    name: str = Field(min_length=1, max_length=200)
    config: dict[str, str] = Field(default_factory=dict)
    credentials: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _complete(self) -> DestinationCreate:
        missing = [k for k in REQUIRED[self.kind] if not self.config.get(k)]
        if missing:
            raise ValueError(f"config needs {', '.join(missing)} for {self.kind}")
        missing = [k for k in SECRETS[self.kind] if not self.credentials.get(k)]
        if missing:
            raise ValueError(f"credentials need {', '.join(missing)} for {self.kind}")
        if self.kind == "webhook":
            uuid.UUID(self.config["endpoint_id"])
        for key in ("ad_user_data", "ad_personalization"):
            if self.config.get(key, "GRANTED") not in ("GRANTED", "DENIED"):
                raise ValueError(f"config.{key} must be GRANTED or DENIED")
        return self


class DestinationOut(BaseModel):
    id: uuid.UUID
    audience_id: uuid.UUID
    kind: str
    name: str
    config: dict[str, Any]
    credentials: dict[str, str] = Field(description="Masked: the last 4 characters only")
    active: bool
    status: str
    last_error: str | None
    failures: int
    pending: int
    pushed_count: int
    removed_count: int
    last_attempt_at: datetime | None
    last_synced_at: datetime | None
    next_attempt_at: datetime


class ChangeOut(BaseModel):
    lead_id: uuid.UUID
    change: str
    reason: str
    at: datetime


class CountOut(BaseModel):
    at: datetime
    entered: int
    left: int
    members: int = Field(description="Members at the end of the bucket, from the change log")


class MemberOut(BaseModel):
    lead_id: uuid.UUID
    user_id: str | None
    added_at: datetime
