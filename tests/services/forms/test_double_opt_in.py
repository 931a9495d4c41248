"""A form end to end over real HTTP without JavaScript: submit, the confirmation email over real SMTP, the
click, consent with its proof, the lead magnet, and the events scoring turned into a lead."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import text

from services.nurture.consent.repository import can_send
from shared.db import make_engine, make_sessionmaker
from tests.helpers import basic, eventually
from tests.services.forms.helpers import forms_stack, link_in
from tests.smtp import SmtpSink

GUIDE = b"%PDF-1.4 the guide\n"


async def may_market(database_url: str, lead_id: str, topic: str) -> tuple[bool, str]:
    engine = make_engine(database_url, pool_size=1)
    try:
        async with make_sessionmaker(engine)() as session:
            decision = await can_send(
                session, lead_id=uuid.UUID(lead_id), email=None, kind="marketing", topic=topic, source_id=None
            )
    finally:
        await engine.dispose()
    return decision.allowed, decision.reason


async def test_no_js_submit_then_confirm_subscribes_the_lead_and_sends_the_lead_magnet(
    settings_kwargs: dict[str, Any], smtp_sink: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with forms_stack(settings_kwargs, smtp_sink, monkeypatch) as f:
        write_key = await f.stack.create_source(f.client)
        form = await f.create(success_message="Thanks! Check your inbox.")
        upload = await f.client.put(
            f"{f.base}/api/forms/{form['id']}/file",
            params={"filename": "guide.pdf"},
            content=GUIDE,
            headers={**f.stack.admin, "Content-Type": "application/pdf"},
        )
        assert upload.status_code == 200, upload.text
        assert form["embed"]["script"] == f'<script async src="{f.base}/forms/{form["id"]}.js"></script>'

        # The visitor browsed anonymously before (the tracker's anonymous id).
        aid = f"aid-{uuid.uuid4().hex[:8]}"
        seen = await f.client.post(
            f"{f.base}/v1/page", json={"anonymousId": aid, "name": "Pricing"}, headers=basic(write_key)
        )
        assert seen.status_code == 200
        to = smtp_sink.address("guide")
        token = await f.token(form["id"], aid=aid, utm_source="newsletter", utm_campaign="spring")
        answer = await f.post(
            form["id"],
            {
                "fs_token": token, "fs_aid": aid, "utm_source": "newsletter", "utm_campaign": "spring",
                "website": "", "email": to, "first_name": "Ann", "company": "Acme", "job_title": "VP Marketing",
                "team": "11-50", "code": "", "consent": "yes",
            },
        )  # fmt: skip
        assert answer.status_code == 200, answer.text
        assert "Thanks! Check your inbox." in answer.text

        # Scoring made the visitor a known lead, with the anonymous history and the submission's traits.
        lead = await f.lead(to)
        assert lead["anonymous_id"] == aid and lead["traits"]["title"] == "VP Marketing"
        lead = await eventually(lambda: _lead_with_stage(f, to, "lead"), what="lead stage")
        names = await eventually(lambda: _event_names(f.database_url, lead["lead_id"], 2), what="events")
        assert {"Pricing", "Form Submitted"} <= set(names)

        # Until the link is used: no marketing at all, and nothing subscribed.
        assert await may_market(f.database_url, lead["lead_id"], "news") == (False, "no-consent")
        (confirmation,) = await smtp_sink.wait_for(to)
        message = confirmation.message
        assert message["Subject"] == "Please confirm your subscription"
        link = link_in(message)
        shown = await f.client.get(link)
        assert shown.status_code == 200 and 'id="confirm"' in shown.text
        assert await may_market(f.database_url, lead["lead_id"], "news") == (False, "no-consent")

        confirmed = await f.client.post(link)
        assert confirmed.status_code == 200, confirmed.text
        assert "your subscription is confirmed" in confirmed.text
        assert (await may_market(f.database_url, lead["lead_id"], "news"))[0] is True

        consent = await f.consent(to)
        (subscription,) = consent["subscriptions"]
        assert subscription["topic"] == "news" and subscription["status"] == "subscribed"
        assert subscription["method"] == "double" and subscription["source"] == f"form:{form['id']}"
        assert subscription["consent_text"] == form["definition"]["consent_text"]
        assert subscription["ip"] == "127.0.0.1"

        listed = await f.client.get(f"{f.base}/api/forms/{form['id']}/submissions", headers=f.stack.admin)
        (submission,) = listed.json()["submissions"]
        assert submission["status"] == "confirmed" and submission["lead_id"] == lead["lead_id"]
        assert submission["values"]["company"] == "Acme" and submission["ip"] == "127.0.0.1"

        # The lead magnet: a second email with a download link that serves the uploaded file.
        _, magnet = await smtp_sink.wait_for(to, 2)
        download = await f.client.get(link_in(magnet.message))
        assert download.status_code == 200 and download.content == GUIDE
        assert download.headers["content-type"] == "application/pdf"

        # A second click changes nothing and mails nothing more.
        again = await f.client.post(link)
        assert again.status_code == 200
        names = await eventually(lambda: _event_names(f.database_url, lead["lead_id"], 3), what="Form Confirmed")
        assert names.count("Form Confirmed") == 1
        props = await f.scalar(
            "SELECT properties FROM lead_events WHERE lead_id = :l AND name = 'Form Submitted'",
            l=uuid.UUID(lead["lead_id"]),
        )
        assert props["utm_source"] == "newsletter" and props["form_id"] == form["id"]
        assert len(smtp_sink.received(to)) == 2

        # The confirmed submission carries the lead id: erasure (GDPR) removes it with the rest of the person.
        erased = await f.client.delete(f"{f.base}/api/leads/{to}", params={"by": "email"}, headers=f.stack.admin)
        assert erased.status_code == 200, erased.text
        assert erased.json()["removed"]["form_submissions"] == 1
        assert await f.scalar("SELECT count(*) FROM form_submissions WHERE email = :e", e=to) == 0


async def _lead_with_stage(f: Any, email: str, stage: str) -> dict[str, Any] | None:
    lead: dict[str, Any] = await f.lead(email)
    return lead if lead["stage"] == stage else None


async def _event_names(database_url: str, lead_id: str, at_least: int) -> list[str] | None:
    engine = make_engine(database_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT coalesce(name, type) FROM lead_events WHERE lead_id = :l ORDER BY occurred_at"),
                {"l": uuid.UUID(lead_id)},
            )
            names = [r[0] for r in rows]
    finally:
        await engine.dispose()
    return names if len(names) >= at_least else None
