"""Sending each email at most once: a durable claim before the SMTP exchange, the outcome after it.

Per batch: one statement claims every send key (INSERT … ON CONFLICT (send_key) DO NOTHING) and commits;
a key already present was handled before and is never sent again. The messages then go out concurrently
over the mailer's reused connections, retrying errors that happened before the server took a message,
and one statement records the outcomes. A process that dies in between leaves its claims `claimed`
until their lease ends; the sweeper then marks them `unknown` for an operator (sweeper.py).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from prometheus_client import Counter
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from services.nurture.delivery import repository
from services.nurture.delivery.attempts import DeliveryPolicy, deliver, final_status
from services.nurture.delivery.compose import Kind, Prepared, SendRequest, check_request, prepare
from services.nurture.delivery.mail_settings import MailSettings, resolve
from services.nurture.delivery.mailer import Mailer, SendResult
from shared.settings import NurtureSettings

__all__ = [
    "EMAILS",
    "DeliveryPolicy",
    "Kind",
    "SendOutcome",
    "SendRequest",
    "record_outcomes",
    "record_skipped",
    "send_many",
    "send_once",
]

log = logging.getLogger(__name__)
EMAILS = Counter("funnelstream_emails_total", "Email sends by final outcome", ["status"])


@dataclass(frozen=True)
class SendOutcome:
    """What became of a request. `duplicate`: the key was handled before (or earlier in the same batch) and
    nothing was sent now; `status` is then that earlier send's status, possibly still `claimed`."""

    send_id: uuid.UUID
    send_key: str
    status: str
    duplicate: bool = False
    message_id: str | None = None
    error: str | None = None
    attempts: int = 0


