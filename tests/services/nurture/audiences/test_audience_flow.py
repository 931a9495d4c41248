"""Audiences end to end: tracked events through the real scoring and nurture consumers, membership kept
from the stream, and every change pushed to a local HTTP server speaking Meta's, Google's and a signed
webhook's formats. Purchase, unsubscribe and erasure remove people from every destination."""

from __future__ import annotations

import uuid
from typing import Any

from services.nurture.consent.links import unsubscribe_url
from tests.helpers import eventually
from tests.services.nurture.audiences.stack import (
    EMAIL,
    META_ROWS,
    USER_LIST,
    VIEWED,
    add_destinations,
    sha,
    webhook_sets,
    world,
)


async def test_purchase_unsubscribe_and_erasure_remove_people_from_meta_google_and_webhook(
    settings_kwargs: dict[str, Any],
) -> None:
    async with world(settings_kwargs) as w:
        await w.person("ann")  # before the audience exists: the backfill finds her
        audience = await w.audience("viewed-not-bought", VIEWED)
        destinations = await add_destinations(w, audience["id"])
        await w.person("bob")
        await w.person("cat")
        await eventually(lambda: w.has(audience["id"], {"ann", "bob", "cat"}), what="three members")

        async def everywhere() -> bool:
            meta = w.fake.meta.get("6001", set())
            google = {v for k, v in w.fake.google.get(USER_LIST, set()) if k == "hashedEmail"}
            return (
                meta == set(META_ROWS.values())
                and google == set(EMAIL.values())
                and webhook_sets(w.fake)[0] == set(EMAIL.values())
            )

        await eventually(everywhere, what="three members at Meta, Google and the webhook")
        assert ("hashedPhoneNumber", sha("+16502531234")) in w.fake.google[USER_LIST]
        assert w.fake.consents and all(
            c == {"adUserData": "GRANTED", "adPersonalization": "GRANTED"} for c in w.fake.consents
        )

        # purchase: ann orders and leaves at once
        await w.track("track", {"userId": "ann", "event": "Order Completed", "properties": {"order_id": "o1"}})
        # unsubscribe: bob's one-click link from an email
        bob = await w.call("GET", "/leads/bob")
        link = unsubscribe_url(w.stack.base_url, "test-secret", uuid.UUID(bob["lead_id"]), "bob@example.org")
        response = await w.client.post(link, content=b"List-Unsubscribe=One-Click")
        assert response.status_code == 200
        # erasure: cat asks to be forgotten
        erased = await w.call("DELETE", "/leads/cat")
        assert erased["removed"]["audience_memberships"] == 3  # one queued removal per destination she was in

        async def gone_everywhere() -> bool:
            google = {v for k, v in w.fake.google.get(USER_LIST, set()) if k == "hashedEmail"}
            return not w.fake.meta.get("6001") and not google and webhook_sets(w.fake)[1] == set(EMAIL.values())

        await eventually(gone_everywhere, what="removals at Meta, Google and the webhook")
        assert await w.members(audience["id"]) == set()
        assert not any(v == sha("+16502531234") for _, v in w.fake.google[USER_LIST])

        # the change log keeps ann's and bob's entries and exits; cat's went with her erasure
        changes = await w.call("GET", f"/audiences/{audience['id']}/changes")
        assert sorted(c["change"] for c in changes) == ["entered", "entered", "left", "left"]
        counts = await w.call("GET", f"/audiences/{audience['id']}/counts?bucket=hour&days=1")
        assert sum(c["entered"] for c in counts) == 2 and sum(c["left"] for c in counts) == 2
        assert counts[-1]["members"] == 0
        status = {d["kind"]: d for d in await w.call("GET", f"/audiences/{audience['id']}/destinations")}
        for kind in ("meta", "google", "webhook"):
            assert status[kind]["status"] == "ok" and status[kind]["last_error"] is None
            assert status[kind]["pushed_count"] == 3 and status[kind]["removed_count"] == 3
            assert status[kind]["pending"] == 0
        assert destinations["meta"]["id"] == status["meta"]["id"]
        assert w.fake.violations == []
