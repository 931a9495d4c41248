"""Outgoing webhooks: a transactional outbox and the worker that delivers it.

Whoever causes an event enqueues it in its own transaction (`enqueue`, `enqueue_many`), so an event is
sent if and only if its cause was committed. The worker (`deliver_due`, any number of processes) claims
due rows with `FOR UPDATE SKIP LOCKED`, leases them and commits before POSTing, so no row lock is held
during HTTP; a second short transaction records the outcome. A process dying mid-POST leaves the lease
to expire and the row is tried again: delivery is at least once, receivers dedupe on the delivery id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
from prometheus_client import Counter
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.settings import ScoringSettings
from shared.signing import SIGNATURE_HEADER, sign

log = logging.getLogger(__name__)

EVENT_TYPES: dict[str, str] = {
    "lead.mql": "a lead became a marketing-qualified lead",
    "lead.attention": "a lead needs a salesperson's attention",
    "lead.stage_changed": "a lead moved to another funnel stage",
    "analytics.stalled_leads": "a funnel model's count of stalled leads reached the alert threshold",
}
ALL_EVENTS = "*"
PING = "ping"
EVENT_HEADER = "FunnelStream-Event"
DELIVERY_HEADER = "FunnelStream-Delivery"
BACKOFF_CAP_SECONDS = 3600.0
LEASE_MARGIN_SECONDS = 60.0  # past the POST deadline, before another worker may retry a claimed row
BATCH_LIMIT = 50
ERROR_SNIPPET = 200

ATTEMPTS = Counter("funnelstream_webhook_attempts_total", "Outgoing webhook attempts by outcome", ["outcome"])

Item = tuple[str, dict[str, Any], uuid.UUID]

_ENQUEUE = text(
    "INSERT INTO webhook_deliveries (endpoint_id, event_type, dedup_key, payload) "
    "SELECT e.id, i.event_type, i.dedup_key, CAST(i.payload AS jsonb) "
    "FROM unnest(CAST(:types AS text[]), CAST(:payloads AS text[]), CAST(:keys AS uuid[])) "
    "AS i(event_type, payload, dedup_key) "
    "JOIN webhook_endpoints e ON e.active AND e.event_types && ARRAY[i.event_type, '*'] "
    "ON CONFLICT (endpoint_id, dedup_key) DO NOTHING RETURNING 1"
)
_ENQUEUE_TO = text(
    "INSERT INTO webhook_deliveries (endpoint_id, event_type, dedup_key, payload) "
    "SELECT e.id, :event_type, :dedup_key, CAST(:payload AS jsonb) FROM webhook_endpoints e "
    "WHERE e.id = :endpoint_id AND e.active "
    "ON CONFLICT (endpoint_id, dedup_key) DO NOTHING RETURNING id"
)
_CLAIM = text(
    "WITH due AS (SELECT d.id FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id "
    "WHERE d.status = 'pending' AND d.next_attempt_at <= :now AND e.active "
    "ORDER BY d.next_attempt_at LIMIT :limit FOR UPDATE OF d SKIP LOCKED) "
    "UPDATE webhook_deliveries d SET attempts = d.attempts + 1, next_attempt_at = :lease_until "
    "FROM due, webhook_endpoints e WHERE d.id = due.id AND e.id = d.endpoint_id "
    "RETURNING d.id, d.endpoint_id, d.event_type, d.payload::text AS payload, d.created_at, d.attempts, "
    "e.url, e.secret, e.previous_secret, e.previous_secret_expires_at"
)
# Only the latest claim records: if a lease expired and another worker took the row, its answer counts.
_RECORD = text(
    "UPDATE webhook_deliveries SET status = :status, last_status_code = :code, last_error = :error, "
    "delivered_at = :delivered_at, next_attempt_at = :next_attempt_at "
    "WHERE id = :id AND attempts = :attempts AND status = 'pending'"
)


def _json(payload: dict[str, Any]) -> str:
    return orjson.dumps(payload, default=str).decode()


async def enqueue_many(session: AsyncSession, items: Sequence[Item]) -> int:
    """Queue (event type, payload, dedup key) events for every active endpoint subscribed to each, in one
    statement inside the caller's transaction; returns the deliveries added. A dedup key already queued
    for an endpoint adds nothing, so give each event type of one cause its own key."""
    if not items:
        return 0
    params = {
        "types": [event_type for event_type, _, _ in items],
        "payloads": [_json(payload) for _, payload, _ in items],
        "keys": [key for _, _, key in items],
    }
    return len((await session.execute(_ENQUEUE, params)).all())


async def enqueue(session: AsyncSession, event_type: str, payload: dict[str, Any], dedup_key: uuid.UUID) -> int:
    """Queue one event for every active endpoint subscribed to `event_type`; never commits."""
    return await enqueue_many(session, [(event_type, payload, dedup_key)])


async def enqueue_to(
    session: AsyncSession, endpoint_id: uuid.UUID, event_type: str, payload: dict[str, Any], dedup_key: uuid.UUID
) -> uuid.UUID | None:
    """Queue one event for one endpoint whatever it subscribes to (a `ping`); None if it is not active or
    the dedup key is already queued for it."""
    params = {"endpoint_id": endpoint_id, "event_type": event_type, "payload": _json(payload), "dedup_key": dedup_key}
    found: uuid.UUID | None = (await session.execute(_ENQUEUE_TO, params)).scalar_one_or_none()
    return found


@dataclass(frozen=True)
class DeliveryPolicy:
    timeout_seconds: float = 10.0
    max_attempts: int = 12
    backoff_seconds: float = 10.0
    backoff_cap_seconds: float = BACKOFF_CAP_SECONDS

    @classmethod
    def from_settings(cls, settings: ScoringSettings) -> DeliveryPolicy:
        return cls(settings.webhook_timeout_seconds, settings.webhook_max_attempts, settings.webhook_backoff_seconds)


def retry_delay(attempt: int, base: float, cap: float, jitter: float) -> float:
    """Seconds to wait after failed attempt number `attempt` (1-based): base, 2·base, 4·base … at most
    `cap`, shortened by up to 20 % (`jitter` in [0, 1)) so failed deliveries do not retry in lockstep."""
    nominal = min(cap, base * 2.0 ** min(attempt - 1, 64))
    return nominal * (1.0 - 0.2 * jitter)


def signature(secrets: Sequence[str], body: bytes, t: int) -> str:
    """`FunnelStream-Signature` with one v1 per secret (two while a rotated-out secret is still valid)."""
    return ",".join([f"t={t}", *(sign(secret, body, t).partition(",")[2] for secret in secrets)])


@dataclass(frozen=True)
class _Claimed:
    id: uuid.UUID
    endpoint_id: uuid.UUID
    event_type: str
    payload: str
    created_at: datetime
    attempts: int
    url: str
    secret: str
    previous_secret: str | None
    previous_secret_expires_at: datetime | None

    def secrets(self, now: datetime) -> list[str]:
        expires = self.previous_secret_expires_at
        if self.previous_secret and expires is not None and expires > now:
            return [self.secret, self.previous_secret]
        return [self.secret]


@dataclass(frozen=True)
class _Outcome:
    ok: bool
    status_code: int | None
    error: str | None


def _where(url: str) -> str:
    """Scheme, host and port only: paths and user info often carry the receiver's own tokens."""
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(malformed URL)"
    return f"{parts.scheme}://{parts.hostname}{port}"


