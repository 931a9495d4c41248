"""A running stack with mail settings for the edge, and small helpers to create and submit forms."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from shared.db import make_engine
from tests.helpers import Stack, eventually, running_stack
from tests.smtp import SmtpSink

SECRET = "test-secret"
TOKEN = re.compile(r'name="fs_token" value="([^"]+)"')
LINK = re.compile(r"https?://\S+/forms/(?:confirm|files)/[A-Za-z0-9._-]+")


def definition(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "title": "Get the guide",
        "fields": [
            {"name": "email", "type": "email", "label": "Work email", "required": True},
            {"name": "first_name", "type": "first_name", "label": "First name", "max_length": 40},
            {"name": "company", "type": "company", "label": "Company"},
            {"name": "job_title", "type": "job_title", "label": "Job title"},
            {"name": "team", "type": "select", "label": "Team size", "choices": ["1-10", "11-50", "51+"]},
            {"name": "code", "type": "text", "label": "Promo code", "pattern": "[A-Z]{3}[0-9]{2}"},
        ],
        "consent_text": "Yes, send me the guide and the monthly newsletter. Unsubscribe any time.",
        "topic": "news",
        "submit_label": "Send me the guide",
    }
    return base | overrides


@dataclass
class Forms:
    stack: Stack
    client: httpx.AsyncClient
    sink: SmtpSink
    database_url: str

    @property
    def base(self) -> str:
        return self.stack.base_url

    async def create(self, **overrides: Any) -> dict[str, Any]:
        body = {"name": overrides.pop("name", "Guide download"), "definition": definition(**overrides)}
        response = await self.client.post(f"{self.base}/api/forms", json=body, headers=self.stack.admin)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    async def token(self, form_id: str, **params: str) -> str:
        page = await self.client.get(f"{self.base}/forms/{form_id}", params=params)
        assert page.status_code == 200, page.text
        return self.token_in(page.text)

    def token_in(self, page: str) -> str:
        found = TOKEN.search(page)
        assert found, page
        return html.unescape(found.group(1))

    async def post(self, form_id: str, values: dict[str, str], **kwargs: Any) -> httpx.Response:
        return await self.client.post(f"{self.base}/forms/{form_id}", data=values, **kwargs)

    async def scalar(self, sql: str, **params: Any) -> Any:
        engine = make_engine(self.database_url, pool_size=1)
        try:
            async with engine.connect() as conn:
                return await conn.scalar(text(sql), params)
        finally:
            await engine.dispose()

    async def lead(self, email: str) -> dict[str, Any]:
        async def probe() -> dict[str, Any] | None:
            r = await self.client.get(f"{self.base}/api/leads", params={"email": email}, headers=self.stack.admin)
            leads: list[dict[str, Any]] = r.json()["leads"] if r.status_code == 200 else []
            return leads[0] if leads else None

        return await eventually(probe, what=f"lead {email}")

    async def consent(self, email: str) -> dict[str, Any]:
        r = await self.client.get(
            f"{self.base}/api/leads/{email}/consent", params={"by": "email"}, headers=self.stack.admin
        )
        assert r.status_code == 200, r.text
        found: dict[str, Any] = r.json()
        return found


def body_text(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    content: str = part.get_content()
    return content


def link_in(message: EmailMessage) -> str:
    found = LINK.search(body_text(message))
    assert found, body_text(message)
    return found.group(0)


@asynccontextmanager
async def forms_stack(
    settings_kwargs: dict[str, Any],
    sink: SmtpSink,
    monkeypatch: pytest.MonkeyPatch,
    consumers: tuple[str, ...] = ("scoring", "nurture"),
    **ingest: Any,
) -> AsyncIterator[Forms]:
    """Ingest, admin API, scoring and nurture on one port; the edge reads its mail settings from the
    environment as `funnelstream ingest` does, and links in emails point at this server."""
    values = {
        "DATABASE_URL": settings_kwargs["database_url"],
        "KAFKA_BOOTSTRAP_SERVERS": settings_kwargs["kafka_bootstrap_servers"],
        "SECRET_KEY": SECRET,
        "SMTP_HOST": sink.host,
        "SMTP_PORT": str(sink.port),
        "SMTP_BACKOFF_SECONDS": "0.01",
        "MAIL_FROM": "Acme <hello@acme.example>",
    }
    for name, value in values.items():
        monkeypatch.setenv(f"FUNNELSTREAM_{name}", value)
    ingest = {"form_min_seconds": 0, **ingest}
    async with running_stack(settings_kwargs, consumers=consumers, **ingest) as stack:
        # Read by the edge at its first form request, after the port is known.
        monkeypatch.setenv("FUNNELSTREAM_PUBLIC_BASE_URL", stack.base_url)
        async with httpx.AsyncClient(timeout=30) as client:
            yield Forms(stack, client, sink, settings_kwargs["database_url"])
