"""Unsubscribe and preference pages over real HTTP, with PostgreSQL, the broker and the scoring consumer."""

from __future__ import annotations

import uuid
from typing import Any

from tests.helpers import basic, eventually
from tests.services.nurture.consent.stack import ConsentStack, consent_stack

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


async def barrier(cs: ConsentStack, user_id: str, n: int) -> None:
    """Wait until a later event of the lead is applied: everything published for it before is applied too."""
    write_key = await cs.stack.create_source(cs.client)
    sent = await cs.client.post(
        f"{cs.base}/v1/track", json={"userId": user_id, "event": f"Barrier {n}"}, headers=basic(write_key)
    )
    assert sent.status_code == 200

    async def applied() -> bool:
        return await cs.events_named(f"Barrier {n}", user_id) == 1

    await eventually(applied, what=f"barrier {n}")


async def test_get_shows_a_confirmation_and_changes_nothing_post_unsubscribes_once(
    settings_kwargs: dict[str, Any],
) -> None:
    async with consent_stack(settings_kwargs) as cs:
        lead = await cs.identified_lead("u-ann", "Ann@Example.com")
        await cs.subscribe("u-ann")
        link = cs.unsubscribe_link(lead, "ann@example.com")

        for _ in range(3):  # a mail scanner opening the link, more than once
            page = await cs.client.get(link)
            assert page.status_code == 200
            assert "<form" in page.text and 'method="post"' in page.text and "a***@example.com" in page.text
            assert page.headers["cache-control"] == "no-store"
        assert (await cs.consent("u-ann"))["effective"] == {"*": "subscribed"}
        assert (await cs.can_send(lead, None, "marketing")).allowed

        done = await cs.client.post(link, content=b"confirm=yes", headers=FORM)
        assert done.status_code == 200 and "You are unsubscribed" in done.text
        assert 'href="/p/' in done.text  # the way to the preference page
        consent = await cs.consent("u-ann")
        assert consent["effective"] == {"*": "unsubscribed"}
        assert consent["may_send"]["marketing"] == {"allowed": False, "reason": "unsubscribed"}
        assert consent["may_send"]["transactional"]["allowed"]
        [change] = [h for h in consent["history"] if h["status"] == "unsubscribed"]
        assert change["actor"] == "unsubscribe-page" and change["previous_status"] == "subscribed"

        again = await cs.client.post(link, content=b"confirm=yes", headers=FORM)
        assert again.status_code == 200
        assert len([h for h in (await cs.consent("u-ann"))["history"] if h["status"] == "unsubscribed"]) == 1

        await barrier(cs, "u-ann", 1)
        assert await cs.events_named("Unsubscribed", "u-ann") == 1  # published twice, same event id


async def test_one_click_post_from_a_mail_client_unsubscribes_from_the_topic(settings_kwargs: dict[str, Any]) -> None:
    async with consent_stack(settings_kwargs) as cs:
        lead = await cs.identified_lead("u-bo", "bo@example.com")
        await cs.subscribe("u-bo")
        link = cs.unsubscribe_link(lead, "bo@example.com", topic="offers")
        for _ in range(2):
            r = await cs.client.post(link, content=b"List-Unsubscribe=One-Click", headers=FORM)
            assert r.status_code == 200 and r.text == "unsubscribed\n"
        assert (await cs.consent("u-bo"))["effective"] == {"*": "subscribed", "offers": "unsubscribed"}
        assert not (await cs.can_send(lead, None, "marketing", "offers")).allowed
        assert (await cs.can_send(lead, None, "marketing", "news")).allowed

        async def announced() -> bool:
            return await cs.events_named("Unsubscribed", "u-bo") == 1

        await eventually(announced, what="Unsubscribed reached scoring")