async def _post(client: httpx.AsyncClient, row: _Claimed, now: datetime, timeout: float) -> _Outcome:
    body = orjson.dumps(
        {
            "id": str(row.id),
            "type": row.event_type,
            "created_at": row.created_at.astimezone(UTC),
            "data": orjson.Fragment(row.payload),
        }
    )
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: signature(row.secrets(now), body, int(now.timestamp())),
        EVENT_HEADER: row.event_type,
        DELIVERY_HEADER: str(row.id),
    }
    try:
        async with (
            asyncio.timeout(timeout),
            client.stream("POST", row.url, content=body, headers=headers, timeout=timeout) as response,
        ):
            if response.is_success:
                return _Outcome(True, response.status_code, None)
            snippet = b""
            async for chunk in response.aiter_bytes():
                snippet += chunk
                if len(snippet) >= ERROR_SNIPPET:
                    break
            said = snippet[:ERROR_SNIPPET].decode(errors="replace").strip()
            return _Outcome(False, response.status_code, f"HTTP {response.status_code}" + (f": {said}" if said else ""))
    except TimeoutError:
        return _Outcome(False, None, f"no answer within {timeout:g} s")
    except Exception as exc:  # noqa: BLE001 - any failure of one receiver is that delivery's error
        return _Outcome(False, None, f"{type(exc).__name__}: {exc}"[:500])


