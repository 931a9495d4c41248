"""Admin routes managing outgoing webhook endpoints and showing their deliveries.

An endpoint's signing secret is generated here and shown twice only: on create and on rotate. A
rotation keeps the previous secret signing as a second `v1` for a grace period, so the receiver can
switch at its own pace. Deleting deactivates: pending deliveries are given up, history stays.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, Body, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.admin.api import ERRORS, AdminDep, SessionDep
from services.admin.webhook_secrets import new_webhook_secret
from shared.outbox import ALL_EVENTS, EVENT_TYPES, PING, enqueue_to
from shared.webhook_models import WebhookDelivery, WebhookEndpoint

DeliveryStatus = Literal["pending", "delivered", "failed"]


# -- request and response models ------------------------------------------------------------------


class EndpointCreate(BaseModel):
    url: str = Field(max_length=2048, description="http:// or https:// URL that receives the POSTs")
    description: str = Field(default="", max_length=500)
    event_types: list[str] = Field(
        min_length=1,
        max_length=20,
        description=f"Any of {', '.join(EVENT_TYPES)}, or {ALL_EVENTS!r} for every event type",
    )

    @field_validator("url")
    @classmethod
    def http_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in url):
            raise ValueError("must be an http:// or https:// URL with a host")
        try:
            _ = parts.port
        except ValueError:
            raise ValueError("has an invalid port") from None
        return url

    @field_validator("event_types")
    @classmethod
    def known_event_types(cls, event_types: list[str]) -> list[str]:
        for event_type in event_types:
            if event_type != ALL_EVENTS and event_type not in EVENT_TYPES:
                known = ", ".join([*EVENT_TYPES, ALL_EVENTS])
                raise ValueError(f"unknown event type {event_type!r} (known: {known})")
        return list(dict.fromkeys(event_types))


class EndpointOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    url: str
    description: str
    event_types: list[str]
    active: bool
    created_at: datetime
    previous_secret_expires_at: datetime | None = Field(
        description="Until then the secret before the last rotation signs too (a second v1)"
    )


class EndpointCreated(EndpointOut):
    secret: str = Field(description="Shown once; the receiver verifies FunnelStream-Signature with it")


class SecretRotate(BaseModel):
    previous_secret_valid_seconds: int = Field(
        default=86_400, ge=0, le=7 * 86_400, description="How long the old secret keeps signing; 0 ends it now"
    )


class SecretRotated(BaseModel):
    id: uuid.UUID
    secret: str = Field(description="Shown once")
    previous_secret_expires_at: datetime | None


class DeliveryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    event_type: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    payload: dict[str, object]


class PingQueued(BaseModel):
    delivery_id: uuid.UUID


# -- SQL (the request's transaction commits) ------------------------------------------------------


async def _deactivate(session: AsyncSession, endpoint_id: uuid.UUID) -> WebhookEndpoint | None:
    endpoint = await session.scalar(
        update(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id).values(active=False).returning(WebhookEndpoint)
    )
    if endpoint is not None:
        await session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.endpoint_id == endpoint_id, WebhookDelivery.status == "pending")
            .values(status="failed", last_error="endpoint deactivated")
        )
    return endpoint


async def _rotate(
    session: AsyncSession, endpoint_id: uuid.UUID, secret: str, previous_expires_at: datetime | None
) -> bool:
    """One statement: `previous_secret = secret` reads the value before the update."""
    rotated = await session.scalar(
        update(WebhookEndpoint)
        .where(WebhookEndpoint.id == endpoint_id, WebhookEndpoint.active)
        .values(
            secret=secret,
            previous_secret=WebhookEndpoint.secret if previous_expires_at else None,
            previous_secret_expires_at=previous_expires_at,
        )
        .returning(WebhookEndpoint.id)
    )
    return rotated is not None


# -- routes ---------------------------------------------------------------------------------------


def webhook_endpoints_router() -> APIRouter:
    router = APIRouter(
        prefix="/api/webhook-endpoints", dependencies=[AdminDep], responses=ERRORS, tags=["webhook endpoints"]
    )

    @router.post("", status_code=201, response_model=EndpointCreated)
    async def create_endpoint(body: EndpointCreate, session: SessionDep) -> EndpointCreated:
        """Add an endpoint; its signing secret is in this answer only."""
        endpoint = WebhookEndpoint(
            url=body.url, description=body.description, event_types=body.event_types, secret=new_webhook_secret()
        )
        session.add(endpoint)
        await session.flush()
        await session.refresh(endpoint)
        return EndpointCreated.model_validate(endpoint)

    @router.get("", response_model=list[EndpointOut])
    async def list_endpoints(session: SessionDep) -> list[EndpointOut]:
        """Every endpoint, active ones first, newest first."""
        found = await session.scalars(
            select(WebhookEndpoint).order_by(WebhookEndpoint.active.desc(), WebhookEndpoint.created_at.desc())
        )
        return [EndpointOut.model_validate(e) for e in found]

    @router.delete("/{endpoint_id}", response_model=EndpointOut)
    async def deactivate_endpoint(endpoint_id: uuid.UUID, session: SessionDep) -> EndpointOut:
        """Stop sending to an endpoint: nothing new is queued and pending deliveries are given up."""
        endpoint = await _deactivate(session, endpoint_id)
        if endpoint is None:
            raise HTTPException(404, f"no webhook endpoint {endpoint_id}")
        return EndpointOut.model_validate(endpoint)

    @router.post("/{endpoint_id}/rotate-secret", response_model=SecretRotated)
    async def rotate_secret(
        endpoint_id: uuid.UUID, session: SessionDep, body: Annotated[SecretRotate | None, Body()] = None
    ) -> SecretRotated:
        """New signing secret (shown once); the old one keeps signing for `previous_secret_valid_seconds`."""
        valid = (body or SecretRotate()).previous_secret_valid_seconds
        expires_at = datetime.now(UTC) + timedelta(seconds=valid) if valid else None
        secret = new_webhook_secret()
        if not await _rotate(session, endpoint_id, secret, expires_at):
            raise HTTPException(404, f"no active webhook endpoint {endpoint_id}")
        return SecretRotated(id=endpoint_id, secret=secret, previous_secret_expires_at=expires_at)

    @router.get("/{endpoint_id}/deliveries", response_model=list[DeliveryOut])
    async def list_deliveries(
        endpoint_id: uuid.UUID,
        session: SessionDep,
        status: DeliveryStatus | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> list[DeliveryOut]:
        """Recent deliveries, newest first, with attempts and the last error."""
        if await session.get(WebhookEndpoint, endpoint_id) is None:
            raise HTTPException(404, f"no webhook endpoint {endpoint_id}")
        query = select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id)
        if status is not None:
            query = query.where(WebhookDelivery.status == status)
        found = await session.scalars(query.order_by(WebhookDelivery.created_at.desc()).limit(limit))
        return [DeliveryOut.model_validate(d) for d in found]

    @router.post("/{endpoint_id}/test", status_code=202, response_model=PingQueued)
    async def send_test(endpoint_id: uuid.UUID, session: SessionDep) -> PingQueued:
        """Queue a `ping` to this endpoint whatever it subscribes to; watch it under /deliveries."""
        payload = {"endpoint_id": str(endpoint_id), "message": "ping from FunnelStream"}
        delivery_id = await enqueue_to(session, endpoint_id, PING, payload, uuid.uuid4())
        if delivery_id is None:
            raise HTTPException(404, f"no active webhook endpoint {endpoint_id}")
        return PingQueued(delivery_id=delivery_id)

    return router
