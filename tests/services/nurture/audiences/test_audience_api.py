"""The audiences admin API: validation, editing and archiving an audience, and destination management."""

from __future__ import annotations

import uuid
from typing import Any

from tests.helpers import eventually
from tests.services.nurture.audiences.fake_platforms import META_TOKEN
from tests.services.nurture.audiences.stack import META_ROWS, VIEWED, world

META = {"kind": "meta", "name": "Meta", "config": {"audience_id": "6001"}, "credentials": {"access_token": META_TOKEN}}


async def test_bad_input_is_refused_naming_the_field(settings_kwargs: dict[str, Any]) -> None:
    async with world(settings_kwargs) as w:
        response = await w.client.post(
            f"{w.api}/audiences", headers=w.stack.admin,
            json={"name": "x", "definition": {"include": [{"kind": "event", "name": "Viewed", "days": 0}]}},
        )  # fmt: skip
        assert response.status_code == 400 and "days" in response.json()["field"]
        response = await w.client.post(
            f"{w.api}/audiences", headers=w.stack.admin, json={"name": "x", "definition": {"include": []}}
        )
        assert response.status_code == 400 and "include" in response.json()["field"]

        audience = await w.call("POST", "/audiences", 201, json={"name": "viewers", "definition": VIEWED})
        duplicate = await w.call("POST", "/audiences", 409, json={"name": "viewers", "definition": VIEWED})
        assert "viewers" in duplicate["error"]
        await w.call("GET", f"/audiences/{uuid.uuid4()}", 404)

        path = f"/audiences/{audience['id']}/destinations"
        missing = await w.call("POST", path, 400, json=META | {"config": {}})
        assert "audience_id" in missing["error"]
        no_token = await w.call("POST", path, 400, json=META | {"credentials": {}})
        assert "access_token" in no_token["error"]
        webhook = {"kind": "webhook", "name": "CRM", "config": {"endpoint_id": str(uuid.uuid4())}}
        assert "webhook endpoint" in (await w.call("POST", path, 400, json=webhook))["error"]
        await w.call("POST", f"{path}/{uuid.uuid4()}/retry", 404)


async def test_editing_refills_and_archiving_removes_everyone_from_destinations(
    settings_kwargs: dict[str, Any],
) -> None:
    async with world(settings_kwargs) as w:
        audience = await w.audience("viewers", VIEWED)
        meta = await w.call("POST", f"/audiences/{audience['id']}/destinations", 201, json=META)
        assert meta["credentials"] == {"access_token": "…" + META_TOKEN[-4:]}
        for user in ("ann", "bob"):
            await w.person(user)
        await eventually(lambda: w.has(audience["id"], {"ann", "bob"}), what="two members")
        await eventually(lambda: _meta(w, {META_ROWS["ann"], META_ROWS["bob"]}), what="both at Meta")

        # a new definition is backfilled again: only leads with a phone trait stay
        phones = VIEWED | {"exclude": [{"kind": "trait", "condition": {"field": "traits.phone", "op": "not_exists"}}]}
        edited = await w.call("PATCH", f"/audiences/{audience['id']}", json={"definition": phones})
        assert edited["backfilled_at"] is None
        await eventually(lambda: w.has(audience["id"], {"ann", "bob"}), what="both have phones")
        no_bob = VIEWED | {
            "exclude": [{"kind": "trait", "condition": {"field": "email", "op": "ends_with", "value": ".org"}}]
        }
        await w.call("PATCH", f"/audiences/{audience['id']}", json={"definition": no_bob})
        await eventually(lambda: w.has(audience["id"], {"ann"}), what="bob (example.org) left on the new definition")
        await eventually(lambda: _meta(w, {META_ROWS["ann"]}), what="bob removed from Meta")
        reasons = {(c["change"], c["reason"]) for c in await w.call("GET", f"/audiences/{audience['id']}/changes")}
        assert ("left", "backfill") in reasons

        archived = await w.call("DELETE", f"/audiences/{audience['id']}")
        assert archived["status"] == "archived" and archived["members"] == 0
        await eventually(lambda: _meta(w, set()), what="everyone removed from Meta")
        assert audience["id"] not in {a["id"] for a in await w.call("GET", "/audiences")}

        removed = await w.call("DELETE", f"/audiences/{audience['id']}/destinations/{meta['id']}")
        assert removed["active"] is False and removed["removed_count"] == 2 and removed["pushed_count"] == 2
        assert w.fake.violations == []


async def _meta(w: Any, rows: set[tuple[str, str]]) -> bool:
    return bool(w.fake.meta.get("6001", set()) == rows)
