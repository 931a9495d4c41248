"""Double opt-in on the collection edge: a submission stored and announced, the confirmation email, the
confirmation (consent, list, sequence, lead magnet) and its event.

The edge sends its two transactional emails itself through nurture's durable delivery (a claim per key
before SMTP, so a repeated request never mails twice), with the nurture settings of this process
(`app.state.nurture_settings`, else the environment, as the admin API's delivery routes do).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.datastructures import State

from services.forms import pages, repository
from services.forms.repository import FormRow, NewSubmission
from services.forms.service import FORMS_SOURCE_ID, confirmed_event, make_confirm_token, make_file_token
from services.ingest.api import IngestError, IngestState, publish
from services.nurture.consent.repository import StatusChange, live_leads, set_statuses
from services.nurture.consent.service import GLOBAL
from services.nurture.delivery.mailer import make_mailer
from services.nurture.delivery.service import SendOutcome, SendRequest, send_once
from services.nurture.sequences import repository as sequences
from services.scoring import repository as identities
from shared.events import TrackedEvent
from shared.settings import NurtureSettings, load_settings

log = logging.getLogger(__name__)

# A confirmation link works this long; then the unconfirmed submission (and its address) is deleted.
PENDING_DAYS = 30


class LeadNotReady(Exception):
    """The submission's lead is not written yet (scoring has not consumed its events): try again shortly."""


def nurture_settings(state: State) -> NurtureSettings:
    """This process's mail settings, read once; SettingsError if the environment lacks them."""
    found: NurtureSettings | None = getattr(state, "nurture_settings", None)
    if found is None:
        found = state.nurture_settings = load_settings(NurtureSettings)
    return found


def base_url(settings: NurtureSettings) -> str:
    return settings.public_base_url.rstrip("/")


async def accept(
    maker: async_sessionmaker[AsyncSession], state: IngestState, submission: NewSubmission, events: list[TrackedEvent]
) -> bool:
    """Store the submission and publish its events inside one transaction: committed only once the broker
    acknowledged them (else IngestError 503 and nothing stored). False: the token's nonce was used before.
    The form's submissions never confirmed within PENDING_DAYS go (an address nobody confirmed is not kept)."""
    async with maker() as session, session.begin():
        if not await repository.insert_submission(session, submission):
            return False
        cutoff = submission.submitted_at - timedelta(days=PENDING_DAYS)
        await repository.forget_unconfirmed(session, submission.form_id, cutoff)
        await publish(state, events, "forms")
    return True


async def send_email(
    maker: async_sessionmaker[AsyncSession], settings: NurtureSettings, request: SendRequest
) -> SendOutcome:
    mailer = make_mailer(settings)
    try:
        outcome = await send_once(maker, mailer, settings, request)
    finally:
        await mailer.aclose()
    if outcome.status != "sent":
        log.warning("form email %s: %s %s", request.send_key, outcome.status, outcome.error)
    return outcome


async def send_confirmation(
    maker: async_sessionmaker[AsyncSession],
    settings: NurtureSettings,
    secret_key: str,
    form: FormRow,
    submission: NewSubmission,
    first_name: str,
) -> SendOutcome:
    """The double opt-in email with its signed link, at most once per submission."""
    link = f"{base_url(settings)}/forms/confirm/{make_confirm_token(secret_key, submission.id)}"
    subject, html, text = pages.confirmation_email(form.definition, form.name, first_name, link)
    request = SendRequest(
        send_key=f"form-confirm:{submission.id}",
        lead_id=None,
        to_email=submission.email,
        kind="transactional",
        subject=subject,
        html=html,
        text=text,
        source_id=form.source_id,
    )
    return await send_email(maker, settings, request)


@dataclass(frozen=True)
class Confirmation:
    submission: dict[str, Any]
    form: FormRow
    lead_id: uuid.UUID
    event: TrackedEvent
    has_file: bool


async def lead_of(session: AsyncSession, email: str, anonymous_id: str) -> uuid.UUID | None:
    """The live lead the submission's events made: by its address, else by the visitor's anonymous id."""
    found = await identities.find_leads(session, [("email", email), ("anonymous", anonymous_id)])
    lead = found.get(("email", email)) or found.get(("anonymous", anonymous_id))
    if lead is None:
        return None
    return (await live_leads(session, [lead])).get(lead)


