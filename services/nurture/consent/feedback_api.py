"""Bounce and complaint feedback endpoints on the collection edge: ours, Amazon SES (SNS), SendGrid, Postmark.

Every endpoint names a source (`?source=<id>`) and proves it holds one of the source's webhook secrets
(services/admin/webhook_secrets.py; rotation works the same): ours with the `FunnelStream-Signature`
HMAC of the generic webhook, the providers with the secret itself — as `?token=` (SES, SendGrid) or
HTTP Basic `source id : secret` (Postmark; any of them accepts either). On top of that SES messages are
checked against Amazon's SNS signature (FUNNELSTREAM_SNS_VERIFY_SIGNATURES) and SendGrid's against
its ECDSA signature when FUNNELSTREAM_SENDGRID_VERIFICATION_KEY is set. An SNS subscription is never
confirmed automatically: the SubscribeURL is logged for an operator to open (or confirm in AWS).
Answers: 200 with counts once stored; a retry is harmless (provider event ids dedupe); 503 when the
announcement events could not be published, so the provider retries.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import APIRouter, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.ingest.api import IngestError, IngestState, StateDep, publish, read_body
from services.ingest.webhooks import RESPONSES, WEBHOOKS, active_secrets, source_uuid
from services.nurture.consent.changes import apply_feedback
from services.nurture.consent.feedback import (
    Feedback,
    FeedbackError,
    funnelstream_feedback,
    postmark_feedback,
    sendgrid_feedback,
    ses_feedback,
)
from services.nurture.consent.provider_auth import (
    SignatureUnavailable,
    SnsCertificates,
    crypto_available,
    sendgrid_signature_valid,
    sns_cert_url_allowed,
    sns_signature_valid,
)
from services.nurture.consent.schemas import FeedbackAccepted
from shared.security import same_secret
from shared.signing import SIGNATURE_HEADER, signature_problem

log = logging.getLogger(__name__)

MAX_BYTES = 2 * 1024 * 1024
UNAUTHORIZED = "unknown source or wrong secret"
CERTIFICATES = SnsCertificates()


def credentials(request: Request) -> tuple[str | None, str | None]:
    """(source, secret) from HTTP Basic, else from `?source=` and `?token=`."""
    header = request.headers.get("authorization", "")
    if header[:6].lower() == "basic ":
        try:
            user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise IngestError(401, "malformed Basic authorization header") from None
        return user, password
    return request.query_params.get("source"), request.query_params.get("token")


async def authenticate(request: Request, provider: str) -> uuid.UUID:
    """The source whose webhook secret the request carries; 401 otherwise."""
    given_source, secret = credentials(request)
    source = source_uuid(given_source or "")
    secrets = await active_secrets(request, source)
    if source is None or not secret or not any(same_secret(secret, s) for s in secrets):
        WEBHOOKS.labels(provider, "unauthorized").inc()
        raise IngestError(401, UNAUTHORIZED)
    return source


def parsed_json(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise IngestError(400, "body is not valid JSON") from None


async def store(request: Request, state: IngestState, provider: str, items: list[Feedback]) -> FeedbackAccepted:
    maker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    async with maker() as session, session.begin():
        outcome = await apply_feedback(session, items, datetime.now(UTC))
    events = outcome.events or []
    if events:
        await publish(state, events, f"feedback-{provider}")  # 503 on failure: the provider retries
    WEBHOOKS.labels(provider, "accepted").inc()
    return FeedbackAccepted(received=len(items), new=outcome.new, events=len(events))


def checked(parse: Any, *args: Any) -> list[Feedback]:
    try:
        items: list[Feedback] = parse(*args)
    except FeedbackError as exc:
        raise IngestError(400, str(exc)) from None
    return items


async def verify_sns(state: IngestState, envelope: dict[str, Any]) -> None:
    if not state.settings.sns_verify_signatures:
        return
    if not crypto_available():
        log.error("SNS signatures cannot be verified: install `cryptography` or set SNS_VERIFY_SIGNATURES=false")
        raise IngestError(503, "SNS signature verification is unavailable on this server")
    url = envelope.get("SigningCertURL")
    if not isinstance(url, str) or not sns_cert_url_allowed(url):
        raise IngestError(401, "SigningCertURL is not an Amazon SNS certificate URL")
    try:
        pem = await CERTIFICATES.get(url)
        valid = sns_signature_valid(envelope, pem)
    except SignatureUnavailable as exc:
        raise IngestError(503, f"cannot verify the SNS signature now: {exc}", headers={"Retry-After": "30"}) from None
    if not valid:
        raise IngestError(401, "invalid SNS signature")


def feedback_router() -> APIRouter:
    router = APIRouter(prefix="/v1/email-feedback", tags=["consent (public)"], responses=RESPONSES)

    @router.post("", response_model=FeedbackAccepted, response_model_exclude_none=True)
    async def funnelstream_format(request: Request, state: StateDep) -> FeedbackAccepted:
        """Our format, signed like the generic webhook (`?source=<id>`, `FunnelStream-Signature`): one object
        or a list of `{email, type: bounce|complaint, bounce_type: hard|soft, message_id?, at?}`."""
        now = datetime.now(UTC)
        raw = await read_body(request, MAX_BYTES)
        source = source_uuid(request.query_params.get("source", ""))
        header = request.headers.get(SIGNATURE_HEADER)
        problem = signature_problem(header, raw, await active_secrets(request, source), now.timestamp())
        if problem or source is None:
            WEBHOOKS.labels("email-feedback", "unauthorized").inc()
            raise IngestError(401, problem or UNAUTHORIZED)
        digest = hashlib.sha256(f"{header}.".encode() + raw).hexdigest()
        items = checked(funnelstream_feedback, parsed_json(raw), digest, now)
        return await store(request, state, "funnelstream", items)

    @router.post("/ses", response_model=FeedbackAccepted, response_model_exclude_none=True)
    async def ses(request: Request, state: StateDep) -> FeedbackAccepted:
        """Amazon SES bounce and complaint notifications through an SNS HTTPS subscription to
        `…/v1/email-feedback/ses?source=<id>&token=<webhook secret>` (raw message delivery off)."""
        raw = await read_body(request, MAX_BYTES)
        await authenticate(request, "ses")
        envelope = parsed_json(raw)
        if not isinstance(envelope, dict):
            raise IngestError(400, "body must be an SNS message (a JSON object)")
        await verify_sns(state, envelope)
        kind = envelope.get("Type")
        if kind == "SubscriptionConfirmation":
            log.warning(
                "SNS asks to confirm the subscription of %s to this endpoint; open this URL to confirm: %s",
                str(envelope.get("TopicArn"))[:300],
                str(envelope.get("SubscribeURL"))[:2000],
            )
            note = "subscription confirmation logged; open its SubscribeURL (in the ingest log) to confirm"
            return FeedbackAccepted(received=0, new=0, events=0, note=note)
        if kind == "UnsubscribeConfirmation":
            log.info("SNS unsubscribed %s from this endpoint", str(envelope.get("TopicArn"))[:300])
            return FeedbackAccepted(received=0, new=0, events=0, note="unsubscribe confirmation noted")
        if kind != "Notification" or not isinstance(envelope.get("Message"), str):
            raise IngestError(400, "Type: must be Notification, SubscriptionConfirmation or UnsubscribeConfirmation")
        message = parsed_json(envelope["Message"].encode())
        if not isinstance(message, dict):
            raise IngestError(400, "Message: must be an SES notification (a JSON object)")
        items = checked(ses_feedback, message, datetime.now(UTC))
        return await store(request, state, "ses", items)

    @router.post("/sendgrid", response_model=FeedbackAccepted, response_model_exclude_none=True)
    async def sendgrid(request: Request, state: StateDep) -> FeedbackAccepted:
        """SendGrid's Event Webhook (`?source=<id>&token=<webhook secret>`): bounce, dropped, spamreport,
        unsubscribe and group_unsubscribe events; other events are acknowledged and ignored."""
        raw = await read_body(request, MAX_BYTES)
        await authenticate(request, "sendgrid")
        key = state.settings.sendgrid_verification_key
        if key:
            signature = request.headers.get("x-twilio-email-event-webhook-signature")
            timestamp = request.headers.get("x-twilio-email-event-webhook-timestamp")
            try:
                valid = sendgrid_signature_valid(key, signature, timestamp, raw)
            except SignatureUnavailable as exc:
                log.error("SendGrid signatures cannot be verified: %s", exc)
                raise IngestError(503, "SendGrid signature verification is unavailable on this server") from None
            if not valid:
                WEBHOOKS.labels("sendgrid", "unauthorized").inc()
                raise IngestError(401, "invalid SendGrid signature")
        items = checked(sendgrid_feedback, parsed_json(raw), datetime.now(UTC))
        return await store(request, state, "sendgrid", items)

    @router.post("/postmark", response_model=FeedbackAccepted, response_model_exclude_none=True)
    async def postmark(request: Request, state: StateDep) -> FeedbackAccepted:
        """Postmark's Bounce, SpamComplaint and SubscriptionChange webhooks, with HTTP Basic credentials
        `<source id>:<webhook secret>` in the webhook URL."""
        raw = await read_body(request, MAX_BYTES)
        await authenticate(request, "postmark")
        items = checked(postmark_feedback, parsed_json(raw), datetime.now(UTC))
        return await store(request, state, "postmark", items)

    return router