async def test_a_tampered_or_foreign_token_is_400_and_changes_nothing(settings_kwargs: dict[str, Any]) -> None:
    async with consent_stack(settings_kwargs, consumers=()) as cs:
        imported = await cs.import_csv(
            "/api/contacts/import", "email,user_id,consent,consent_text\ncy@example.com,u-cy,subscribed,Yes\n"
        )
        assert imported.status_code == 200, imported.text
        lead = (await cs.consent("u-cy"))["lead_id"]
        link = cs.unsubscribe_link(uuid.UUID(lead), "cy@example.com")
        head, _, sig = link.rpartition(".")
        tampered = f"{head}.{'A' if sig[0] != 'A' else 'B'}{sig[1:]}"
        preferences_as_unsubscribe = cs.preferences_link(uuid.UUID(lead), "cy@example.com").replace("/p/", "/u/")
        for url in (tampered, preferences_as_unsubscribe, f"{cs.base}/u/nonsense"):
            assert (await cs.client.get(url)).status_code == 400
            r = await cs.client.post(url, content=b"List-Unsubscribe=One-Click", headers=FORM)
            assert r.status_code == 400 and "not valid" in r.text
        assert (await cs.consent("u-cy"))["effective"] == {"*": "subscribed"}


async def test_preferences_choose_topics_leave_everything_and_come_back_for_one(
    settings_kwargs: dict[str, Any],
) -> None:
    async with consent_stack(settings_kwargs) as cs:
        for topic, label in (("news", "Monthly news"), ("offers", "Offers <b>& deals</b>")):
            r = await cs.api("PUT", f"/api/consent-topics/{topic}", json={"label": label})
            assert r.status_code == 200, r.text
        lead = await cs.identified_lead("u-di", "di@example.com")
        await cs.subscribe("u-di")
        link = cs.preferences_link(lead, "di@example.com")

        page = await cs.client.get(link)
        assert page.status_code == 200
        assert page.text.count("checked") == 2
        assert "Offers &lt;b&gt;&amp; deals&lt;/b&gt;" in page.text and "<b>" not in page.text

        saved = await cs.client.post(link, content=b"topic=news&action=save", headers=FORM)
        assert saved.status_code == 200 and "choices are saved" in saved.text
        assert (await cs.consent("u-di"))["effective"] == {"*": "subscribed", "offers": "unsubscribed"}
        assert saved.text.count("checked") == 1

        left = await cs.client.post(link, content=b"action=unsubscribe_all", headers=FORM)
        assert "unsubscribed from all" in left.text and "checked" not in left.text
        assert not (await cs.can_send(lead, None, "marketing", "news")).allowed

        back = await cs.client.post(link, content=b"topic=news&action=save", headers=FORM)
        assert back.text.count("checked") == 1
        assert (await cs.can_send(lead, None, "marketing", "news")).reason == "topic-subscribed"
        assert not (await cs.can_send(lead, None, "marketing", "offers")).allowed
        assert not (await cs.can_send(lead, None, "marketing")).allowed

        # Leaving everything again leaves the topic chosen since; choosing it once more brings it back.
        await cs.client.post(link, content=b"action=unsubscribe_all", headers=FORM)
        assert not (await cs.can_send(lead, None, "marketing", "news")).allowed
        await cs.client.post(link, content=b"topic=news&action=save", headers=FORM)
        assert (await cs.can_send(lead, None, "marketing", "news")).allowed
        # Leaving everything through the admin API (already unsubscribed from all) ends the topic too.
        await cs.api("PUT", "/api/leads/u-di/consent", json={"changes": [{"status": "unsubscribed"}]})
        assert not (await cs.can_send(lead, None, "marketing", "news")).allowed
        await cs.client.post(link, content=b"topic=news&action=save", headers=FORM)
        assert (await cs.can_send(lead, None, "marketing", "news")).allowed
        news = [h["status"] for h in (await cs.consent("u-di"))["history"] if h["topic"] == "news"]
        assert news == ["subscribed", "unsubscribed", "subscribed", "unsubscribed", "subscribed"]

        async def announced() -> bool:  # offers, then everything twice
            return await cs.events_named("Unsubscribed", "u-di") == 3

        await eventually(announced, what="two Unsubscribed events")
