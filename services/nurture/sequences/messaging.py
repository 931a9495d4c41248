"""The scheduler's messenger: consent at send time, the template rendered for the lead, delivery once."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.nurture.consent import repository as consent
from services.nurture.consent.links import preferences_url, unsubscribe_url
from services.nurture.delivery.compose import SendRequest
from services.nurture.delivery.mailer import Mailer
from services.nurture.delivery.service import send_many
from services.nurture.sequences.scheduler import EmailJob
from services.nurture.sequences.service import LeadView
from services.nurture.templates import repository as templates
from services.nurture.templates.service import TemplateRenderError, context_for, render
from shared.settings import NurtureSettings

TIMEZONE_TRAITS = ("timezone", "time_zone", "timeZone", "tz")


class SequenceMessenger:
    """Consent, templates and delivery for the scheduler's email steps."""

    def __init__(
        self, settings: NurtureSettings, sessionmaker: async_sessionmaker[AsyncSession], mailer: Mailer
    ) -> None:
        self.settings = settings
        self.sessionmaker = sessionmaker
        self.mailer = mailer
        self.secret = settings.secret_key.get_secret_value()

    async def allowed(
        self, session: AsyncSession, lead: LeadView, message_class: str, topic: str | None
    ) -> tuple[bool, str]:
        """Checked when the step runs, not at enrollment: an unsubscribe in between is honoured."""
        if not lead.email:
            return False, "no email address"
        kind: Literal["marketing", "transactional"] = (
            "transactional" if message_class == "transactional" else "marketing"
        )
        decision = await consent.can_send(
            session, lead_id=lead.lead_id, email=lead.email, kind=kind, topic=topic, source_id=None
        )
        return decision.allowed, decision.reason

    def timezone_of(self, lead: LeadView) -> str | None:
        for key in TIMEZONE_TRAITS:
            value = lead.traits.get(key)
            if isinstance(value, str) and value:
                return value
        return self.settings.default_timezone

    async def send(self, session: AsyncSession, jobs: list[EmailJob]) -> dict[str, str]:
        now = datetime.now(UTC)
        outcomes: dict[str, str] = {}
        requests: list[SendRequest] = []
        for job in jobs:
            version = await templates.get_version(session, job.template_id)
            if version is None:
                outcomes[job.send_key] = f"failed: no template {job.template_id}"
                continue
            lead, email = job.lead, job.lead.email or ""
            marketing = job.message_class != "transactional"
            topic = job.topic or version.topic
            unsubscribe = unsubscribe_url(self.settings.public_base_url, self.secret, lead.lead_id, email, topic)
            preferences = preferences_url(self.settings.public_base_url, self.secret, lead.lead_id, email)
            context = context_for(
                _row(lead), unsubscribe_url=unsubscribe, preferences_url=preferences, now=now, extra=_extra(job.context)
            )
            try:
                rendered = render(version.content, context)
            except TemplateRenderError as exc:
                outcomes[job.send_key] = f"failed: template: {exc.problem}"
                continue
            requests.append(
                SendRequest(
                    send_key=job.send_key,
                    lead_id=lead.lead_id,
                    to_email=email,
                    kind="marketing" if marketing else "transactional",
                    subject=rendered.subject,
                    html=rendered.html,
                    text=rendered.text,
                    template_id=str(version.template_id),
                    template_version=version.version,
                    user_id=lead.user_id,
                    anonymous_id=lead.anonymous_id,
                    unsubscribe_url=unsubscribe if marketing else None,
                    topic=topic,
                )
            )
        for outcome in await send_many(self.sessionmaker, self.mailer, self.settings, requests, now=now):
            outcomes[outcome.send_key] = outcome.status + (f": {outcome.error}" if outcome.error else "")
        return outcomes


def _row(lead: LeadView) -> dict[str, Any]:
    return {
        "email": lead.email,
        "user_id": lead.user_id,
        "traits": lead.traits,
        "score": lead.score,
        "grade": lead.grade,
        "stage": lead.stage,
        "stages": lead.stages,
        "referral_code": lead.referral_code,
    }


def _extra(context: Mapping[str, Any]) -> dict[str, Any]:
    """What the step's template sees as `extra`: the triggering event's properties, and the trigger."""
    properties = context.get("properties")
    return {**(properties if isinstance(properties, dict) else {}), "trigger": dict(context)}
