"""What an operator decides about sends: resend or drop an `unknown` or `failed` one, send a test email.

A resend is explicit and recorded: a new send with key `resend:<old id>` (so a second click does nothing
more) carries the very same stored message — same bytes, same Message-ID, so a receiver that got the
first copy can tell — and the old send becomes `dropped` with a note naming the new one. Marketing email
is resent only after the consent check passes again: an unsubscribe wins over an operator too.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.nurture.delivery import repository
from services.nurture.delivery.attempts import DeliveryPolicy, deliver, final_status
from services.nurture.delivery.mailer import Mailer
from services.nurture.delivery.message import Outgoing, decompress
from services.nurture.delivery.service import EMAILS, SendOutcome, SendRequest, record_outcomes, send_once
from shared.settings import NurtureSettings

DECIDABLE = ("unknown", "failed")


class SendNotFound(LookupError):
    """No send has this id."""


class SendConflict(Exception):
    """The send is not in a state this decision applies to."""


class ConsentCheck(Protocol):
    async def __call__(
        self, session: AsyncSession, *, lead_id: uuid.UUID | None, to_email: str | None, kind: str, topic: str | None
    ) -> str | None:
        """None when the email may go out now, else the reason it may not."""
        ...


async def resend(
    sessionmaker: async_sessionmaker[AsyncSession],
    mailer: Mailer,
    settings: NurtureSettings,
    send_id: uuid.UUID,
    *,
    consent_check: ConsentCheck | None,
    now: datetime | None = None,
) -> SendOutcome:
    """Send an `unknown` or `failed` send's stored message again as a new send; see the module docstring."""
    now = now or datetime.now(UTC)
    policy = DeliveryPolicy.from_settings(settings)
    key = f"resend:{send_id}"
    async with sessionmaker() as session, session.begin():
        found = await repository.get(session, send_id, lock=True)
        if found is None:
            raise SendNotFound(f"no send {send_id}")
        old, stored = found
        earlier = (await repository.by_keys(session, [key])).get(key)
        if earlier is not None:
            return SendOutcome(
                earlier.id, key, earlier.status, True, earlier.message_id, earlier.error, earlier.attempts
            )
        if old.status not in DECIDABLE:
            raise SendConflict(f"the send is {old.status}; only unknown or failed sends can be resent")
        if stored is None:
            raise SendConflict(f"nothing to resend: the message was never built ({old.error})")
        refusal = None
        if old.kind == "marketing":
            if consent_check is None:
                raise SendConflict("marketing email is resent only after a consent check, and none is configured")
            refusal = await consent_check(
                session, lead_id=old.lead_id, to_email=old.to_email, kind=old.kind, topic=old.topic
            )
        claim = repository.Claim(
            send_key=key,
            lead_id=old.lead_id,
            source_id=old.source_id,
            template_id=old.template_id,
            template_version=old.template_version,
            kind=old.kind,
            topic=old.topic,
            to_email=old.to_email,
            subject=old.subject,
            status="claimed" if refusal is None else "suppressed",
            message_id=old.message_id,
            error=None if refusal is None else f"resend refused: {refusal}",
            raw_message=stored if refusal is None else None,
            claimed_at=now,
            lease_until=now + timedelta(seconds=policy.lease_seconds) if refusal is None else None,
            resend_of=old.id,
        )
        new_id = (await repository.claim(session, [claim]))[key]
        what = "resent" if refusal is None else f"resend refused ({refusal})"
        await repository.decide(session, old.id, f"{what} by an operator as {new_id}")
    if refusal is not None:
        EMAILS.labels("suppressed").inc()
        return SendOutcome(new_id, key, "suppressed", False, old.message_id, claim.error, 0)
    result, attempts = await deliver(mailer, policy, Outgoing.from_bytes(decompress(stored)), policy.deadline())
    status, error = final_status(result, attempts)
    sent_at = datetime.now(UTC) if status == "sent" else None
    await record_outcomes(sessionmaker, [repository.Outcome(new_id, status, attempts, error, sent_at)])
    return SendOutcome(new_id, key, status, False, old.message_id, error, attempts)


async def drop(sessionmaker: async_sessionmaker[AsyncSession], send_id: uuid.UUID, reason: str) -> repository.SendRow:
    """Give up on an `unknown` or `failed` send for good (`dropped`, with the operator's reason)."""
    async with sessionmaker() as session, session.begin():
        row = await repository.decide(session, send_id, f"dropped by an operator: {reason}" if reason else "dropped")
        if row is not None:
            return row
        found = await repository.get(session, send_id)
    if found is None:
        raise SendNotFound(f"no send {send_id}")
    raise SendConflict(f"the send is {found[0].status}; only unknown or failed sends can be dropped")


async def send_test(
    sessionmaker: async_sessionmaker[AsyncSession],
    mailer: Mailer,
    settings: NurtureSettings,
    to: str,
    *,
    source_id: uuid.UUID | None = None,
    now: datetime | None = None,
) -> SendOutcome:
    """A transactional test email through the configured mailer and the source's mail settings, recorded
    like any send (key `test:<uuid>`)."""
    now = now or datetime.now(UTC)
    stamp = now.strftime("%Y-%m-%d %H:%M:%S UTC")
    request = SendRequest(
        send_key=f"test:{uuid.uuid4()}",
        lead_id=None,
        to_email=to,
        kind="transactional",
        subject=f"FunnelStream test email ({stamp})",
        html=f"<!doctype html><html><body><p>This is a test email from FunnelStream, sent {stamp}.</p></body></html>",
        text=f"This is a test email from FunnelStream, sent {stamp}.\n",
        source_id=source_id,
    )
    return await send_once(sessionmaker, mailer, settings, request, now=now)
