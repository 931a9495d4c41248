"""Driving the scoring admin API in tests: events in through the tracking API, answers out of /api."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import httpx

from tests.helpers import Stack, basic, eventually, running_stack

_probes = itertools.count()


def b2b(*stages: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": "b2b",
        "stages": [{"name": "visitor"}, {"name": "lead", "entry": {"all": [{"kind": "known"}]}}, *stages],
    }


def score_at_least(points: float) -> dict[str, Any]:
    return {"all": [{"kind": "known"}, {"kind": "score", "gte": points}]}


def counting(**overrides: Any) -> dict[str, Any]:
    """One point per human event, no decay; overrides replace top-level keys."""
    rules: dict[str, Any] = {
        "behaviour": [{"id": "any-event", "type": None, "points": 1}],
        "half_life_days": None,
        "models": [b2b()],
    }
    return rules | overrides


class Admin:
    """One test's HTTP client for the stack: a write key for events, the admin token for /api."""

    def __init__(self, stack: Stack, client: httpx.AsyncClient, write_key: str) -> None:
        self.stack, self.client, self.write_key = stack, client, write_key

    async def send(self, kind: str, body: dict[str, Any], at: datetime | None = None) -> None:
        payload = body | ({"timestamp": at.isoformat()} if at is not None else {})
        r = await self.client.post(f"{self.stack.base_url}/v1/{kind}", json=payload, headers=basic(self.write_key))
        assert r.status_code == 200, r.text

    async def track(self, user: str, event: str = "Page Viewed", times: int = 1, at: datetime | None = None) -> None:
        for _ in range(times):
            await self.send("track", {"userId": user, "event": event}, at)

    async def get(self, path: str, params: Any = None) -> httpx.Response:
        return await self.client.get(f"{self.stack.base_url}/api{path}", params=params, headers=self.stack.admin)

    async def post(self, path: str, body: Any = None) -> httpx.Response:
        return await self.client.post(f"{self.stack.base_url}/api{path}", json=body, headers=self.stack.admin)

    async def lead(self, user: str) -> dict[str, Any] | None:
        r = await self.get(f"/leads/{user}")
        found: dict[str, Any] | None = r.json() if r.status_code == 200 else None
        return found

    async def lead_when(self, user: str, check: Any, what: str) -> dict[str, Any]:
        """The lead once `check(lead)` holds (the consumer applied what the test sent)."""

        async def probe() -> dict[str, Any] | None:
            found = await self.lead(user)
            return found if found is not None and check(found) else None

        return await eventually(probe, what=what)

    async def lead_scored(self, user: str, score: str) -> dict[str, Any]:
        return await self.lead_when(user, lambda lead: lead["score"] == score, f"{user} at score {score}")

    async def add_rules(self, rules: dict[str, Any], note: str = "") -> int:
        r = await self.post("/scoring/rule-sets", {"rules": rules, "note": note})
        assert r.status_code == 201, r.text
        version: int = r.json()["version"]
        return version

    async def activate(self, rules: dict[str, Any]) -> int:
        """Store and activate rules, and return once the scoring consumer scores with them.

        The consumer re-reads the active version about once a second; events of an anonymous probe lead
        are sent until it comes back scored under the new version.
        """
        version = await self.add_rules(rules, "test")
        r = await self.post(f"/scoring/rule-sets/{version}/activate")
        assert r.status_code == 202, r.text
        probe = f"probe-{version}-{next(_probes)}"

        async def switched() -> bool:
            await self.send("track", {"anonymousId": probe, "event": "Probe"})
            r = await self.get("/leads", {"anonymous_id": probe})
            leads = r.json()["leads"]
            return bool(leads) and leads[0]["rule_set_version"] == version

        await eventually(switched, what=f"scoring under rule set {version}")
        return version


@asynccontextmanager
async def admin_stack(settings_kwargs: dict[str, Any]) -> AsyncIterator[Admin]:
    async with running_stack(settings_kwargs, consumers=("scoring",)) as stack, httpx.AsyncClient() as client:
        yield Admin(stack, client, await stack.create_source(client))
