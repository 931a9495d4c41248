"""Admin routes rotating a source's webhook signing secrets.

Rotation: create a new secret (it becomes the newest; the previous one stays valid), move the sender
to it, then drop the previous one. At most two secrets are active; a secret is shown only once.
Secrets are stored as given, not hashed: verifying an HMAC needs the secret itself.
"""

from __future__ import annotations

import secrets
import uuid
from typing import Annotated

from fastapi import APIRouter, Body, HTTPException
from pydantic import BaseModel, Field

from services.admin.api import ERRORS, AdminDep, SessionDep
from services.ingest.repository import drop_previous_webhook_secret, push_webhook_secret


class WebhookSecretCreate(BaseModel):
    secret: str | None = Field(
        default=None,
        min_length=16,
        max_length=256,
        pattern=r"^[\x21-\x7e]+$",
        description="A secret the sender issued (e.g. the Shopify app's client secret); omit to generate one",
    )


class WebhookSecretCreated(BaseModel):
    source_id: uuid.UUID
    secret: str = Field(description="Shown once; configure the sender with it")
    active_secrets: int = Field(description="1, or 2 while the previous secret is still accepted")


class WebhookSecrets(BaseModel):
    source_id: uuid.UUID
    active_secrets: int


def new_webhook_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def webhook_secrets_router() -> APIRouter:
    router = APIRouter(prefix="/api", dependencies=[AdminDep], responses=ERRORS, tags=["sources"])

    @router.post("/sources/{source_id}/webhook-secrets", status_code=201, response_model=WebhookSecretCreated)
    async def create_webhook_secret(
        source_id: uuid.UUID,
        session: SessionDep,
        body: Annotated[WebhookSecretCreate | None, Body()] = None,
    ) -> WebhookSecretCreated:
        """Add a signing secret as the newest; the previous one stays valid until dropped, older ones end now."""
        secret = (body.secret if body else None) or new_webhook_secret()
        active = await push_webhook_secret(session, source_id, secret)
        if active is None:
            raise HTTPException(404, f"no active source {source_id}")
        return WebhookSecretCreated(source_id=source_id, secret=secret, active_secrets=len(active))

    @router.delete("/sources/{source_id}/webhook-secrets/previous", response_model=WebhookSecrets)
    async def drop_previous_secret(source_id: uuid.UUID, session: SessionDep) -> WebhookSecrets:
        """End a rotation: only the newest secret stays valid. Repeating it changes nothing."""
        active = await drop_previous_webhook_secret(session, source_id)
        if active is None:
            raise HTTPException(404, f"no active source {source_id}")
        return WebhookSecrets(source_id=source_id, active_secrets=len(active))

    return router