async def confirm(
    maker: async_sessionmaker[AsyncSession],
    submission_id: uuid.UUID,
    *,
    ip: str | None,
    user_agent: str | None,
    now: datetime,
) -> Confirmation | None:
    """Record the confirmation once: consent to the form's topic with the exact text the person agreed to,
    the confirmation's time and IP; enroll in the form's sequence. A repeat changes nothing and returns the
    same event. None: no such submission (or form) any more."""
    async with maker() as session, session.begin():
        sub = await repository.get_submission(session, submission_id, lock=True)
        form = await repository.get_form(session, sub["form_id"]) if sub else None
        if sub is None or form is None:
            return None
        source = form.source_id or FORMS_SOURCE_ID
        if sub["status"] == "confirmed":
            at, lead_id = sub["confirmed_at"], sub["lead_id"]
            event = confirmed_event(source, sub["id"], form.id, sub["anonymous_id"], sub["email"], at)
        else:
            found = await lead_of(session, sub["email"], sub["anonymous_id"])
            if found is None:
                raise LeadNotReady(str(submission_id))
            lead_id = found
            event = confirmed_event(source, sub["id"], form.id, sub["anonymous_id"], sub["email"], now)
            topic = sub["topic"] or GLOBAL
            change = StatusChange(
                lead_id, topic, "subscribed", "double", f"form:{form.id}", sub["consent_text"], ip, now, "form-confirm"
            )
            await set_statuses(session, [change])
            await enroll(session, form, lead_id, event, now)
            await repository.mark_confirmed(
                session, submission_id, at=now, ip=ip, user_agent=user_agent, lead_id=lead_id
            )
            sub = {**sub, "status": "confirmed", "confirmed_at": now, "confirm_ip": ip, "lead_id": lead_id}
        has_file = bool(await repository.file_meta(session, [form.id]))
    return Confirmation(sub, form, lead_id, event, has_file)


async def enroll(session: AsyncSession, form: FormRow, lead_id: uuid.UUID, event: TrackedEvent, now: datetime) -> None:
    """The form's sequence, if it is active; the confirmation event is the cause, so it enrolls once."""
    sequence_id = form.definition.sequence_id
    if sequence_id is None:
        return
    version = await repository.active_sequence_version(session, sequence_id)
    if version is None:
        log.warning("form %s: sequence %s is not active; the lead was not enrolled", form.id, sequence_id)
        return
    context = {"trigger": "form", "at": now.isoformat(), "form_id": str(form.id)}
    await sequences.enroll(
        session, [sequences.NewEnrollment(uuid.uuid4(), sequence_id, version, lead_id, event.event_id, context, now)]
    )


async def announce(state: IngestState, event: TrackedEvent) -> None:
    """Publish "Form Confirmed" after the commit; the consent already holds, a repeated click re-announces."""
    try:
        await publish(state, [event], "forms")
    except IngestError:
        log.warning("form confirmation %s stored but not announced; the next click announces it", event.message_id)


async def send_lead_magnet(
    maker: async_sessionmaker[AsyncSession], settings: NurtureSettings, secret_key: str, c: Confirmation
) -> SendOutcome | None:
    """The lead magnet (a signed download link to the uploaded file, else the form's URL), once per submission."""
    if c.has_file:
        link = f"{base_url(settings)}/forms/files/{make_file_token(secret_key, c.submission['id'])}"
    elif c.form.definition.lead_magnet_url:
        link = c.form.definition.lead_magnet_url
    else:
        return None
    first_name = str(c.submission["values"].get(_first_name_field(c.form), ""))
    subject, html, text = pages.lead_magnet_email(c.form.name, first_name, link, "Download it here")
    request = SendRequest(
        send_key=f"form-magnet:{c.submission['id']}",
        lead_id=c.lead_id,
        to_email=c.submission["email"],
        kind="transactional",
        subject=subject,
        html=html,
        text=text,
        source_id=c.form.source_id,
    )
    return await send_email(maker, settings, request)


def _first_name_field(form: FormRow) -> str:
    return next((f.name for f in form.definition.fields if f.type == "first_name"), "")
