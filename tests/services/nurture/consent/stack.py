"""A running product for consent tests: HTTP app, consumers, and a database session of the test's own."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.nurture.consent import repository
from services.nurture.consent.links import preferences_url, unsubscribe_url
from services.nurture.consent.service import Decision, Kind
from shared.db import make_engine, make_sessionmaker
from tests.helpers import Stack, basic, eventually, running_stack

SECRET_KEY = "test-secret"  # what running_stack gives the edge


@dataclass
class ConsentStack:
    stack: Stack
    client: httpx.AsyncClient
    maker: async_sessionmaker[AsyncSession]

    @property
    def base(self) -> str:
        return self.stack.base_url

    async def api(self, method: str, path: str, headers: dict[str, str] | None = None, **kwargs: Any) -> httpx.Response:
        headers = {**self.stack.admin, **(headers or {})}
        return await self.client.request(method, f"{self.base}{path}", headers=headers, **kwargs)

    async def import_csv(self, path: str, body: str, **params: Any) -> httpx.Response:
        return await self.api("POST", path, content=body.encode(), headers={"Content-Type": "text/csv"}, params=params)

    async def scalar(self, sql: str, **params: Any) -> Any:
        async with self.maker() as session:
            return await session.scalar(text(sql), params)

    async def can_send(
        self, lead_id: uuid.UUID | None, email: str | None, kind: Kind, topic: str | None = None
    ) -> Decision:
        async with self.maker() as session:
            return await repository.can_send(
                session, lead_id=lead_id, email=email, kind=kind, topic=topic, source_id=None
            )

    async def source_with_secret(self) -> tuple[str, str]:
        created = await self.api("POST", "/api/sources", json={"name": "mail"})
        source = created.json()["id"]
        secret = (await self.api("POST", f"/api/sources/{source}/webhook-secrets")).json()["secret"]
        return source, secret

    async def identified_lead(self, user_id: str, email: str) -> uuid.UUID:
        """A lead made the real way: an identify through the tracking API, applied by the scoring consumer."""
        write_key = await self.stack.create_source(self.client)
        sent = await self.client.post(
            f"{self.base}/v1/identify",
            json={"userId": user_id, "traits": {"email": email}},
            headers=basic(write_key),
        )
        assert sent.status_code == 200, sent.text

        async def lead_id() -> uuid.UUID | None:
            r = await self.api("GET", f"/api/leads/{user_id}")
            return uuid.UUID(r.json()["lead_id"]) if r.status_code == 200 and r.json()["email"] else None

        return await eventually(lead_id, what=f"lead {user_id}")

    async def subscribe(self, user_id: str, topic: str = "*") -> None:
        change = {"topic": topic, "status": "subscribed", "consent_text": "Yes, send me news", "method": "double"}
        r = await self.api("PUT", f"/api/leads/{user_id}/consent", json={"changes": [change]})
        assert r.status_code == 200, r.text

    async def consent(self, identity: str, by: str = "user") -> dict[str, Any]:
        r = await self.api("GET", f"/api/leads/{identity}/consent", params={"by": by})
        assert r.status_code == 200, r.text
        found: dict[str, Any] = r.json()
        return found

    def unsubscribe_link(self, lead_id: uuid.UUID, email: str, topic: str | None = None) -> str:
        return unsubscribe_url(self.base, SECRET_KEY, lead_id, email, topic)

    def preferences_link(self, lead_id: uuid.UUID, email: str) -> str:
        return preferences_url(self.base, SECRET_KEY, lead_id, email)

    async def events_named(self, name: str, user_id: str) -> int:
        count = await self.scalar(
            "SELECT count(*) FROM lead_events e JOIN leads l ON l.lead_id = e.lead_id "
            "WHERE e.name = :name AND l.user_id = :user",
            name=name,
            user=user_id,
        )
        return int(count)


def token_of(url: str) -> str:
    return unquote(url.rpartition("/")[2])


@asynccontextmanager
async def consent_stack(
    settings_kwargs: dict[str, Any], consumers: tuple[str, ...] = ("scoring",), **overrides: Any
) -> AsyncIterator[ConsentStack]:
    engine = make_engine(settings_kwargs["database_url"], pool_size=2)
    try:
        async with (
            running_stack(settings_kwargs, consumers=consumers, **overrides) as stack,
            httpx.AsyncClient(timeout=15) as client,
        ):
            yield ConsentStack(stack, client, make_sessionmaker(engine))
    finally:
        await engine.dispose()
