"""The audience tests' world: the real stack (ingest, admin API, scoring and nurture consumers), the
audience refresh and sync loops, the webhook outbox, and the fake ad platforms of fake_platforms.py."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from services.nurture.audiences.refresh import refresh_loop
from services.nurture.audiences.sync import sync_loop
from shared.db import make_engine, make_sessionmaker
from shared.outbox import delivery_loop
from shared.settings import NurtureSettings, ScoringSettings
from tests.helpers import Stack, basic, eventually, running_stack
from tests.services.nurture.audiences.fake_platforms import (
    DEVELOPER_TOKEN,
    GOOGLE_TOKEN,
    META_TOKEN,
    FakePlatforms,
    fake_platforms,
)

VIEWED = {"include": [{"kind": "event", "name": "Product Viewed", "days": 7}]}
PEOPLE = {
    "ann": (" Ann@Example.COM ", "+1 (650) 253-1234"),
    "bob": ("bob@example.org", "+44 20 7946 0958"),
    "cat": ("cat@example.net", None),
}
USER_LIST = "customers/1234567890/userLists/555"


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


EMAIL = {"ann": sha("ann@example.com"), "bob": sha("bob@example.org"), "cat": sha("cat@example.net")}
META_ROWS = {
    "ann": (EMAIL["ann"], sha("16502531234")),
    "bob": (EMAIL["bob"], sha("442079460958")),
    "cat": (EMAIL["cat"], ""),
}


@dataclass
class World:
    stack: Stack
    fake: FakePlatforms
    client: httpx.AsyncClient
    write_key: str

    @property
    def api(self) -> str:
        return f"{self.stack.base_url}/api"

    async def call(self, method: str, path: str, expect: int = 200, **kwargs: Any) -> Any:
        response = await self.client.request(method, f"{self.api}{path}", headers=self.stack.admin, **kwargs)
        assert response.status_code == expect, response.text
        return response.json() if "json" in response.headers.get("content-type", "") else response.text

    async def track(self, kind: str, body: dict[str, Any]) -> None:
        response = await self.client.post(f"{self.stack.base_url}/v1/{kind}", json=body, headers=basic(self.write_key))
        assert response.status_code == 200, response.text

    async def person(self, user: str) -> None:
        email, phone = PEOPLE[user]
        traits = {"email": email} | ({"phone": phone} if phone else {})
        await self.track("identify", {"userId": user, "traits": traits})
        await self.track("track", {"userId": user, "event": "Product Viewed", "properties": {"sku": "s1"}})

    async def audience(self, name: str, definition: dict[str, Any]) -> dict[str, Any]:
        created = await self.call("POST", "/audiences", 201, json={"name": name, "definition": definition})
        await eventually(lambda: self._backfilled(created["id"]), what=f"backfill of {name}")
        return dict(created)

    async def _backfilled(self, audience_id: str) -> bool:
        return (await self.call("GET", f"/audiences/{audience_id}"))["backfilled_at"] is not None

    async def members(self, audience_id: str) -> set[str]:
        return {m["user_id"] for m in await self.call("GET", f"/audiences/{audience_id}/members")}

    async def has(self, audience_id: str, users: set[str]) -> bool:
        return await self.members(audience_id) == users


@asynccontextmanager
async def world(settings_kwargs: dict[str, Any], fail_first: int = 0) -> AsyncIterator[World]:
    async with fake_platforms() as fake, running_stack(settings_kwargs, consumers=("scoring", "nurture")) as stack:
        fake.fail_next = fail_first
        fake.forbidden = {v for pair in PEOPLE.values() for v in pair if v} | {"ann@example.com", "16502531234"}
        nurture = NurtureSettings(
            **settings_kwargs, secret_key="test-secret", meta_api_base_url=fake.url, google_ads_api_base_url=fake.url,
            audience_sync_seconds=0.1, audience_refresh_seconds=0.5, audience_backoff_seconds=0.3,
        )  # fmt: skip
        scoring = ScoringSettings(**settings_kwargs, webhook_poll_seconds=0.1)
        engine = make_engine(nurture.database_url, pool_size=4)
        sessionmaker = make_sessionmaker(engine)
        stop = asyncio.Event()
        tasks = [
            asyncio.create_task(refresh_loop(sessionmaker, nurture.audience_refresh_seconds)),
            asyncio.create_task(sync_loop(nurture, sessionmaker)),
            asyncio.create_task(delivery_loop(scoring, sessionmaker, stop)),
        ]
        try:
            async with httpx.AsyncClient(timeout=30) as client:
                write_key = await stack.create_source(client)
                yield World(stack, fake, client, write_key)
        finally:
            stop.set()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await engine.dispose()


async def add_destinations(w: World, audience_id: str) -> dict[str, dict[str, Any]]:
    endpoint = await w.call(
        "POST", "/webhook-endpoints", 201, json={"url": f"{w.fake.url}/hook", "event_types": ["lead.mql"]}
    )
    w.fake.webhook_secret = endpoint["secret"]
    bodies = {
        "meta": {"kind": "meta", "name": "Meta", "config": {"audience_id": "6001"},
                 "credentials": {"access_token": META_TOKEN}},
        "google": {"kind": "google", "name": "Google",
                   "config": {"customer_id": "123-456-7890", "user_list_id": "555", "ad_user_data": "GRANTED",
                              "ad_personalization": "GRANTED"},
                   "credentials": {"access_token": GOOGLE_TOKEN, "developer_token": DEVELOPER_TOKEN}},
        "webhook": {"kind": "webhook", "name": "CRM", "config": {"endpoint_id": endpoint["id"]}},
    }  # fmt: skip
    found = {}
    for kind, body in bodies.items():
        found[kind] = await w.call("POST", f"/audiences/{audience_id}/destinations", 201, json=body)
        assert all(v.startswith("…") for v in found[kind]["credentials"].values())
        assert META_TOKEN not in str(found[kind]) and GOOGLE_TOKEN not in str(found[kind])
    return found


def webhook_sets(fake: FakePlatforms) -> tuple[set[str], set[str]]:
    added, removed = set(), set()
    for hook in fake.webhooks:
        if hook.get("type") == "audience.members_changed":
            added |= {m["email_sha256"] for m in hook["data"]["added"] if "email_sha256" in m}
            removed |= {m["email_sha256"] for m in hook["data"]["removed"] if "email_sha256" in m}
    return added, removed
