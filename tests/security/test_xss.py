"""Visitor data is text wherever a page shows it. The payloads are those of Mautic's stored-XSS reports
(contact names: mautic/mautic#3261, company: #5222, contact fields: #7586, report text: #7584), sent the way
an attacker can: through the public tracking API as traits, event names and properties. Each carries a
marker so the check can tell "escaped as text" (fine) from "became markup or script" (injected), and the
marker must reach the page, so a page that drops the data cannot pass for one that escapes it."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from services.nurture.consent.links import preferences_url, unsubscribe_url
from tests.helpers import Stack, basic, eventually, running_stack
from tests.security.html_check import injections, shown_as_text

TRAITS = {
    "firstName": '<script>window.alert("xss-first");</script>',  # mautic#3261
    "lastName": "\"><img src=x onerror=alert('xss-last')>",
    "company": "<img src=x onerror=alert('xss-company')>",  # mautic#5222
    "title": "<svg onload=alert('xss-title')>",  # mautic#7586
    "email": "ada@<svg onload=alert('xss-email')>.example",
}
EVENT = "\"><img src=x onerror=alert('xss-event')>"
PROPERTIES = {"url": "javascript:alert('xss-url')", "note": "<script>alert('xss-prop')</script>"}
USER = "xss-lead"


async def hostile_lead(stack: Stack, client: httpx.AsyncClient) -> dict[str, Any]:
    """A lead made through the public API with every field a payload; returns it once scoring applied both calls."""
    key = await stack.create_source(client)
    for path, body in (
        ("identify", {"userId": USER, "traits": TRAITS}),
        ("track", {"userId": USER, "event": EVENT, "properties": PROPERTIES}),
    ):
        sent = await client.post(f"{stack.base_url}/v1/{path}", json=body, headers=basic(key))
        assert sent.status_code == 200, sent.text

    async def lead() -> dict[str, Any] | None:
        r = await client.get(f"{stack.base_url}/api/leads/{USER}", headers=stack.admin)
        found: dict[str, Any] | None = r.json() if r.status_code == 200 else None
        return found if found and found.get("email") and len(found["recent_events"]) >= 2 else None

    return await eventually(lead, what="the hostile lead")


@pytest.fixture
async def hostile(settings_kwargs: dict[str, Any]) -> Any:
    async with running_stack(settings_kwargs, consumers=("scoring",)) as stack, httpx.AsyncClient(timeout=30) as c:
        yield stack, c, await hostile_lead(stack, c)


async def test_template_previews_escape_traits(hostile: Any) -> None:
    stack, client, _ = hostile
    html = (
        "<p>{{ lead.first_name }} {{ lead.last_name }} {{ lead.email }}</p>"
        "<p>{{ lead.traits.company | default('') }} {{ lead.traits.title | default('') }}</p>"
        "<p title=\"{{ lead.traits.lastName | default('') }}\">x</p>"
    )
    body = {"name": "xss", "subject": "Hi {{ lead.first_name }}", "html": html}
    created = await client.post(f"{stack.base_url}/api/templates", json=body, headers=stack.admin)
    assert created.status_code == 201, created.text
    preview = await client.post(
        f"{stack.base_url}/api/templates/{created.json()['id']}/preview", json={"user_id": USER}, headers=stack.admin
    )
    assert preview.status_code == 200, preview.text
    page = preview.json()["html"]
    for marker in ("xss-first", "xss-last", "xss-company", "xss-title", "xss-email"):
        assert shown_as_text(page, marker), (marker, injections(page, marker), page)


async def test_consent_pages_escape_the_address_and_topic_texts(hostile: Any) -> None:
    stack, client, lead = hostile
    topic = {"label": "<script>alert('xss-topic')</script>", "description": "\"><img src=x onerror=alert('xss-desc')>"}
    put = await client.put(f"{stack.base_url}/api/consent-topics/news", json=topic, headers=stack.admin)
    assert put.status_code == 200, put.text
    lead_id, email = uuid.UUID(lead["lead_id"]), TRAITS["email"].lower()
    preferences = await client.get(preferences_url(stack.base_url, "test-secret", lead_id, email))
    assert preferences.status_code == 200, preferences.text
    for marker in ("xss-email", "xss-topic", "xss-desc"):
        assert shown_as_text(preferences.text, marker), (marker, injections(preferences.text, marker))
    unsubscribe = await client.get(unsubscribe_url(stack.base_url, "test-secret", lead_id, email, "news"))
    assert unsubscribe.status_code == 200, unsubscribe.text
    for marker in ("xss-email", "xss-topic"):
        assert shown_as_text(unsubscribe.text, marker), (marker, injections(unsubscribe.text, marker))


async def test_the_dashboard_lead_timeline_escapes_events_traits_and_the_query(hostile: Any) -> None:
    stack, client, _ = hostile
    signed_in = await client.post(f"{stack.base_url}/dashboard/login", data={"token": stack.admin_token})
    assert signed_in.status_code == 303

    async def timeline() -> str | None:
        page = await client.get(f"{stack.base_url}/dashboard/leads", params={"lead": USER})
        assert page.status_code == 200, page.text[:300]
        return page.text if "xss-event" in page.text else None

    page = await eventually(timeline, what="the event in the lead timeline")
    for marker in ("xss-event", "xss-url", "xss-prop", "xss-email"):
        assert shown_as_text(page, marker), (marker, injections(page, marker))
    # Reflected: the lead reference typed in the search box comes back in the page.
    probe = "\"><script>alert('xss-ref')</script>"
    page = (await client.get(f"{stack.base_url}/dashboard/leads", params={"lead": probe})).text
    assert shown_as_text(page, "xss-ref"), injections(page, "xss-ref")
