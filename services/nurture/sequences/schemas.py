"""Request and response models of the sequences API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from services.nurture.sequences.definition import Definition


class SequenceCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    description: str = ""
    message_class: Literal["marketing", "transactional"] = Field(
        default="marketing", description="Transactional mail ignores the frequency cap and marketing consent"
    )
    topic: str | None = Field(default=None, max_length=200, description="Consent topic (list) of its emails")
    exempt_from_cap: bool = Field(default=False, description="Not held back by the cross-sequence frequency cap")
    definition: Definition


class SequenceEdit(BaseModel):
    definition: Definition
    note: str = ""


class VersionOut(BaseModel):
    version: int
    note: str
    created_at: datetime
    definition: dict[str, Any]


class SequenceOut(BaseModel):
    id: uuid.UUID
    name: str
    description: str
    status: str
    message_class: str
    topic: str | None
    exempt_from_cap: bool
    current_version: int
    created_at: datetime
    updated_at: datetime
    enrollments: dict[str, int] = Field(default_factory=dict, description="Enrollments per status")
    steps: dict[str, dict[str, int]] = Field(
        default_factory=dict, description="Per step id: enrollments there now, and what the log records"
    )
    versions: list[VersionOut] = Field(default_factory=list)


class EnrollmentOut(BaseModel):
    id: uuid.UUID
    sequence_id: uuid.UUID
    sequence: str
    version: int
    lead_id: uuid.UUID
    user_id: str | None
    status: str
    step: str | None = Field(description="The step it is at (or waits in)")
    waiting_for: dict[str, Any] | None
    next_due_at: datetime | None
    exit_reason: str | None
    entered_at: datetime
    finished_at: datetime | None
    log: list[dict[str, Any]] = Field(default_factory=list, description="What happened, oldest first")


class DryRun(BaseModel):
    days: int = Field(default=30, ge=1, le=365)
    definition: Definition | None = Field(default=None, description="Default: the current version")


class DryRunOut(BaseModel):
    trigger: str
    days: int
    leads: int = Field(description="Distinct leads whose history matches the trigger in the window")
    sample: list[str] = Field(description="Up to 20 of them (user id, else lead id)")
    note: str