async def deliver_due(
    sessionmaker: async_sessionmaker[AsyncSession],
    client: httpx.AsyncClient,
    *,
    limit: int,
    now: datetime,
    policy: DeliveryPolicy | None = None,
) -> int:
    """Claim up to `limit` deliveries due at `now`, POST them concurrently and record the outcomes;
    returns how many were attempted. Safe to run in several processes at once."""
    policy = policy or DeliveryPolicy()
    lease_until = now + timedelta(seconds=policy.timeout_seconds + LEASE_MARGIN_SECONDS)
    async with sessionmaker() as session, session.begin():
        result = await session.execute(_CLAIM, {"now": now, "limit": limit, "lease_until": lease_until})
        claimed = [_Claimed(**row) for row in result.mappings()]
    if not claimed:
        return 0
    started = asyncio.get_running_loop().time()
    outcomes = await asyncio.gather(*(_post(client, row, now, policy.timeout_seconds) for row in claimed))
    finished = now + timedelta(seconds=asyncio.get_running_loop().time() - started)
    updates = [_record(row, outcome, finished, policy) for row, outcome in zip(claimed, outcomes, strict=True)]
    async with sessionmaker() as session, session.begin():
        await session.execute(_RECORD, updates)
    return len(claimed)


def _record(row: _Claimed, outcome: _Outcome, finished: datetime, policy: DeliveryPolicy) -> dict[str, Any]:
    update: dict[str, Any] = {
        "id": row.id,
        "attempts": row.attempts,
        "code": outcome.status_code,
        "error": outcome.error,
        "delivered_at": finished if outcome.ok else None,
        "next_attempt_at": finished,
    }
    if outcome.ok:
        ATTEMPTS.labels("delivered").inc()
        return update | {"status": "delivered"}
    where = f"{_where(row.url)} (endpoint {row.endpoint_id})"
    if row.attempts >= policy.max_attempts:
        ATTEMPTS.labels("failed").inc()
        log.warning(
            "webhook %s %s to %s failed for good after %d attempts: status %s, %s",
            row.event_type,
            row.id,
            where,
            row.attempts,
            outcome.status_code,
            outcome.error,
        )
        return update | {"status": "failed"}
    jitter = random.random()  # noqa: S311 - spreads retries, not a secret
    delay = retry_delay(row.attempts, policy.backoff_seconds, policy.backoff_cap_seconds, jitter)
    ATTEMPTS.labels("retry").inc()
    log.warning(
        "webhook %s %s to %s failed (attempt %d of %d): status %s, %s; next try in %.0f s",
        row.event_type,
        row.id,
        where,
        row.attempts,
        policy.max_attempts,
        outcome.status_code,
        outcome.error,
        delay,
    )
    return update | {"status": "pending", "next_attempt_at": finished + timedelta(seconds=delay)}


async def delivery_loop(
    settings: ScoringSettings, sessionmaker: async_sessionmaker[AsyncSession], stop: asyncio.Event
) -> None:
    """Deliver due webhooks every `webhook_poll_seconds` (at once while a backlog remains) until `stop`."""
    policy = DeliveryPolicy.from_settings(settings)
    headers = {"User-Agent": "FunnelStream-Webhooks/1"}
    async with httpx.AsyncClient(headers=headers, follow_redirects=False) as client:
        while not stop.is_set():
            attempted = 0
            try:
                attempted = await deliver_due(
                    sessionmaker, client, limit=BATCH_LIMIT, now=datetime.now(UTC), policy=policy
                )
            except Exception:  # noqa: BLE001 - a database outage must not stop the consumer process
                log.exception("webhook delivery pass failed; next try in %.1f s", settings.webhook_poll_seconds)
            if attempted < BATCH_LIMIT:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), settings.webhook_poll_seconds)
