"""Public unsubscribe and preference pages on the collection edge, reached from signed links in email.

`GET /u/{token}` only shows a confirmation form: mail scanners fetch every link in a message, and a GET
that unsubscribed would unsubscribe people who never asked. `POST /u/{token}` unsubscribes (the form's
button, or a mail client's RFC 8058 one-click POST with `List-Unsubscribe=One-Click`), idempotently.
`/p/{token}` is the preference page: topics on and off, or leave everything. Every unsubscribe publishes
`Unsubscribed` after the change is committed; if the broker is down the unsubscribe still holds (the
send path checks the stored state) and the page still says so, and repeating the POST announces it again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.ingest.api import IngestError, IngestState, StateDep, publish, read_body
from services.nurture.consent import pages, repository, settings_repository
from services.nurture.consent.changes import LeadRef, lead_ref, unsubscribe
from services.nurture.consent.links import (
    LinkToken,
    preferences_url,
    read_preferences_token,
    read_unsubscribe_token,
)
from services.nurture.consent.repository import StatusChange, set_statuses
from services.nurture.consent.service import email_digest, masked, may_send
from shared.events import TrackedEvent
from shared.tokens import InvalidToken

log = logging.getLogger(__name__)

MAX_FORM_BYTES = 16 * 1024
INVALID = (
    "This link is not valid. Your mail program may have cut it off: open the link from the email again, "
    "or use the link in a newer email from us."
)


def html(body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(body, status_code=status, headers=pages.HEADERS)


def invalid_link() -> HTMLResponse:
    return html(pages.message_page("Link not valid", INVALID), 400)


def read_link(reader: Callable[[str, str], LinkToken], state: IngestState, token: str) -> LinkToken | None:
    try:
        return reader(state.settings.secret_key.get_secret_value(), token)
    except InvalidToken:
        return None


def maker_of(request: Request) -> async_sessionmaker[AsyncSession]:
    maker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    return maker


def address_of(lead: LeadRef, link: LinkToken) -> tuple[str | None, str]:
    """The address the link was sent to (if the lead still has it) and how the page shows it."""
    for email in lead.emails:
        if email_digest(email) == link.email_digest:
            return email, masked(email)
    return None, "your address"


async def topic_label(session: AsyncSession, topic: str | None) -> str | None:
    if topic is None:
        return None
    labels = {t: label for t, label, _ in await settings_repository.list_topics(session)}
    return labels.get(topic, topic)


async def announce(state: IngestState, events: list[TrackedEvent]) -> None:
    """Publish after the commit; a failure is logged and counted, the stored change already holds."""
    if events:
        try:
            await publish(state, events, "consent")
        except IngestError:
            log.warning("consent: %d Unsubscribed events not published; the next POST announces them", len(events))


def is_one_click(body: bytes) -> bool:
    """RFC 8058: `List-Unsubscribe=One-Click`, form-encoded or as a multipart field."""
    return b"List-Unsubscribe=One-Click" in body or (b'name="List-Unsubscribe"' in body and b"One-Click" in body)


def client_ip(request: Request) -> str | None:
    return request.client.host[:64] if request.client else None


def pages_router() -> APIRouter:
    router = APIRouter(tags=["consent (public)"])

    @router.get("/u/{token}", response_class=HTMLResponse, summary="Unsubscribe confirmation page (changes nothing)")
    async def unsubscribe_form(token: str, request: Request, state: StateDep) -> HTMLResponse:
        link = read_link(read_unsubscribe_token, state, token)
        if link is None:
            return invalid_link()
        async with maker_of(request)() as session:
            lead = await lead_ref(session, link.lead_id)
            label = await topic_label(session, link.topic)
        if lead is None:
            return html(pages.message_page("Unsubscribe", "This address gets no email from us any more."))
        _, shown = address_of(lead, link)
        page = pages.unsubscribe_page(
            address=shown, topic_label=label, action=request.url.path, done=False, preferences=None
        )
        return html(page)

    @router.post("/u/{token}", response_class=HTMLResponse, summary="Unsubscribe; RFC 8058 one-click; idempotent")
    async def unsubscribe_post(token: str, request: Request, state: StateDep) -> Response:
        link = read_link(read_unsubscribe_token, state, token)
        if link is None:
            return invalid_link()
        one_click = is_one_click(await read_body(request, MAX_FORM_BYTES))
        now = datetime.now(UTC)
        event = None
        async with maker_of(request)() as session, session.begin():
            lead = await lead_ref(session, link.lead_id)
            label = await topic_label(session, link.topic)
            if lead is not None:
                event = await unsubscribe(
                    session,
                    lead,
                    link.topic,
                    at=now,
                    actor="one-click" if one_click else "unsubscribe-page",
                    source="one-click" if one_click else "unsubscribe-page",
                    ip=client_ip(request),
                    reason="one-click" if one_click else "link",
                )
        await announce(state, [event] if event else [])
        if one_click:
            return PlainTextResponse("unsubscribed\n", headers={"Cache-Control": "no-store"})
        if lead is None:
            return html(pages.message_page("You are unsubscribed", "This address gets no email from us any more."))
        email, shown = address_of(lead, link)
        secret = state.settings.secret_key.get_secret_value()
        more = preferences_url("", secret, lead.lead_id, email) if email else None
        return html(pages.unsubscribe_page(address=shown, topic_label=label, action="", done=True, preferences=more))

    @router.get("/p/{token}", response_class=HTMLResponse, summary="Email preference page")
    async def preferences_form(token: str, request: Request, state: StateDep) -> HTMLResponse:
        link = read_link(read_preferences_token, state, token)
        if link is None:
            return invalid_link()
        async with maker_of(request)() as session:
            lead = await lead_ref(session, link.lead_id)
            if lead is None:
                return html(pages.message_page("Email preferences", "This address gets no email from us any more."))
            choices = await topic_choices(session, lead)
        _, shown = address_of(lead, link)
        return html(pages.preferences_page(address=shown, topics=choices, action=request.url.path, saved=None))

    @router.post("/p/{token}", response_class=HTMLResponse, summary="Save email preferences")
    async def preferences_post(token: str, request: Request, state: StateDep) -> HTMLResponse:
        link = read_link(read_preferences_token, state, token)
        if link is None:
            return invalid_link()
        form = parse_qs((await read_body(request, MAX_FORM_BYTES)).decode("utf-8", "replace"), max_num_fields=500)
        leave_all = form.get("action", ["save"])[-1] == "unsubscribe_all"
        wanted = set(form.get("topic", []))
        now = datetime.now(UTC)
        events: list[TrackedEvent] = []
        async with maker_of(request)() as session, session.begin():
            lead = await lead_ref(session, link.lead_id)
            if lead is None:
                return html(pages.message_page("Email preferences", "This address gets no email from us any more."))
            ip = client_ip(request)
            if leave_all:
                event = await unsubscribe(
                    session,
                    lead,
                    None,
                    at=now,
                    actor="preferences",
                    source="preference-page",
                    ip=ip,
                    reason="preferences",
                )
                events += [event] if event else []
            else:
                for choice in await topic_choices(session, lead):
                    if choice.id in wanted and not choice.on:
                        text = f"Chose to get email about “{choice.label}” on the preference page"
                        change = StatusChange(
                            lead.lead_id,
                            choice.id,
                            "subscribed",
                            "single",
                            "preference-page",
                            text,
                            ip,
                            now,
                            "preferences",
                            force=True,
                        )
                        await set_statuses(session, [change])
                    elif choice.id not in wanted and choice.on:
                        event = await unsubscribe(
                            session,
                            lead,
                            choice.id,
                            at=now,
                            actor="preferences",
                            source="preference-page",
                            ip=ip,
                            reason="preferences",
                        )
                        events += [event] if event else []
            choices = await topic_choices(session, lead)
        await announce(state, events)
        _, shown = address_of(lead, link)
        saved = "You are unsubscribed from all marketing email." if leave_all else "Your choices are saved."
        return html(pages.preferences_page(address=shown, topics=choices, action=request.url.path, saved=saved))

    return router


async def topic_choices(session: AsyncSession, lead: LeadRef) -> list[pages.TopicChoice]:
    """Every topic, ticked when marketing about it would be allowed now."""
    state = repository.state_of(await repository.person_subscriptions(session, lead.lead_id))
    regime = await settings_repository.opt_out_regime_of(session, lead.lead_id)
    return [
        pages.TopicChoice(
            topic,
            label,
            description,
            may_send(state, kind="marketing", topic=topic, opt_out_regime=regime, has_email=True).allowed,
        )
        for topic, label, description in await settings_repository.list_topics(session)
    ]