async def record_outcomes(
    sessionmaker: async_sessionmaker[AsyncSession], outcomes: Sequence[repository.Outcome]
) -> None:
    """Write outcomes, retrying while the database is unreachable (else the sweeper calls them unknown)."""
    retrying = AsyncRetrying(
        stop=stop_after_attempt(6),
        wait=wait_exponential(multiplier=0.2, max=5),
        retry=retry_if_exception_type((DBAPIError, OSError)),
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            async with sessionmaker() as session, session.begin():
                await repository.record(session, outcomes)
    for outcome in outcomes:
        EMAILS.labels(outcome.status).inc()


@dataclass
class _Batch:
    prepared: list[Prepared] = field(default_factory=list)
    ids: dict[str, uuid.UUID] = field(default_factory=dict)


async def send_many(
    sessionmaker: async_sessionmaker[AsyncSession],
    mailer: Mailer,
    settings: NurtureSettings,
    requests: Sequence[SendRequest],
    *,
    now: datetime | None = None,
) -> list[SendOutcome]:
    """Send a batch, each key at most once ever: claim all in one statement, send concurrently over the
    mailer's connections, record all in one statement. Outcomes come back in the order of `requests`."""
    if not requests:
        return []
    for request in requests:
        check_request(request)
    now = now or datetime.now(UTC)
    policy = DeliveryPolicy.from_settings(settings)
    firsts: dict[str, SendRequest] = {}
    for request in requests:
        firsts.setdefault(request.send_key, request)
    async with sessionmaker() as session, session.begin():
        # Keys handled before are not built again: a replayed batch costs one query.
        known = await repository.existing_keys(session, firsts)
        todo = [r for key, r in firsts.items() if key not in known]
        rows = await repository.mail_settings_rows(session, {r.source_id for r in todo if r.source_id})
    mail: dict[uuid.UUID | None, MailSettings | str] = {}
    for source_id in {r.source_id for r in todo}:
        try:
            mail[source_id] = resolve(rows.get(source_id) if source_id else None, settings)
        except ValueError as exc:
            mail[source_id] = f"mail settings of source {source_id}: {exc}"
    lease_until = now + timedelta(seconds=policy.lease_seconds)
    deadline = policy.deadline()
    batch = _Batch([prepare(r, mail[r.source_id], settings, now, lease_until) for r in todo])
    if batch.prepared:
        async with sessionmaker() as session, session.begin():
            batch.ids = await repository.claim(session, [p.claim for p in batch.prepared])
    # Shielded: a caller cancelled mid-batch still gets what went out recorded (else the sweeper calls it unknown).
    done = await asyncio.shield(_send_claimed(sessionmaker, mailer, policy, batch, deadline))
    missing = [key for key in firsts if key not in done]
    if missing:
        async with sessionmaker() as session:
            rows_by_key = await repository.by_keys(session, missing)
        for key, row in rows_by_key.items():
            done[key] = SendOutcome(row.id, key, row.status, True, row.message_id, row.error, row.attempts)
    outcomes, seen = [], set()
    for request in requests:
        outcome = done[request.send_key]
        if request.send_key in seen:
            outcome = replace(outcome, duplicate=True)
        seen.add(request.send_key)
        outcomes.append(outcome)
    return outcomes


async def _send_claimed(
    sessionmaker: async_sessionmaker[AsyncSession],
    mailer: Mailer,
    policy: DeliveryPolicy,
    batch: _Batch,
    deadline: float,
) -> dict[str, SendOutcome]:
    """Send what this call claimed and record it; the outcomes by key."""
    done: dict[str, SendOutcome] = {}
    claimed = [p for p in batch.prepared if p.request.send_key in batch.ids]
    for p in claimed:
        if p.message is None:
            EMAILS.labels("failed").inc()
            key = p.request.send_key
            done[key] = SendOutcome(batch.ids[key], key, "failed", False, p.claim.message_id, p.claim.error, 0)
    sending = [p for p in claimed if p.message is not None]

    async def one(p: Prepared) -> tuple[SendResult, int, datetime]:
        assert p.message is not None  # noqa: S101 - filtered above
        result, attempts = await deliver(mailer, policy, p.message, deadline)
        return result, attempts, datetime.now(UTC)

    results = await asyncio.gather(*(one(p) for p in sending))
    outcomes = []
    for p, (result, attempts, finished) in zip(sending, results, strict=True):
        key = p.request.send_key
        status, error = final_status(result, attempts)
        sent_at = finished if status == "sent" else None
        outcomes.append(repository.Outcome(batch.ids[key], status, attempts, error, sent_at))
        done[key] = SendOutcome(batch.ids[key], key, status, False, p.claim.message_id, error, attempts)
        if status != "sent":
            log.warning("email %s (%s) %s: %s", batch.ids[key], p.claim.message_id, status, error)
    await record_outcomes(sessionmaker, outcomes)
    return done


async def send_once(
    sessionmaker: async_sessionmaker[AsyncSession],
    mailer: Mailer,
    settings: NurtureSettings,
    request: SendRequest,
    *,
    now: datetime | None = None,
) -> SendOutcome:
    """Send one email at most once under its key: the claim commits before SMTP, the outcome after.
    A key seen before returns that send's status (`duplicate=True`) and sends nothing."""
    (outcome,) = await send_many(sessionmaker, mailer, settings, [request], now=now)
    return outcome


async def record_skipped(
    session: AsyncSession,
    send_key: str,
    reason: str,
    *,
    lead_id: uuid.UUID | None = None,
    to_email: str | None = None,
    kind: Kind = "marketing",
    source_id: uuid.UUID | None = None,
    template_id: str | None = None,
    template_version: int | None = None,
    topic: str | None = None,
) -> bool:
    """Account for a due send that must not go out (no consent, no address…) as `suppressed` with the reason,
    in the caller's transaction; False if the key was already handled (its row is left as it is)."""
    found = await repository.insert_skipped(
        session,
        send_key,
        reason,
        lead_id=lead_id,
        to_email=to_email,
        kind=kind,
        source_id=source_id,
        template_id=template_id,
        template_version=template_version,
        topic=topic,
    )
    if found is not None:
        EMAILS.labels("suppressed").inc()
    return found is not None
