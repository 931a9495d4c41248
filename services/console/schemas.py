"""Request and response models of the accounts and audit API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from services.console.service import Role

EMAIL = r"^[^@\s]{1,200}@[^@\s]{1,200}\.[^@\s]{1,50}$"


class UserCreate(BaseModel):
    email: str = Field(max_length=320, pattern=EMAIL)
    role: Role
    name: str = Field(default="", max_length=200)
    password: str | None = Field(
        default=None, min_length=10, max_length=1000, description="Omit to invite instead (no password yet)"
    )


class UserPatch(BaseModel):
    role: Role | None = None
    name: str | None = Field(default=None, max_length=200)
    disabled: bool | None = Field(default=None, description="true signs the user out everywhere and locks them out")
    password: str | None = Field(
        default=None, min_length=10, max_length=1000, description="A new password (a reset); ends the user's sessions"
    )


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    name: str
    role: Role
    created_at: datetime
    disabled_at: datetime | None
    last_login_at: datetime | None


class Me(BaseModel):
    actor: str
    role: Role
    via: str
    user_id: uuid.UUID | None


class InviteCreate(BaseModel):
    email: str = Field(max_length=320, pattern=EMAIL)
    role: Role


class InviteOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    role: Role
    invited_by: str
    created_at: datetime
    expires_at: datetime
    accepted_at: datetime | None
    revoked_at: datetime | None
    user_id: uuid.UUID | None


class InviteCreated(InviteOut):
    accept_url: str = Field(description="The link sent by email; works once, until expires_at")
    send_status: str = Field(description="What became of the invitation email: sent, failed, ...")
    send_error: str | None = None


class TokenCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200, description="What the token is for, e.g. 'nightly export'")


class TokenOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    user_id: uuid.UUID
    name: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class TokenCreated(TokenOut):
    token: str = Field(description="Shown once; only its hash is stored. Send as Authorization: Bearer <token>")


class AuditOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    actor: str
    user_id: uuid.UUID | None
    role: str
    via: str
    kind: str
    method: str
    path: str
    status: int
    request: Any
    before: Any
    after: Any


class AuditList(BaseModel):
    entries: list[AuditOut]
    next: int | None = Field(description="Pass as before_id for the next (older) page")
