"""Audiences over the real stack, beyond the stream: idle carts and ageing events found by the refresh loop,
a failing ad platform retried with backoff, the `audience_joined` sequence trigger, and hashed exports."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.helpers import eventually
from tests.services.nurture.audiences.fake_platforms import META_TOKEN
from tests.services.nurture.audiences.stack import EMAIL, META_ROWS, VIEWED, World, sha, world

META = {"kind": "meta", "name": "Meta", "config": {"audience_id": "6001"}, "credentials": {"access_token": META_TOKEN}}


async def destination(w: World, audience_id: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = await w.call("GET", f"/audiences/{audience_id}/destinations")
    return found[0]


async def test_a_failing_platform_is_retried_with_backoff_and_its_status_shows_the_error(
    settings_kwargs: dict[str, Any],
) -> None:
    async with world(settings_kwargs, fail_first=1_000_000) as w:
        audience = await w.audience("viewers", VIEWED)
        await w.call("POST", f"/audiences/{audience['id']}/destinations", 201, json=META)
        await w.person("ann")
        await eventually(lambda: w.has(audience["id"], {"ann"}), what="ann is a member")

        async def failed_twice() -> dict[str, Any] | None:
            found = await destination(w, audience["id"])
            return found if found["status"] == "error" and found["failures"] >= 2 else None

        failing = await eventually(failed_twice, what="two failed attempts")
        assert "HTTP 500" in failing["last_error"] and failing["pending"] == 1 and failing["pushed_count"] == 0
        assert failing["next_attempt_at"] > failing["last_attempt_at"]
        assert not w.fake.meta.get("6001")

        w.fake.fail_next = 0  # the platform recovers: the next attempt after the backoff goes through

        async def recovered() -> dict[str, Any] | None:
            found = await destination(w, audience["id"])
            return found if found["status"] == "ok" else None

        ok = await eventually(recovered, what="a successful retry")
        assert ok["failures"] == 0 and ok["last_error"] is None and ok["pushed_count"] == 1 and ok["pending"] == 0
        assert w.fake.meta["6001"] == {META_ROWS["ann"]}
        assert sum(1 for _, _, n in w.fake.requests if n == -500) >= 2
        assert w.fake.violations == []


async def test_an_idle_cart_enters_the_audience_and_the_order_removes_it_from_meta(
    settings_kwargs: dict[str, Any],
) -> None:
    async with world(settings_kwargs) as w:
        rule = {"include": [{"kind": "cart_abandoned", "minutes": 0.02, "min_total": 20}]}  # idle for 1.2 s
        audience = await w.audience("abandoners", rule)
        await w.call("POST", f"/audiences/{audience['id']}/destinations", 201, json=META)
        await w.track("identify", {"userId": "bob", "traits": {"email": "bob@example.org", "phone": "+442079460958"}})
        product = {"cart_id": "c-1", "product_id": "p1", "price": 45, "quantity": 1}
        await w.track("track", {"userId": "bob", "event": "Product Added", "properties": product})
        await eventually(lambda: w.has(audience["id"], {"bob"}), what="bob's idle cart makes him a member")
        await eventually(lambda: _meta_has(w, {META_ROWS["bob"]}), what="bob at Meta")

        order = {"order_id": "o-1", "cart_id": "c-1", "total": 45, "products": [product]}
        await w.track("track", {"userId": "bob", "event": "Order Completed", "properties": order})
        await eventually(lambda: _meta_has(w, set()), what="bob removed from Meta after ordering")
        assert await w.members(audience["id"]) == set()
        changes = await w.call("GET", f"/audiences/{audience['id']}/changes")
        # found by whichever looks first: the refresh loop or the nurture batch of a later message
        assert [c["change"] for c in changes] == ["left", "entered"]
        assert {c["reason"] for c in changes} <= {"event", "refresh"}
        assert w.fake.violations == []


async def test_an_event_ageing_out_of_its_window_takes_the_lead_out(settings_kwargs: dict[str, Any]) -> None:
    async with world(settings_kwargs) as w:
        audience = await w.audience(
            "viewed-today", {"include": [{"kind": "event", "name": "Product Viewed", "days": 1}]}
        )
        await w.track("identify", {"userId": "ann", "traits": {"email": "ann@example.com"}})
        almost_a_day = datetime.now(UTC) - timedelta(days=1) + timedelta(seconds=8)
        await w.track("track", {"userId": "ann", "event": "Product Viewed", "timestamp": almost_a_day.isoformat()})
        await eventually(lambda: w.has(audience["id"], {"ann"}), what="ann is a member")
        await eventually(lambda: w.has(audience["id"], set()), what="ann's view aged out")
        changes = await w.call("GET", f"/audiences/{audience['id']}/changes")
        assert [c["change"] for c in changes] == ["left", "entered"]
        assert changes[0]["reason"] == "refresh"  # no message about ann arrives after her view


async def test_joining_enrolls_in_sequences_triggered_by_the_audience(settings_kwargs: dict[str, Any]) -> None:
    async with world(settings_kwargs) as w:
        await w.audience("viewers", VIEWED)
        definition = {
            "trigger": {"kind": "audience_joined", "audience": "viewers"},
            "steps": [{"id": "pause", "type": "wait", "duration": 3600}],
        }
        sequence = await w.call("POST", "/sequences", 201, json={"name": "welcome-viewers", "definition": definition})
        await w.call("POST", f"/sequences/{sequence['id']}/activate")
        await w.person("cat")

        async def enrolled() -> list[dict[str, Any]]:
            found: list[dict[str, Any]] = await w.call("GET", f"/sequences/{sequence['id']}/enrollments")
            return found

        enrollments = await eventually(enrolled, what="cat enrolled by joining the audience")
        assert [e["user_id"] for e in enrollments] == ["cat"] and enrollments[0]["status"] == "active"


async def test_exports_carry_the_current_members_hashed_in_each_platforms_columns(
    settings_kwargs: dict[str, Any],
) -> None:
    async with world(settings_kwargs) as w:
        audience = await w.audience("viewers", VIEWED)
        for user in ("ann", "bob", "cat"):
            await w.person(user)
        await eventually(lambda: w.has(audience["id"], {"ann", "bob", "cat"}), what="three members")
        await w.track("track", {"userId": "bob", "event": "Order Completed", "properties": {"order_id": "o-9"}})
        await eventually(lambda: w.has(audience["id"], {"ann", "cat"}), what="bob left after ordering")

        meta = await w.call("GET", f"/audiences/{audience['id']}/export.csv?format=meta")
        google = await w.call("GET", f"/audiences/{audience['id']}/export.csv?format=google")
        assert "@" not in meta + google
        assert sorted(csv.reader(io.StringIO(meta))) == sorted(
            [["email", "phone"], [EMAIL["ann"], sha("16502531234")], [EMAIL["cat"], ""]]
        )
        assert sorted(csv.reader(io.StringIO(google))) == sorted(
            [["Email", "Phone"], [EMAIL["ann"], sha("+16502531234")], [EMAIL["cat"], ""]]
        )


async def _meta_has(w: World, rows: set[tuple[str, str]]) -> bool:
    return w.fake.meta.get("6001", set()) == rows
