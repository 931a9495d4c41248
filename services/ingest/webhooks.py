"""Signed webhooks: Shopify's, and FunnelStream's own scheme for every other system.

FunnelStream's scheme (the same for webhooks FunnelStream sends): header
``FunnelStream-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "{t}.{raw body}">``. A request passes
when its `t` is within 300 s of the receiver's clock and any `v1` matches any active secret of the
source (two during a rotation; several `v1=` entries are allowed, like Stripe's). `sign` and `verify`
below are pure so that senders and tests use exactly the receiver's rules.

A replay inside the window has no second effect: events without a `messageId` get one derived from
the signed `t` and body, and event ids derive from message ids. Senders that retry with a fresh
signature should send their own `messageId`.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import APIRouter, Request
from prometheus_client import Counter
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.ingest import shopify
from services.ingest.api import (
    EVENT_TYPES,
    MAX_BATCH_BYTES,
    MAX_EVENT_BYTES,
    IngestError,
    StateDep,
    check_rate,
    json_object,
    parse_message,
    publish,
    read_body,
)
from services.ingest.repository import webhook_secrets_for
from services.ingest.schemas import BatchRequest, ErrorBody
from services.ingest.service import build_event
from services.ingest.webhook_schemas import WebhookAccepted
from shared.events import TrackedEvent
from shared.signing import SIGNATURE_HEADER, SignatureHeader, parse_signature, signature_problem

log = logging.getLogger(__name__)

SHOPIFY_MAX_BYTES = 1024 * 1024

WEBHOOKS = Counter("funnelstream_webhooks_total", "Webhook deliveries by provider and outcome", ["provider", "outcome"])


# -- generic webhook bodies -----------------------------------------------------------------------


def generic_events(
    data: dict[str, Any], source_id: uuid.UUID, signed: SignatureHeader, body: bytes, received_at: datetime
) -> list[TrackedEvent]:
    """One Segment-style message or `{"batch": [...]}`; any invalid message refuses the whole delivery (400)."""
    default_ids = hashlib.sha256(f"{signed.t}.".encode() + body).hexdigest()[:32]

    def with_id(item: dict[str, Any], index: int) -> dict[str, Any]:
        return item if item.get("messageId") is not None else {**item, "messageId": f"wh-{default_ids}-{index}"}

    if "batch" not in data:
        event_type = data.get("type")
        if event_type not in EVENT_TYPES:
            raise IngestError(400, f"type: must be one of {', '.join(EVENT_TYPES)}", "type")
        message = parse_message(with_id(data, 0), event_type, signed=True)
        return [build_event(message, event_type, source_id, received_at, None)]
    try:
        envelope = BatchRequest.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise IngestError(400, first["msg"], ".".join(str(p) for p in first["loc"])) from None
    events = []
    for index, item in enumerate(envelope.batch):
        event_type = item.get("type")
        if event_type not in EVENT_TYPES:
            raise IngestError(
                400, f"batch.{index}.type: must be one of {', '.join(EVENT_TYPES)}", f"batch.{index}.type"
            )
        if len(orjson.dumps(item)) > MAX_EVENT_BYTES:
            raise IngestError(400, f"batch.{index}: event exceeds {MAX_EVENT_BYTES // 1024} KB", f"batch.{index}")
        merged = {**with_id(item, index), "context": {**envelope.context, **(item.get("context") or {})}}
        message = parse_message(merged, event_type, where=f"batch.{index}.", signed=True)
        events.append(build_event(message, event_type, source_id, received_at, envelope.sentAt))
    return events


# -- HTTP -----------------------------------------------------------------------------------------


async def active_secrets(request: Request, source_id: uuid.UUID | None) -> list[str]:
    """Read per request, not cached: dropping a secret at the end of a rotation takes effect at once."""
    if source_id is None:
        return []
    maker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    try:
        async with maker() as session:
            return await webhook_secrets_for(session, source_id)
    except (SQLAlchemyError, OSError) as exc:
        log.warning("webhook secret lookup failed: %s: %s", type(exc).__name__, exc)
        raise IngestError(503, "temporarily unavailable, retry later", headers={"Retry-After": "5"}) from None


def source_uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


UNAUTHORIZED = "invalid webhook signature"
RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "Invalid body; `field` names it"},
    401: {"model": ErrorBody, "description": "Missing, expired or wrong signature, or unknown source"},
    413: {"model": ErrorBody, "description": "Body too large"},
    503: {"model": ErrorBody, "description": "The broker did not acknowledge in time; retry"},
}


def webhooks_router() -> APIRouter:
    router = APIRouter(tags=["webhooks"])

    @router.post(
        "/webhooks/shopify/{source_id}",
        response_model=WebhookAccepted,
        response_model_exclude_none=True,
        responses=RESPONSES,
    )
    async def shopify_webhook(source_id: str, request: Request, state: StateDep) -> WebhookAccepted:
        """A Shopify webhook, verified with `X-Shopify-Hmac-Sha256`; unmapped topics are acknowledged and ignored."""
        received_at = datetime.now(UTC)
        raw = await read_body(request, SHOPIFY_MAX_BYTES)
        source = source_uuid(source_id)
        secrets = await active_secrets(request, source)
        if source is None or not shopify.signature_valid(request.headers.get("x-shopify-hmac-sha256"), raw, secrets):
            WEBHOOKS.labels("shopify", "unauthorized").inc()
            raise IngestError(401, UNAUTHORIZED)
        topic = request.headers.get("x-shopify-topic", "")
        if topic not in shopify.TOPICS:
            # Shopify retries any non-2xx answer and eventually deletes the subscription: acknowledge.
            WEBHOOKS.labels("shopify", "ignored_topic").inc()
            log.info("shopify webhook for source %s with unmapped topic %r ignored", source, topic[:100])
            return WebhookAccepted(events=0, ignored=f"topic {topic[:100]!r} is not mapped")
        webhook_id = request.headers.get("x-shopify-webhook-id", "").strip()[:200]
        delivery = shopify.Delivery(
            source_id=source,
            topic=topic,
            # Shopify always sends the id; without it the body itself identifies a redelivery.
            webhook_id=webhook_id or "sha256-" + hashlib.sha256(raw).hexdigest(),
            payload=json_object(raw),
            received_at=received_at,
            shop_domain=request.headers.get("x-shopify-shop-domain", "")[:255] or None,
            api_version=request.headers.get("x-shopify-api-version", "")[:20] or None,
        )
        events = shopify.map_delivery(delivery)
        if events:
            await publish(state, events, "shopify")
        WEBHOOKS.labels("shopify", "accepted").inc()
        return WebhookAccepted(events=len(events))

    @router.post(
        "/webhooks/generic/{source_id}",
        response_model=WebhookAccepted,
        response_model_exclude_none=True,
        responses=RESPONSES,
    )
    async def generic_webhook(source_id: str, request: Request, state: StateDep) -> WebhookAccepted:
        """One Segment-style message or `{"batch": [...]}`, signed with `FunnelStream-Signature`."""
        received_at = datetime.now(UTC)
        raw = await read_body(request, MAX_BATCH_BYTES)
        source = source_uuid(source_id)
        header = request.headers.get(SIGNATURE_HEADER)
        problem = signature_problem(header, raw, await active_secrets(request, source), received_at.timestamp())
        signed = parse_signature(header)
        if problem or source is None or signed is None:
            WEBHOOKS.labels("generic", "unauthorized").inc()
            raise IngestError(401, problem or UNAUTHORIZED)
        events = generic_events(json_object(raw), source, signed, raw, received_at)
        check_rate(state, source, len(events))
        await publish(state, events, "webhook")
        WEBHOOKS.labels("generic", "accepted").inc()
        return WebhookAccepted(events=len(events))

    return router
